"""An ``iptables -L`` listing read the way :mod:`iptexplain.parse.deferred` reads a save dump: its
layout confirmed by one scan, each chain's rows kept as text until the trace reaches the chain.

``iptables -t nat -nvL`` of a 10,000-service kube-proxy node is 215,000 lines in 37,000 chains,
of which a trace looks at ``KUBE-SERVICES`` and a handful of small chains.  The listing reader
(:mod:`iptexplain.parse.listing`) reads every row into a rule, and infers from every section what
the listing hides; this reader scans the layout with one regular expression per chain and keeps
each chain's rows as text (a :class:`ListingChain`, a
:class:`~iptexplain.parse.deferred.DeferredChain`).  A row becomes a rule -- by the listing
reader's own row reader (:func:`~iptexplain.parse.listing_rows.split_row` and
:meth:`ListingReader._rule <iptexplain.parse.listing.ListingReader._rule>`) -- when it is looked at
(:class:`ListingRow`); the tracer's index of a big chain takes each row's destination and port
from its words (:meth:`ListingRow.raw_keys`).

What the listing reader concludes from the whole text is concluded here from facts the scan can
be sure of, so that a trace answers exactly as on the eager read:

* every line is a ``Chain`` header, the column heading, a row, a blank line or an ``iptables
  ... -L`` command line -- no prose, quoting, elisions, wrapped rows (the scan gives up on
  anything else);
* a row's free text is a sequence of the phrases the scan knows to be read back whole (comments,
  ``tcp dpt:N``, ``statistic mode random probability P``, ``ctstate …``, the DNAT/SNAT/MASQUERADE/
  MARK/REJECT targets' words…), and its addresses are numeric or ``anywhere``: no row can carry
  text that would not be read back, a value hidden by hand, a host name, a module note or an IPv6
  address, which the listing reader reports over all rows;
* the target column names only listed chains of the same listing, standard verdicts and those
  targets (so every jump lands on a chain shown, and the table inference sees every target that
  could decide it);
* the sections (tables) are cut where the listing reader cuts them, and each names its table by
  ``--table``, its command line or the same inference from built-in chains and targets; a table
  listed twice is left to the listing reader, which compares the two listings rule by rule.

Hidden interfaces of an ``-nL`` listing are filled in from the tools' rule shapes
(:mod:`iptexplain.parse.toolshapes`) as for the eager read: a chain a shape of several rules may
match is read when the fill is asked for, the one-rule shapes of whole chains (kube-proxy's) are
decided rule by rule as the trace looks at them (:class:`LazyFilled`).

Anything the scan is not sure of raises :class:`~iptexplain.parse.deferred.GiveUp`: the caller
reads the text with the listing reader.
"""

from __future__ import annotations

import re
from collections import Counter
from importlib import import_module
from functools import lru_cache
from socket import inet_aton

from iptexplain.core.errors import InputError
from iptexplain.graph import BUILTIN_CHAINS, STANDARD_VERDICTS, Chain, Counters, Rule, Ruleset, Table
from iptexplain.parse.deferred import DeferredChain, GiveUp
from iptexplain.parse.detect import NFT_RE, SAVE_RE
from iptexplain.parse.gc_pause import _no_gc
from iptexplain.parse.lazy import _OCTET
from iptexplain.parse.listing import ListingReader
from iptexplain.parse.listing_tail import TailReader
from iptexplain.parse.listing_rows import _CHAIN_RE, Command, Layout, layout_of, parse_command, split_row
from iptexplain.parse.rough import _ELISION_RE, _QUOTE_RE, _STRAY_RE
from iptexplain.parse.rulespec import IPTABLES_TARGETS
from iptexplain.parse import toolshapes as ts
from iptexplain.parse.s_tables import infer_table

_HEADER = Rule.__dict__["header"]
_MATCHES = Rule.__dict__["matches"]
_TARGET = Rule.__dict__["target"]
_GOTO = Rule.__dict__["goto"]
_COUNTERS = Rule.__dict__["counters"]

# -- the layout --------------------------------------------------------------------------------
# A row's free text: phrases whose modules read them back whole (tests/test_listing_deferred.py
# reads each through the listing reader: nothing unread, nothing lost, no note).
_COMMENT = r"/\*(?: [^ *\n]++)*+ \*/"  # kube-proxy's comments; no `*' inside, single blanks
_PORT = r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}|0)(?![0-9])"
_HOST = rf"{_OCTET}(?:\.{_OCTET}){{3}}(?![0-9])"
_PHRASE = (rf"(?:{_COMMENT}"
           rf"|(?:tcp|udp|sctp)(?: (?:dpt|spt):{_PORT}| (?:dpts|spts):{_PORT}:{_PORT})*+"
           r"|statistic mode random probability 0\.[0-9]{1,11}+"
           r"|ADDRTYPE match (?:src|dst)-type (?:LOCAL|UNICAST|BROADCAST|MULTICAST)"
           r"|mark match (?:! )?0x[0-9a-f]{1,8}+(?:/0x[0-9a-f]{1,8}+)?"
           r"|(?:! )?ctstate (?:NEW|RELATED|ESTABLISHED|INVALID|UNTRACKED|SNAT|DNAT)(?:,(?:NEW|RELATED|ESTABLISHED|INVALID|UNTRACKED|SNAT|DNAT))*+"
           r"|(?:! )?state (?:NEW|RELATED|ESTABLISHED|INVALID|UNTRACKED)(?:,(?:NEW|RELATED|ESTABLISHED|INVALID|UNTRACKED))*+"
           rf"|multiport dports {_PORT}(?:[,:]{_PORT})*+)")
_V4 = r"[0-9]{1,3}+(?:\.[0-9]{1,3}+){3}+(?:/[0-9]{1,2}+)?"
_ADDR = rf"!?(?:{_V4}|anywhere)"
_PROTO = r"!?(?:all|tcp|udp|icmp|sctp|udplite|esp|ah|gre|[0-9]{1,2}+|1[0-9]{2}+|2[0-4][0-9]|25[0-5])"
# Targets whose words end the row; any other target word must be a chain of the listing or a
# standard verdict (checked over the target column).
_TARGET_WORDS = {
    "DNAT": rf"to:{_HOST}(?::{_PORT}(?:-{_PORT})?)?",
    "SNAT": rf"to:{_HOST}(?::{_PORT}(?:-{_PORT})?)?",
    "MARK": r"MARK (?:(?:or|xor|and|set) 0x[0-9a-f]{1,8}+|xset 0x[0-9a-f]{1,8}+/0x[0-9a-f]{1,8}+)",
    "REJECT": r"reject-with (?:icmp-port-unreachable|icmp-host-unreachable|icmp-net-unreachable"
              r"|icmp-proto-unreachable|icmp-net-prohibited|icmp-host-prohibited|icmp-admin-prohibited|tcp-reset)",
}
ALLOWED_TARGETS = frozenset(STANDARD_VERDICTS | {"MASQUERADE", *_TARGET_WORDS})
# Words before the address columns: the proto, opt and (-v) in/out columns.
_NOT_A_TARGET = "(?!(?:" + "|".join(sorted(ALLOWED_TARGETS - STANDARD_VERDICTS)) + ") )"


@lru_cache(maxsize=8)
def _block_re(num: bool, verbose: bool) -> re.Pattern[str]:
    """One chain block of a layout: the ``Chain`` header, the heading, the rows, blank lines."""
    pre = r" *+" + (r"[0-9]{1,12}+ ++" if num else "") + (r"[0-9]{1,20}+[KMGT]? ++[0-9]{1,20}+[KMGT]? ++" if verbose else "")
    mid = rf" ++{_PROTO} ++[-!][-f]" + (r" ++[^ \n]++ ++[^ \n]++" if verbose else "") + rf" ++{_ADDR} ++{_ADDR}"
    free = rf"(?: ++{_PHRASE})*+ *+"

    # Before a target's own words: comments and the protocol's match (kube-proxy's, Docker's).
    small = rf"(?:{_COMMENT}|(?:tcp|udp|sctp)(?: (?:dpt|spt):{_PORT}| (?:dpts|spts):{_PORT}:{_PORT})*+)"

    def ending(words: str) -> str:
        return rf" ++(?:{small} ++)*+{words} *+"

    alts = [f"{name}{mid}{ending(words)}" for name, words in _TARGET_WORDS.items()]
    alts.append(rf"MASQUERADE{mid}(?: ++(?:{small} ++)*+(?:masq ports: {_PORT}(?:-{_PORT})? ?)?(?:random-fully|random)?)? *+")
    alts.append(rf"(?:{_NOT_A_TARGET}[^ \n!>][^ \n]*+ ++)?{mid[3:]}{free}")  # a chain, a verdict, none
    row = pre + "(?:" + "|".join(alts) + r")\n"
    heading = (r" *+(" + (r"num ++" if num else "") + (r"pkts ++bytes ++" if verbose else "")
               + r"target ++prot ++opt ++" + (r"in ++out ++" if verbose else "") + r"source ++destination) *+\n")
    return re.compile(
        r"Chain (\S++) \((?:policy ([^\s)]++)(?: ([0-9]{1,20}+[KMGT]?) packets, ([0-9]{1,20}+[KMGT]?) bytes)?"
        r"|([0-9]{1,20}+) references?)\) *+\n" + heading + "((?:" + row + r")*+)\n*+")


@lru_cache(maxsize=8)
def _target_re(num: bool, verbose: bool) -> re.Pattern[str]:
    """The target column of every row of a layout (rows without a target do not match)."""
    pre = r"\n *+" + (r"[0-9]{1,12}+ ++" if num else "") + (r"[0-9]{1,20}+[KMGT]? ++[0-9]{1,20}+[KMGT]? ++" if verbose else "")
    if not num and not verbose:
        pre = r"\n(?!target )"
    return re.compile(pre + rf"([^ \n]++) ++{_PROTO} ++[-!][-f] ")


@lru_cache(maxsize=2)
def _rounded_row(num: bool) -> re.Pattern[str]:
    """A row's counter printed with a K/M/G/T suffix (-v without -x), which the listing reader
    reports as rounded.  (Each pattern starts with a literal: a search skips to its places.)"""
    return re.compile(r"\n *+" + (r"[0-9]++ ++" if num else "") + r"[0-9]++(?:[KMGT] | ++[0-9]++[KMGT] )")


_ROUNDED_POLICY = re.compile(r"\(policy [^\s)]++ (?:[0-9]++[KMGT] packets|[0-9]++ packets, [0-9]++[KMGT] bytes)")


_LINE_BREAKS = ("\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\t")
_S_LINE = re.compile(r"^\s*(?:\[\d+:\d+\]\s*)?-[APN] \S+")


class _Where:
    """The section (table, family) and chain a row is read in: what
    :meth:`ListingReader._rule` asks of its Section and Block."""

    __slots__ = ("table", "family", "name")

    def __init__(self, table: str, family: int, name: str) -> None:
        self.table, self.family, self.name = table, family, name


class _Section:
    __slots__ = ("command", "blocks", "names", "start", "end", "table", "family", "first_line", "last_line",
                 "layout")

    def __init__(self, command: Command | None) -> None:
        self.command = command
        self.blocks: list[tuple] = []  # (name, policy, pc, refs, line, rows start, rows end, heading line)
        self.names: set[str] = set()
        self.start = self.end = 0
        self.table = "filter"
        self.family = 4
        self.first_line = self.last_line = 0
        self.layout: tuple[bool, bool] | None = None

    def span(self) -> str:
        a, b = self.first_line, self.last_line
        return f"line {a}" if a == b else f"lines {a}-{b}"


# -- rows and chains ---------------------------------------------------------------------------


class ListingRow(Rule):
    """A listing row read into a rule when ``header``, ``matches``, ``target``, ``goto`` or
    ``counters`` is first asked for; ``jump`` comes from the target column."""

    __slots__ = ("_text", "_book", "_where", "_jump")

    def __init__(self, where: _Where, text: str, line: int, number: int, source: str, book: "ListingBook",
                 jump: str | None) -> None:
        self.table = where.table
        self.chain = where.name
        self.line = line
        self.number = number
        self.source = source
        self._text: str | None = text
        self._book = book
        self._where = where
        self._jump = jump

    @property
    def parsed(self) -> bool:
        return self._text is None

    def parse(self) -> None:
        """Read the row now, as the listing reader reads it (a no-op once read)."""
        text = self._text
        if text is None:
            return
        book = self._book
        raw = split_row(text.rstrip(), book.layouts[self._where.table])
        if raw is None:  # the scan took a line the listing reader would not take as a row
            raise AssertionError(f"listing scan: line {self.line} is not a row")
        raw.line = self.line
        r = book.reader._rule(self._where, self._where, raw, self.number)  # type: ignore[arg-type]
        book.reader_clean(self.line)
        _HEADER.__set__(self, r.header)
        _MATCHES.__set__(self, r.matches)
        _TARGET.__set__(self, r.target)
        _GOTO.__set__(self, r.goto)
        _COUNTERS.__set__(self, r.counters)
        self.number = r.number
        self._text = None

    def _get(slot):  # noqa: N805 -- builds the properties below
        def get(self):  # noqa: ANN001, ANN202
            if self._text is not None:
                self.parse()
            return slot.__get__(self, Rule)

        def put(self, value) -> None:  # noqa: ANN001
            if self._text is not None:
                self.parse()
            slot.__set__(self, value)

        return property(get, put)

    header = _get(_HEADER)
    matches = _get(_MATCHES)
    target = _get(_TARGET)
    goto = _get(_GOTO)
    counters = _get(_COUNTERS)
    del _get

    @property
    def jump(self) -> str | None:
        return self._jump

    @property
    def may_name_interface(self) -> bool:
        """False when the unread row shows no interface (``*`` in -v's in/out columns, or a
        listing without -v, whose hidden interfaces a tool's shape never fills in one-rule
        shapes)."""
        text = self._text
        if text is None:
            return True
        return self._book.names_interface(self)

    def raw_keys(self, bits: int = 32) -> tuple[int | None, int | None] | None:
        """``(destination, destination port)`` the unread row requires exactly, from its words:
        the destination column when it is one host address, not negated; the port of a
        ``tcp|udp|sctp dpt:N`` phrase when that is the row's whole free text after a comment.
        None in either place when the words do not say (a claim of nothing is always safe)."""
        text = self._text
        if text is None or bits != 32:
            return None
        return self._book.row_keys(self, text)


class ListingChain(DeferredChain):
    """A listed chain whose rows stay text until ``rules`` is first asked for.  ``jumps_in``: how
    many rows of its table jump to it (their target column names it)."""

    __slots__ = ("jumps_in",)

    def __init__(self, name: str, table: str, builtin: bool, policy: str | None, counters: Counters | None,
                 line: int, book: "ListingBook", kernel_references: int | None, rows: tuple[str, int, int],
                 size: int, family: int, jumps_in: int) -> None:
        # Not DeferredChain.__init__ and then more: 37,000 of these per kube-proxy listing.
        self.name = name
        self.table = table
        self.builtin = builtin
        self.policy = policy
        self.counters = counters
        self.line = line
        self.references = []  # filled by Ruleset.link() (parse_all)
        self.listed = True
        self.policy_known = True
        self.gaps = ()
        self.source = ""
        self.kernel_references = kernel_references
        self._pending = rows
        self._first = family  # the book finds the chain's table by it
        self._book = book
        self._size = size
        self._more = None
        self.jumps_in = jumps_in

    def may_use(self, names: frozenset[str]) -> bool:
        pending = self._pending
        if pending is None:
            return bool(self.rules)
        text, start, end = pending
        if start == end:
            return False
        words, pattern = _listing_words(names)
        if pattern is None or not any(text.find(w, start, end) >= 0 for w in words):
            return False
        return pattern.search(_COMMENT_SPAN.sub("", text[start:end])) is not None


_COMMENT_SPAN = re.compile(_COMMENT)


# The modules a row the scan takes may use, and the words that show each (a target: its name in
# the target column; a match: the word its listing starts with).  A module not here is used by
# no row of a deferred listing (tests/test_listing_deferred.py holds the phrases to it).
VOCABULARY: dict[str, tuple[str, ...]] = {
    "comment": ("/*",), "tcp": ("tcp",), "udp": ("udp",), "sctp": ("sctp",), "statistic": ("statistic",),
    "addrtype": ("ADDRTYPE",), "mark": ("mark",), "conntrack": ("ctstate",), "state": ("state",),
    "multiport": ("multiport",), "DNAT": ("DNAT",), "SNAT": ("SNAT",), "MASQUERADE": ("MASQUERADE",),
    "MARK": ("MARK",), "REJECT": ("REJECT",),
    "standard": tuple(sorted(STANDARD_VERDICTS)),
}
# The modules that read those phrases back (each the only one with its listing keyword): loaded
# for the rows a deferred listing reads, instead of all ~90 (tests/test_listing_deferred.py).
TAIL_MODULES = ("libxt_addrtype", "libxt_comment", "libxt_conntrack", "libxt_mark", "libxt_multiport", "libxt_sctp",
                "libxt_state", "libxt_statistic", "libxt_tcp", "libxt_udp")


@lru_cache(maxsize=8)
def _listing_words(names: frozenset[str]) -> tuple[tuple[str, ...], re.Pattern[str] | None]:
    """The words by which a row shows that it uses a module of ``names`` (:data:`VOCABULARY`),
    and a pattern that finds one as a word -- outside comments, which the caller removes
    (kube-proxy's say "cluster IP", and ``cluster`` is a module)."""
    words = sorted({w for n in names for w in VOCABULARY.get(n, ())}, key=len, reverse=True)
    if not words:
        return (), None
    alts = "|".join(re.escape(w) for w in words)
    return tuple(words), re.compile(rf"(?<![^ \n!])(?:{alts})(?![^ \n:])")


class _PhraseTails(TailReader):
    """The listing reader's reader of a row's free text, with the index of the phrases a
    deferred listing's rows hold: their modules only (:data:`TAIL_MODULES`)."""

    def _load(self) -> None:
        for name in TAIL_MODULES:
            import_module(f"iptexplain.ext.{name}")


# Target column words that are no chain jump: the listing reader's verdicts, the targets it knows
# (a registered target is one of IPTABLES_TARGETS: tests/test_listing_deferred.py) and the rest.
_NOT_JUMPS = frozenset(STANDARD_VERDICTS | IPTABLES_TARGETS | {"standard", ""})


def _jump_of(word: str) -> str | None:
    """The chain a target column's word jumps to, as the listing reader decides it."""
    return None if word in _NOT_JUMPS else word


# -- hidden interfaces filled in rule by rule ----------------------------------------------------


class LazyFilled(dict):
    """:attr:`Ruleset.filled` of a deferred listing: the rules of chains read when the fill was
    asked for are in it as the eager fill puts them; a row of a chain read later is decided when
    someone asks about it (one-rule shapes of whole chains: kube-proxy, flannel, fail2ban)."""

    def __init__(self, book: "ListingBook") -> None:
        super().__init__()
        self.book = book
        self.decided: set[int] = set()

    def _decide(self, rule: object) -> None:
        if isinstance(rule, ListingRow) and id(rule) not in self.decided:
            self.decided.add(id(rule))
            self.book.fill_one(rule)

    def get(self, rule, default=None):  # noqa: ANN001, ANN201
        self._decide(rule)
        return super().get(rule, default)

    def __contains__(self, rule) -> bool:  # noqa: ANN001
        self._decide(rule)
        return super().__contains__(rule)

    def __getitem__(self, rule):  # noqa: ANN001, ANN204
        self._decide(rule)
        return super().__getitem__(rule)


_PHRASE_TAILS = _PhraseTails()


# -- the book ----------------------------------------------------------------------------------


class ListingBook:
    """What reading a listed chain needs: the listing reader (its row reader), each table's
    layout, the ruleset; and the fill of hidden interfaces, once asked for."""

    def __init__(self, rs: Ruleset, reader: ListingReader, source: str) -> None:
        self.rs = rs
        self.reader = reader
        self.source = source
        self.layouts: dict[str, Layout] = {}
        self.verbose: dict[str, bool] = {}
        self.total = 0
        self.fill: tuple | None = None  # (whole-chain shapes, ) once fill_in ran

    def rule_count(self) -> int:
        return self.total

    def reader_clean(self, line: int) -> None:
        r = self.reader
        if r.unread or r.losses or r.redacted or r.unresolved:
            raise AssertionError(f"listing scan let through line {line}, which the listing reader could not read whole")

    def read_chain(self, chain: ListingChain) -> None:
        pending = chain._pending
        chain._pending = None
        rules: list = []
        chain.rules = rules
        if pending is None:
            return
        text, start, end = pending
        if start == end:
            return
        t = self.rs.tables[(chain._first, chain.table)]  # _first: the family
        where = _Where(t.name, t.family, chain.name)
        lay = self.layouts[t.name]
        tre = _target_re(lay.num, lay.counters)
        lines = text[start:end - 1].split("\n")
        first = chain.line + 2
        source = self.source
        for k, line in enumerate(lines):
            m = tre.match("\n" + line)
            jump = _jump_of(m.group(1)) if m is not None else None
            rules.append(ListingRow(where, line, first + k, k + 1, source, self, jump))

    def names_interface(self, row: ListingRow) -> bool:
        lay = self.layouts[row.table]
        if not lay.via:
            return False
        m = _IFACES.match(row._text or "")
        return m is None or not (m.group(1) in ("*", "any") and m.group(2) in ("*", "any"))

    def row_keys(self, row: "ListingRow", text: str) -> tuple[int | None, int | None]:
        lay = self.layouts[row.table]
        m = _keys_re(lay.num, lay.counters).match(text)
        if m is None:
            return None, None
        d, p = m.groups()
        port = int(p) if p is not None and int(p) <= 65535 else None
        return (int.from_bytes(inet_aton(d), "big") if d is not None else None), port

    # -- hidden interfaces (toolshapes.fill_in) ---------------------------------------------------

    def fill_in(self, host) -> int:  # noqa: ANN001
        """:func:`iptexplain.parse.toolshapes.fill_in` for this listing: the chains a shape of
        several rules may match are read and filled now, with the knowledge (networks, bridges)
        the eager fill gathers from them; the others' rows are decided when asked about."""
        rs = self.rs
        if "interfaces" not in rs.hidden or self.fill is not None:
            return 0
        shapes = ts.present_shapes(rs)
        many: dict[str, set[str]] = {}
        runs: list = []
        for t in rs.tables.values():
            names = set()
            for s in shapes:
                if not s.whole_chain and re.fullmatch(s.table, t.name):
                    names.update(n for n in s.chain.split("|") if n in t.chains)
            many[t.name] = names
            for c in t.chains.values():
                if c.name in names:
                    runs += ts.chain_runs(shapes, t, c)
        self.fill = (shapes, many)
        filled = LazyFilled(self)
        filled.update(rs.filled)
        rs.filled = filled
        know = ts.Knowledge(runs=runs)
        know.networks, know.per_network = ts._networks(know.runs, host)
        for t in rs.tables.values():
            for c in t.chains.values():
                if c.name in many[t.name]:
                    filled.decided.update(id(r) for r in c.rules)
        return ts.apply_runs(rs, know)

    def fill_one(self, rule: ListingRow) -> None:
        """Decide one row of a chain the fill did not read: the first one-rule shape of a whole
        chain that takes it (the eager fill's order), if any."""
        if self.fill is None:
            return
        shapes, many = self.fill
        if rule.chain in many.get(rule.table, ()):
            return
        rs = self.rs
        fam = next(f for (f, n) in rs.tables if n == rule.table)
        t = rs.tables[(fam, rule.table)]
        for s in shapes:
            if s.whole_chain and re.fullmatch(s.table, t.name) and re.fullmatch(s.chain, rule.chain):
                runs = ts._whole_chain_runs(s, [rule])
                if runs:
                    know = ts.Knowledge(runs=runs)
                    ts.apply_runs(rs, know, decided=True)
                    return


_IFACES = re.compile(r" *+(?:[0-9]++ ++)?[0-9]++[KMGT]? ++[0-9]++[KMGT]? ++(?:\S++ ++)??\S++ ++[-!][-f] ++(\S++) ++(\S++) ")


@lru_cache(maxsize=4)
def _keys_re(num: bool, verbose: bool) -> re.Pattern[str]:
    """A row's destination column and, when its free text is only ``[comment] tcp|udp|sctp
    dpt:N``, the port (:meth:`ListingRow.raw_keys`)."""
    pre = r" *+" + (r"[0-9]++ ++" if num else "") + (r"[0-9]++[KMGT]? ++[0-9]++[KMGT]? ++" if verbose else "")
    return re.compile(pre + rf"(?:[^ \n]++ ++)??{_PROTO} ++[-!][-f] ++" + (r"[^ \n]++ ++[^ \n]++ ++" if verbose else "")
                      + rf"{_ADDR} ++(?:({_OCTET}(?:\.{_OCTET}){{3}})(?:/32)?(?= |$)|[^ \n]++)"
                      + rf"(?: ++(?:{_COMMENT} ++)?(?:tcp|udp|sctp) dpt:([0-9]{{1,5}}) *+$)?")


# -- the scan ------------------------------------------------------------------------------------


def read_listing_deferred(text: str, source: str, family: int | None = None, table: str | None = None) -> Ruleset:
    """Scan an ``iptables -L`` listing's layout; raise :class:`GiveUp` when it is not sure the
    listing reader would read it as this reader does (see the module's docstring)."""
    if not text.endswith("\n") or "Chain " not in text[:1 << 16] or any(b in text for b in _LINE_BREAKS):
        raise GiveUp
    reader = ListingReader(source, family, table)
    reader.tails = _PHRASE_TAILS
    rs = reader.rs
    book = ListingBook(rs, reader, source)
    sections: list[_Section] = []
    sec: _Section | None = None
    pending: Command | None = None
    pos = 0
    line = 1
    n = len(text)
    order = [(False, True), (False, False), (True, True), (True, False)]  # the last one seen first
    lay = order[0]
    block = _block_re(*lay)
    with _no_gc(freeze=True):
        while pos < n:
            m = block.match(text, pos) if text.startswith("Chain ", pos) else None
            if m is None and text.startswith("Chain ", pos):
                for lay in order:  # another layout (another command's listing)
                    block = _block_re(*lay)
                    m = block.match(text, pos)
                    if m is not None:
                        break
            if m is None:
                # Not a chain block: blank lines and listing commands only.
                end = text.index("\n", pos)
                raw = text[pos:end]
                if raw.strip():
                    cmd = _command(raw, line)
                    if sec is not None and sec.blocks:
                        sections.append(sec)
                    sec = None
                    pending = cmd
                pos = end + 1
                line += 1
                continue
            name, policy, pp, pb, refs = m.group(1, 2, 3, 4, 5)
            new = sec is None or name in sec.names
            if sec is not None and not new and policy is not None and any(b[1] is None for b in sec.blocks):
                new = True  # a built-in chain after a user chain: another table
            if not new and sec.layout != lay:  # type: ignore[union-attr]
                raise GiveUp  # the layout changes inside a table's listing
            if new:
                if sec is not None and sec.blocks:
                    sections.append(sec)
                sec = _Section(pending)
                pending = None
                sec.start = m.start()
                sec.first_line = line
                sec.layout = lay
            rows_start, rows_end = m.span(7)
            nrows = text.count("\n", rows_start, rows_end)
            sec.blocks.append((name, policy, (pp, pb) if pp is not None else None, refs, line, rows_start, rows_end,
                               nrows))
            sec.names.add(name)  # type: ignore[union-attr]
            sec.end = rows_end  # type: ignore[union-attr]
            sec.last_line = line + 1 + nrows  # type: ignore[union-attr]
            pos = m.end()
            line += 2 + nrows + (pos - rows_end)  # header, heading, rows, blank lines
        if sec is not None and sec.blocks:
            sections.append(sec)
        if not sections:
            raise GiveUp
        _build(rs, book, reader, sections, text, family, table)
    rs.deferred = book
    return rs


def _command(raw: str, line: int) -> Command:
    """A line between chain blocks that the listing reader takes as an ``iptables … -L`` command
    of a whole table, and that nothing before it (quoting, format detection) would take for
    something else; GiveUp otherwise."""
    if (_QUOTE_RE.match(raw) or _STRAY_RE.match(raw) or _ELISION_RE.match(raw) or _CHAIN_RE.match(raw.rstrip())
            or NFT_RE.search(raw) or SAVE_RE.search(raw) or _S_LINE.match(raw) or raw.lstrip().startswith(("{", ">"))
            or layout_of(raw.split()) is not None):
        raise GiveUp
    cmd = parse_command(raw.rstrip(), line)
    if not isinstance(cmd, Command) or cmd.chain is not None or cmd.piped:
        raise GiveUp
    return cmd


def _build(rs: Ruleset, book: ListingBook, reader: ListingReader, sections: list[_Section], text: str,
           family: int | None, table_hint: str | None) -> None:
    """Tables of the sections, as :meth:`ListingReader.build` makes them."""
    seen: set[tuple[int, str]] = set()
    no_via: list[_Section] = []
    names_used = False
    rounded = False
    any_rows = False
    for sec in sections:
        num, verbose = sec.layout  # type: ignore[misc]
        counts = Counter(_target_re(num, verbose).findall(text, sec.start - 1 if sec.start else 0, sec.end))
        builtins = {b[0] for b in sec.blocks if b[1] is not None}
        for w in counts:
            if w not in ALLOWED_TARGETS and w not in sec.names:
                raise GiveUp  # a target the scan does not know, or a jump to a chain not shown
        _place(rs, reader, sec, builtins, set(counts), text, family, table_hint)
        key = (sec.family, sec.table)
        if key in seen:
            raise GiveUp  # listed twice: the listing reader compares the listings
        seen.add(key)
        t = rs.tables[key] = Table(sec.table, sec.family, line=sec.first_line)
        lay = layout_of(_heading(text, sec).split())
        assert lay is not None
        book.layouts[sec.table] = lay
        if not lay.via:
            no_via.append(sec)
        order = BUILTIN_CHAINS[sec.table]
        made = {}
        fam = sec.family
        tname = sec.table
        for name, policy, pc, refs, line, start, end, nrows in sec.blocks:
            builtin = name in order
            counters = None
            if pc is not None:
                counters = Counters(reader._count(pc[0]), reader._count(pc[1]))
            pol = (policy or "ACCEPT") if builtin else None
            jumps = counts.get(name, 0)
            made[name] = ListingChain(name, tname, builtin, pol, counters, line, book,  # type: ignore[arg-type]
                                      int(refs) if refs is not None else None, (text, start, end), nrows, fam,
                                      jumps if name not in _NOT_JUMPS else 0)
            book.total += nrows
        any_rows = any_rows or bool(counts) or any(b[7] for b in sec.blocks)
        # Built-in chains first, in iptables-save order; those not listed are unknown (listed=False).
        chains = {b: made[b] if b in made else Chain(b, tname, True, policy="ACCEPT", listed=False) for b in order}
        chains.update(made)
        t.chains = chains
        if sec.command is not None and not sec.command.numeric:
            names_used = True
        if not names_used and text.find("anywhere", sec.start, sec.end) >= 0:
            names_used = _anywhere_in_columns(text[sec.start:sec.end], lay)
        if verbose and not rounded:
            rounded = (_rounded_row(num).search(text, max(sec.start - 1, 0), sec.end) is not None
                       or _ROUNDED_POLICY.search(text, sec.start, sec.end) is not None)
    reader.names_used = names_used
    reader.rounded = reader.rounded or rounded
    # Every row of a listing with -v has counters: some rule has them when some row is listed.
    reader._fidelity(no_via, [], counted=any_rows)  # type: ignore[arg-type]


def _heading(text: str, sec: _Section) -> str:
    """The column heading of the section's first chain (the line before its rows)."""
    rows = sec.blocks[0][5]
    return text[text.rfind("\n", 0, rows - 1) + 1:rows - 1]


def _anywhere_in_columns(body: str, lay: Layout) -> bool:
    """Whether a row shows ``anywhere`` in its source or destination column (iptables -L without
    -n), not only in its free text."""
    i = body.find("anywhere")
    while i >= 0:
        start = body.rfind("\n", 0, i) + 1
        end = body.find("\n", i)
        row = split_row(body[start:end if end >= 0 else len(body)].rstrip(), lay)
        if row is not None and "anywhere" in (row.src.lstrip("!"), row.dst.lstrip("!")):
            return True
        i = body.find("anywhere", end if end >= 0 else len(body))
    return False


def _place(rs: Ruleset, reader: ListingReader, sec: _Section, builtins: set[str], targets: set[str], text: str,
           family: int | None, table_hint: str | None) -> None:
    """The family and table of a section, and the note the listing reader writes about them
    (:meth:`ListingReader._place`)."""
    cmd = sec.command
    fam = (cmd.family if cmd is not None else None) or family
    if fam is None:
        if text.find("icmp6", sec.start, sec.end) >= 0 or text.find("ipv6-icmp", sec.start, sec.end) >= 0:
            raise GiveUp  # the listing reader weighs the rows' families
        fam = 4
    if fam != 4:
        raise GiveUp  # rows with IPv4 addresses only
    sec.family = fam
    hint = reader.table_hint
    if hint is not None:
        odd = sorted(builtins - set(BUILTIN_CHAINS[hint]))
        if odd:
            raise InputError(f"--table {hint}: table {hint} has no {', '.join(odd)} chain, which "
                             f"{sec.span()} list{'s' if sec.first_line == sec.last_line else ''}",
                             reader.source, sec.first_line)
        sec.table = hint
        if cmd is not None and (cmd.table or "filter") != hint:
            rs.note("inference", f"{sec.span()}: read as table {hint}, as --table says, although "
                                 f"the command at line {cmd.line} lists {cmd.table or 'filter'}", sec.first_line)
        return
    why_not = None
    if cmd is not None:
        name = cmd.table or "filter"
        if builtins <= set(BUILTIN_CHAINS[name]):
            sec.table = name
            return
        odd = sorted(builtins - set(BUILTIN_CHAINS[name]))
        why_not = f"the command at line {cmd.line} lists table {name}, but table {name} has no {', '.join(odd)} chain"
    sec.table, reason = infer_table(builtins, targets - {""})
    msg = f"{sec.span()}: no command names the table; read as {sec.table} because {reason}"
    if why_not:
        msg = f"{sec.span()}: {why_not}; read as {sec.table} because {reason}"
    rs.note("inference", msg, sec.first_line)
