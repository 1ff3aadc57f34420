"""Text -> rule graph.  Every input format is detected here and read into one Ruleset."""

from __future__ import annotations

import re
import sys
from typing import BinaryIO

from iptexplain.errors import InputError
from iptexplain.graph import Ruleset
from iptexplain.nft.json_text import looks_like_json
from iptexplain.parse.partial import name_gaps
from iptexplain.parse.rough import clean, mark_elisions

FORMATS = ("auto", "save", "S", "listing", "nft", "nft-json")
# Every input iptexplain reads, in the words of the messages that list them.
ACCEPTED = ("iptables-save / ip6tables-save output (-c or not), iptables -S, an iptables -L / -nL / -nvL "
            "listing, `nft list ruleset' output (or nft -j), or an iptexplain snapshot")
# Blanks within a line only: a `\s*` after `^` under re.M also eats the newlines that follow, so
# every line of a run of blank lines would rescan the whole run (30 KB of them: 18 s).
_B = r"[^\S\n]"
_LISTING_RE = re.compile(rf"^{_B}*(?:>{_B}?)*Chain \S+ \((?:policy \w+|[0-9]+ references?|user-defined|ERROR)", re.M)
_SAVE_RE = re.compile(rf"^{_B}*\*(?:raw|mangle|nat|filter|security){_B}*$", re.M)
# `nft list ruleset`: a table block at the start of a line.
_NFT_RE = re.compile(rf"^{_B}*table{_B}+(?:(?:ip|ip6|inet|arp|bridge|netdev){_B}+)?\S+{_B}*\{{", re.M)
_S_RE = re.compile(rf"^{_B}*(?:\[[0-9]+:[0-9]+\]{_B}*)?-[APN] \S+", re.M)


def detect_format(text: str) -> str:
    """'save' (iptables-save / restore), 'S' (iptables -S), 'listing' (iptables -L family),
    'nft' (``nft list ruleset``: table blocks, no iptables-save table header) or 'nft-json'
    (``nft -j list ruleset``: a JSON object whose first key is ``nftables``)."""
    if looks_like_json(text):
        return "nft-json"
    if _NFT_RE.search(text[:200_000]) and not _SAVE_RE.search(text):
        return "nft"
    if _SAVE_RE.search(text):
        return "save"
    if _LISTING_RE.search(text):
        return "listing"
    if _S_RE.search(text):
        return "S"
    return "save"


_S_LINE_RE = re.compile(r"^\s*(?:\[\d+:\d+\]\s*)?-[APN] \S+")
_S_PROMPT_RE = re.compile(r"ip6?tables(?:-legacy|-nft)?\s(?:[^|;]*\s)?(?:-S|--list-rules)(?:\s|$)")


def split_mixed(text: str) -> tuple[str, str] | None:
    """A paste of ``iptables -S`` output and ``iptables -L`` listings together (a terminal
    session): ``(the -S text, the listing text)``, each with the other's lines blanked so that
    line numbers stay; None when the text is of one format.  The -S text keeps the prompts that
    name its tables (``iptables -t nat -S``)."""
    if not _LISTING_RE.search(text) or _SAVE_RE.search(text):
        return None
    lines = text.split("\n")
    s_lines = [bool(_S_LINE_RE.match(ln)) for ln in lines]
    if not any(s_lines):
        return None
    s_text = "\n".join(ln if s or _S_PROMPT_RE.search(ln) else "" for ln, s in zip(lines, s_lines))
    l_text = "\n".join("" if s else ln for ln, s in zip(lines, s_lines))
    return s_text, l_text

def parse_text(text: str, source: str = "<input>", fmt: str = "auto", family: int | None = None,
               table: str | None = None) -> Ruleset:
    """Read any supported format; raise InputError (``FILE:LINE: message``) on bad input."""
    if fmt in ("auto", "snapshot"):
        from iptexplain.snapshot import is_snapshot, load_snapshot

        if fmt == "snapshot" or is_snapshot(text):
            # `iptexplain snapshot` output: its ruleset (the host model is for trace).
            rs = load_snapshot(text, source)[0]
            if family is not None:
                rs.tables = {k: t for k, t in rs.tables.items() if k[0] == family}
            return rs
    cleaned = clean(text)  # quoting, stray characters, elision lines (same line numbers)
    text = cleaned.text
    mixed = split_mixed(text) if fmt == "auto" else None
    if fmt == "auto" and mixed is None:
        fmt = detect_format(text)
    if mixed is not None:
        # A terminal session with `iptables -S' and `iptables -L' output: one ruleset.
        from iptexplain.parse.combine import combine

        rs = combine([parse_text(mixed[0], source, "S", family, table),
                      parse_text(mixed[1], source, "listing", family, table)], source)
    elif fmt in ("save", "S"):
        from iptexplain.parse.save import parse_save

        rs = parse_save(text, source, family=family, table=table)
    elif fmt == "listing":
        from iptexplain.parse.listing import parse_listing

        rs = parse_listing(text, source, family=family, table=table)
    elif fmt == "nft":
        from iptexplain.nft.reader import read_nft

        return read_nft(text, source)
    elif fmt == "nft-json":
        from iptexplain.nft.json_reader import read_nft_json

        return read_nft_json(text, source)
    else:
        raise InputError(f"unknown format `{fmt}' (expected one of {', '.join(FORMATS)})", source)
    cleaned.note(rs)
    if cleaned.elisions:
        mark_elisions(rs, cleaned.elisions)
    name_gaps(rs)
    return rs


# The most text any input may hold: ~4x the iptables-save dump of a 30,000-service kube-proxy
# node (60 MB).  `trace /dev/zero`, `yes | iptexplain show -` or a wrong file are refused with one
# line instead of filling memory.
MAX_INPUT = 256 << 20
READ_CHUNK = 1 << 20


def too_large(name: str, limit: int = MAX_INPUT) -> InputError:
    return InputError(f"input larger than {limit >> 20} MiB: not an iptables ruleset iptexplain can read",
                      name, None)


def read_bounded(f: BinaryIO, name: str, head: bytes = b"", limit: int = MAX_INPUT) -> bytes:
    """The rest of ``f`` after ``head`` (bytes already read from it), refused past ``limit``
    bytes, and refused at once when the first 4 KiB hold a NUL byte (binary data)."""
    parts = [head]
    n = len(head)
    checked = False
    while True:
        if not checked and n >= 4096:
            checked = True
            if b"\0" in b"".join(parts)[:4096]:
                raise InputError("binary data, not iptables text", name, None)
        chunk = f.read(READ_CHUNK if n >= 4096 else 4096 - n)
        if not chunk:
            break
        n += len(chunk)
        if n > limit:
            raise too_large(name, limit)
        parts.append(chunk)
    data = b"".join(parts)
    if b"\0" in data[:4096]:
        raise InputError("binary data, not iptables text", name, None)
    return data


def read_input(path: str) -> tuple[str, str]:
    """(text, display name) of a file, or of standard input for ``-``; at most MAX_INPUT bytes."""
    if path == "-":
        data = read_bounded(sys.stdin.buffer, "<stdin>")
        name = "<stdin>"
    else:
        try:
            with open(path, "rb") as f:
                data = read_bounded(f, path)
        except OSError as e:
            raise InputError(e.strerror or str(e), path) from None
        name = path
    return data.decode("utf-8", errors="replace"), name


def load(path: str, fmt: str = "auto", family: int | None = None, table: str | None = None,
         progress: bool = True) -> Ruleset:
    """Read a file (``-``: standard input) as the CLI does: a large iptables-save dump is parsed
    while it is read, with a progress bar on a terminal (:mod:`iptexplain.parse.stream`)."""
    from iptexplain.parse.stream import read_ruleset_or_text

    rs, text, name = read_ruleset_or_text(path, fmt, family, table, progress=progress)
    if rs is not None:
        return rs
    return parse_text(text, name, fmt, family, table)  # type: ignore[arg-type]
