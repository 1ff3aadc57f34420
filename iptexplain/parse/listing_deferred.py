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
reads the text with the listing reader.  The layout itself -- the patterns, the phrases and their
modules -- is :mod:`iptexplain.parse.listing_layout`.
"""

from __future__ import annotations

import re
from collections import Counter
from socket import inet_aton

from iptexplain.core.errors import InputError
from iptexplain.graph import BUILTIN_CHAINS, Chain, Counters, Rule, Ruleset, Table
from iptexplain.parse.deferred import DeferredChain, GiveUp
from iptexplain.parse import toolshapes as ts
from iptexplain.parse.detect import NFT_RE, SAVE_RE
from iptexplain.parse.gc_pause import _no_gc
from iptexplain.parse.lazy import read_on_access
from iptexplain.parse.listing import ListingReader
from iptexplain.parse.listing_layout import (ALLOWED_TARGETS, _block_re, _COMMENT_SPAN, _IFACES, _jump_of,
                                            _keys_re, _LINE_BREAKS, _listing_words, _NOT_JUMPS, _PHRASE_TAILS,
                                            _ROUNDED_POLICY, _rounded_row, _S_LINE, _target_re)
from iptexplain.parse.listing_rows import _CHAIN_RE, Command, Layout, layout_of, parse_command, split_row
from iptexplain.parse.rough import _ELISION_RE, _QUOTE_RE, _STRAY_RE
from iptexplain.parse.s_tables import infer_table

_HEADER = Rule.__dict__["header"]
_MATCHES = Rule.__dict__["matches"]
_TARGET = Rule.__dict__["target"]
_GOTO = Rule.__dict__["goto"]
_COUNTERS = Rule.__dict__["counters"]

class _Where:
    """The section (table, family) and chain a row is read in: what
    :meth:`ListingReader._rule` asks of its Section and Block."""

    __slots__ = ("table", "family", "name")

    def __init__(self, table: str, family: int, name: str) -> None:
        self.table, self.family, self.name = table, family, name


class _Section:
    """Consecutive chain blocks of one table, as the listing reader cuts them: the chains made
    as they are scanned (their table, family and callers are set when the section is placed)."""

    __slots__ = ("command", "chains", "policies", "rows", "user", "start", "end", "table", "family", "first_line",
                 "last_line", "layout")

    def __init__(self, command: Command | None) -> None:
        self.command = command
        self.chains: dict[str, ListingChain] = {}
        self.policies: dict[str, tuple] = {}  # chains listed with a policy: (policy, counters text)
        self.rows = 0
        self.user = False  # a chain without a policy was listed (a built-in one after it: a new table)
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

    header = read_on_access(_HEADER)
    matches = read_on_access(_MATCHES)
    target = read_on_access(_TARGET)
    goto = read_on_access(_GOTO)
    counters = read_on_access(_COUNTERS)

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

    def __init__(self, name: str, line: int, book: "ListingBook", kernel_references: int | None,
                 rows: tuple[str, int, int], size: int) -> None:
        # Not DeferredChain.__init__: 37,000 of these per kube-proxy listing, made as the scan
        # goes; the table, family and callers are set when the section's table is known, a
        # built-in chain's policy and counters then too.
        self.name = name
        self.table = ""
        self.builtin = False
        self.policy = None
        self.counters = None
        self.line = line
        self.references = []  # filled by Ruleset.link() (parse_all)
        self.listed = True
        self.policy_known = True
        self.gaps = ()
        self.source = ""
        self.kernel_references = kernel_references
        self._pending = rows
        self._first = 4  # the family: the book finds the chain's table by it
        self._book = book
        self._size = size
        self._more = None
        self.jumps_in = 0

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

    def hooks_from_references(self) -> None:
        """Nothing to find (:meth:`Ruleset.parse_all` asks a save dump's book for every chain's
        hooks): the listing reader makes no checks of where a module may be used."""

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
    count = text.count
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
                    if sec is not None and sec.chains:
                        sections.append(sec)
                    sec = None
                    pending = cmd
                pos = end + 1
                line += 1
                continue
            name, policy, pp, pb, refs = m.groups()[:5]
            new = sec is None or name in sec.chains
            if not new and policy is not None and sec.user:  # type: ignore[union-attr]
                new = True  # a built-in chain after a user chain: another table
            if not new and sec.layout != lay:  # type: ignore[union-attr]
                raise GiveUp  # the layout changes inside a table's listing
            if new:
                if sec is not None and sec.chains:
                    sections.append(sec)
                sec = _Section(pending)
                pending = None
                sec.start = m.start()
                sec.first_line = line
                sec.layout = lay
            rows_start, rows_end = m.span(7)
            nrows = count("\n", rows_start, rows_end)
            sec.chains[name] = ListingChain(name, line, book, int(refs) if refs is not None else None,  # type: ignore
                                            (text, rows_start, rows_end), nrows)
            if policy is not None:
                sec.policies[name] = (policy, pp, pb)  # type: ignore[union-attr]
            else:
                sec.user = True  # type: ignore[union-attr]
            sec.rows += nrows  # type: ignore[union-attr]
            sec.end = rows_end  # type: ignore[union-attr]
            sec.last_line = line + 1 + nrows  # type: ignore[union-attr]
            pos = m.end()
            line += 2 + nrows + (pos - rows_end)  # header, heading, rows, blank lines
        if sec is not None and sec.chains:
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
        builtins = set(sec.policies)
        for w in counts:
            if w not in ALLOWED_TARGETS and w not in sec.chains:
                raise GiveUp  # a target the scan does not know, or a jump to a chain not shown
        anywhere = text.find("anywhere", sec.start, sec.end) >= 0  # a row's address may be `anywhere'
        _place(rs, reader, sec, builtins, set(counts), text, family, table_hint, anywhere)
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
        fam = sec.family
        tname = sec.table
        made = sec.chains
        get = counts.get
        for c in made.values():
            c.table = tname
            c._first = fam
            c.jumps_in = get(c.name, 0)
        for name in _NOT_JUMPS.intersection(made):
            made[name].jumps_in = 0  # named as a target, not jumped to
        for name, (policy, pp, pb) in sec.policies.items():
            if pp is not None:
                made[name].counters = Counters(reader._count(pp), reader._count(pb))
        for b in order:
            if b in made:
                c = made[b]
                c.builtin = True
                c.policy = sec.policies[b][0] if b in sec.policies else "ACCEPT"
        book.total += sec.rows
        any_rows = any_rows or sec.rows > 0
        # Built-in chains first, in iptables-save order; those not listed are unknown (listed=False).
        chains = {b: made[b] if b in made else Chain(b, tname, True, policy="ACCEPT", listed=False) for b in order}
        chains.update(made)
        t.chains = chains
        if sec.command is not None and not sec.command.numeric:
            names_used = True
        if not names_used and anywhere:
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
    rows = next(iter(sec.chains.values()))._pending[1]  # type: ignore[index]
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
           family: int | None, table_hint: str | None, anywhere: bool) -> None:
    """The family and table of a section, and the note the listing reader writes about them
    (:meth:`ListingReader._place`)."""
    cmd = sec.command
    fam = (cmd.family if cmd is not None else None) or family
    if fam is None:
        # The listing reader takes IPv4 when a row shows an IPv4 address -- every row here shows
        # numbers or `anywhere' -- or when none names ICMPv6.
        if (not sec.rows or anywhere) and (text.find("icmp6", sec.start, sec.end) >= 0
                                            or text.find("ipv6-icmp", sec.start, sec.end) >= 0):
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
