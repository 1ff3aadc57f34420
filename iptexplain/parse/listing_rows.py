"""The rows of an ``iptables -L`` listing: the command line that names its table, the column
layout, a row split into its columns, and what a row cannot say in save syntax (kept in the
graph as not-understood matches)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from iptexplain.core.errors import OptionError
from iptexplain.ext.base import OpaqueMatch, OpaqueTarget
from iptexplain.graph import BUILTIN_CHAINS
from iptexplain.numbers import is_decimal
from iptexplain.parse.rulespec import canonical_proto

TABLES = tuple(BUILTIN_CHAINS)
_CHAIN_RE = re.compile(
    r"^\s*Chain (\S+) \((?:policy (\S+)(?: ([0-9]{1,20}[KMGT]?) packets, ([0-9]{1,20}[KMGT]?) bytes)?"
    r"|([0-9]{1,20}) references?|ERROR obtaining refs|user-defined)\)\s*$"
)
_COUNT_RE = re.compile(r"^[0-9]{1,20}[KMGT]?$")
_OPT_RE = re.compile(r"^[-!][-f]$")
_TOKEN_RE = re.compile(r"\S+")
_CMD_RE = re.compile(
    r"(?:^|[\s$#>:;(`'\"])(ip6?tables)(?:-legacy|-nft)?(-save|-restore)?(?:-legacy|-nft)?(?=\s|$)(.*)$")
_QUOTED_RE = re.compile(r"^\s*(?:>\s?)+")
_TABLE_WORD_RE = re.compile(r"(?<![\w-])(raw|mangle|nat|filter|security)(?![\w-])", re.I)
_SUFFIX = {"K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
# A heading or remark that names a table the way iptables does (`-t nat`), without the command.
_TABLE_FLAG_RE = re.compile(r"(?:^|[\s(`'\"])(?:-t\s*|--table[\s=])(raw|mangle|nat|filter|security)\b")
_ROWISH_RE = re.compile(r"(?:^|\s)!?(?:anywhere|0\.0\.0\.0/0|::/0|[0-9]{1,20}\.[0-9]{1,20}\.[0-9]{1,20}\.[0-9]{1,20}(?:/[0-9]{1,20})?)(?:\s|$)")
_NUMERIC_HOST = frozenset("0123456789abcdefABCDEF.:")
_NUMERIC_ADDRS: dict[tuple[str, int], tuple] = {}  # "10.0.0.1", "!127.0.0.0/8" -> (Address, inverted)

# Names -L prints instead of numbers that every system resolves the same way (/etc/hosts and
# /etc/networks defaults).  Any other host name is kept unresolved and flagged.
HOST_NAMES: dict[int, dict[str, str]] = {
    4: {"localhost": "127.0.0.1", "loopback": "127.0.0.0", "link-local": "169.254.0.0",
        "default": "0.0.0.0", "localhost.localdomain": "127.0.0.1"},
    6: {"localhost": "::1", "ip6-localhost": "::1", "ip6-loopback": "::1",
        "ip6-allnodes": "ff02::1", "ip6-allrouters": "ff02::2", "ip6-localnet": "fe00::",
        "ip6-mcastprefix": "ff00::", "localhost6": "::1"},
}


# ---------------------------------------------------------------------------------------------
# What a listing row cannot say in save syntax, kept in the graph as not-understood matches.


@dataclass(frozen=True, eq=True)
class ListingText(OpaqueMatch):
    """Row text no module could read back (a module iptexplain does not model, or words a
    module prints that do not map back to options).  Kept verbatim; the tracer treats it as
    unknown."""

    text: str = ""

    def save(self) -> list[str]:
        return ["-m", self.opaque_name] + list(self.raw)

    def describe(self) -> str:
        return f"{self.opaque_name} (as listed: {self.text})"


@dataclass(frozen=True, eq=True)
class UnresolvedAddress(OpaqueMatch):
    """A source or destination printed as a host name (``iptables -L`` without ``-n``) that
    cannot be turned back into the address it stood for.  Saves as ``-s NAME``, which is what
    iptables itself would be given; the tracer treats it as unknown."""

    direction: str = "src"
    name: str = ""
    invert: bool = False

    def save(self) -> list[str]:
        return (["!"] if self.invert else []) + ["-s" if self.direction == "src" else "-d", self.name]

    def describe(self) -> str:
        return f"{'not ' if self.invert else ''}{'from' if self.direction == 'src' else 'to'} {self.name} (name not resolved)"


@dataclass(frozen=True, eq=True)
class ListingTarget(OpaqueTarget):
    """A target whose -L text could not be read back; its name is known, its options are not."""

    text: str = ""

    def describe(self) -> str:
        return f"{self.opaque_name} (as listed: {self.text})" if self.text else self.opaque_name


# ---------------------------------------------------------------------------------------------
# The pieces of a listing before they become rules.


@dataclass
class Command:
    """An ``iptables ... -L`` command line found in the text."""

    line: int
    text: str
    family: int
    table: str | None  # None: iptables' default, filter
    chain: str | None  # -L CHAIN
    numeric: bool
    verbose: bool
    piped: bool


@dataclass
class Layout:
    num: bool = False
    counters: bool = False
    via: bool = False
    opt: bool = True


@dataclass
class RawRow:
    line: int
    num: int | None
    counters: tuple[str, str] | None
    target: str
    proto: str
    opt: str | None
    iniface: str | None
    outiface: str | None
    src: str
    dst: str
    tail: str


@dataclass
class Block:
    """One ``Chain X (...)`` block."""

    name: str
    line: int
    policy: str | None
    policy_counters: tuple[str, str] | None
    references: int | None
    layout: Layout | None = None
    rows: list[RawRow] = field(default_factory=list)
    last_line: int = 0


@dataclass
class Section:
    """Consecutive chain blocks of one table, as one command printed them."""

    command: Command | None
    hint: tuple[str, int] | None  # a table word in the prose before it, and its line
    flag: tuple[str, int] | None = None  # `-t TABLE' in a heading before it (no command), and its line
    blocks: list[Block] = field(default_factory=list)
    family: int = 4
    table: str = "filter"
    names: set[str] = field(default_factory=set)  # of the blocks: a name seen again starts a section

    @property
    def first_line(self) -> int:
        return self.blocks[0].line if self.blocks else 0

    @property
    def last_line(self) -> int:
        return max((b.last_line or b.line) for b in self.blocks) if self.blocks else 0

    def span(self) -> str:
        a, b = self.first_line, self.last_line
        return f"line {a}" if a == b else f"lines {a}-{b}"


# ---------------------------------------------------------------------------------------------
# Lines.


def parse_command(text: str, line: int) -> Command | None | bool:
    """A listing command on this line (Command), another iptables command (False), or None."""
    m = _CMD_RE.search(text)
    if not m:
        return None
    prog, rest = m.group(1), m.group(3)
    if m.group(2):
        return False  # iptables-save / -restore: not a listing; what follows is not one either
    piped = False
    for stop in ("|", ";", "&&", ">"):
        k = rest.find(stop)
        if k >= 0:
            piped = piped or stop == "|"
            rest = rest[:k]
    words = rest.split()
    is_list = False
    table = chain = None
    numeric = verbose = False
    i = 0
    while i < len(words):
        w = words[i]
        nxt = words[i + 1] if i + 1 < len(words) else None
        if w in ("-t", "--table"):
            table = nxt
            i += 2
            continue
        if w.startswith("--table="):
            table = w.split("=", 1)[1]
        elif w.startswith("-t") and len(w) > 2 and not w.startswith("--"):
            table = w[2:]
        elif w in ("-L", "--list") or (w.startswith("-") and not w.startswith("--") and "L" in w[1:]):
            is_list = True
            if w.startswith("-") and not w.startswith("--"):
                numeric = numeric or "n" in w
                verbose = verbose or "v" in w
            if nxt is not None and not nxt.startswith("-") and (w in ("-L", "--list") or w.endswith("L")):
                chain = nxt
                i += 2
                continue
        elif w in ("-n", "--numeric"):
            numeric = True
        elif w in ("-v", "--verbose"):
            verbose = True
        elif w.startswith("-") and not w.startswith("--") and set(w[1:]) <= set("nvx"):
            numeric = numeric or "n" in w
            verbose = verbose or "v" in w
        elif w.startswith("-") and not w.startswith("--") and any(c in w[1:] for c in "ASDIRNXPEFZ"):
            return False  # a command that changes or prints rules another way
        i += 1
    if not is_list:
        return False if words and words[0].startswith("-") else None
    if table is not None and table not in TABLES:
        table = None
    return Command(line, text.strip(), 6 if prog == "ip6tables" else 4, table, chain, numeric,
                   verbose, piped)


def layout_of(words: list[str]) -> Layout | None:
    """The columns a header row announces, or None when the line is not a header row."""
    if not words or words[0] not in ("num", "pkts", "target", "prot"):
        return None
    if "source" not in words or "destination" not in words:
        return None
    return Layout(num="num" in words, counters="pkts" in words, via="in" in words and "out" in words,
                  opt="opt" in words)


@lru_cache(maxsize=4096)
def _proto_ok(tok: str) -> bool:
    t = tok[1:] if tok.startswith("!") else tok
    if not t:
        return False
    try:
        canonical_proto(t)
    except OptionError:
        return False
    return True


def _addr_like(tok: str) -> bool:
    t = tok[1:] if tok.startswith("!") else tok
    if not t:
        return False
    c = t[0]
    return c.isalnum() or c == ":"


def split_row(line: str, layout: Layout) -> RawRow | None:
    """Cut a row into its columns; the target and (old ip6tables) opt columns may be empty."""
    spans = [(m.start(), m.end()) for m in _TOKEN_RE.finditer(line)]
    words = [line[a:b] for a, b in spans]
    i = 0
    num = None
    if layout.num:
        if not words or not is_decimal(words[0]) or len(words[0]) > 12:
            return None
        num = int(words[0])
        i = 1
    counters = None
    if layout.counters:
        if len(words) < i + 2 or not (_COUNT_RE.match(words[i]) and _COUNT_RE.match(words[i + 1])):
            return None
        counters = (words[i], words[i + 1])
        i += 2
    nvia = 2 if layout.via else 0
    variants = ((True, True), (False, True), (True, False), (False, False)) if layout.opt else ((True, False), (False, False))
    for has_target, has_opt in variants:
        j = i
        target = ""
        if has_target:
            if j >= len(words):
                continue
            target = words[j]
            j += 1
        need = 1 + (1 if has_opt else 0) + nvia + 2
        if len(words) < j + need:
            continue
        proto = words[j]
        if not _proto_ok(proto):
            continue
        j += 1
        opt = None
        if has_opt:
            opt = words[j]
            if not _OPT_RE.match(opt):
                continue
            j += 1
        iniface = outiface = None
        if nvia:
            iniface, outiface = words[j], words[j + 1]
            j += 2
        src, dst = words[j], words[j + 1]
        if not (_addr_like(src) and _addr_like(dst)):
            continue
        end = spans[j + 1][1]
        tail = line[end:].strip()
        return RawRow(0, num, counters, target, proto, opt, iniface, outiface, src, dst, tail)
    return None
