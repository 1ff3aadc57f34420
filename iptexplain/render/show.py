"""``iptexplain show``: a ruleset as aligned tables, one per chain, with its jump edges.

What it shows, for each table (raw, mangle, nat, filter, security; IPv4 then IPv6):

* built-in chains with their policy and policy counters, then user chains with the rules that
  reference them (``← INPUT#3``, ``↪`` marking a goto);
* each rule with its number, its counters when the input had them, the rule text (addresses,
  interfaces, protocol and matches, in iptables-save syntax) and its target -- ``→ CHAIN`` for a
  jump, ``↪ CHAIN`` for a goto, the target with its options otherwise.  A module iptexplain does
  not understand is highlighted where it appears;
* the notes the reader made (repairs, inferences, anonymized MACs, what a listing hides);
* a closing summary: tables, chains, rules, modules not understood.

Why it is built this way: a kube-proxy node with 10,000 services has ~37,000 chains and
~100,000 rules, and people page through (or grep) the whole view.  Rich's own ``Table`` measures
every cell through several layers of renderables, and even hand-made segments pay rich's
per-segment cropping and cell measuring -- tens of seconds at that scale.  So the layout is done
here, once, in plain characters: every part of the view (:class:`Part`) is a list of lines, each
line a list of ``(text, style name)`` pieces, wrapped by hand at word boundaries and never wider
than the console.  Two writers consume the same lines:

* when nothing would be styled (standard output is not a terminal, no recording), the lines are
  joined and written straight to the console's file, a few thousand at a time
  (:func:`render_ruleset`'s plain path);
* otherwise the pieces become rich ``Segment`` objects printed without rich's re-cropping (the
  lines already fit), so colours, ``NO_COLOR``, recording and export work as rich does them.

Both writers give the same characters (``tests/test_show.py`` checks it), and the view is
produced and printed chain by chain: memory does not grow with the output.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import IO, Iterable, Iterator

from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.style import Style

from iptexplain.errors import InputError
from iptexplain.ext.base import ChainJump, Extension, extension_name
from iptexplain.graph import Chain, Counters, IPHeader, Rule, Ruleset, Table
from iptexplain.terminal import printable

NOT_UNDERSTOOD_STYLE = "bold magenta"
MAX_REFERENCES_SHOWN = 6

Piece = tuple[str, str]  # (text, style name; "" is unstyled)
Words = list[Piece]  # a cell: words, wrapped at word boundaries
Line = list[Piece]  # one output line, never wider than the console


def human(n: int) -> str:
    """A counter as ``iptables -v`` prints it: exact below 100000, then K, M, G, T."""
    if n < 100_000:
        return str(n)
    for unit in ("K", "M", "G", "T"):
        n //= 1000
        if n < 100_000:
            return f"{n}{unit}"
    return f"{n}P"


def _counters_text(c: Counters | None) -> str:
    return "" if c is None else f"{human(c.packets)} pkts {human(c.bytes)} bytes"


_VERDICT_STYLES = {"ACCEPT": "green", "DROP": "red", "REJECT": "red", "RETURN": "yellow"}


def _verdict_style(name: str) -> str:
    return _VERDICT_STYLES.get(name, "cyan")


def _pieces(words: Words) -> Line:
    """Words on one line as pieces: plain words and the blanks between words gathered."""
    out: Line = []
    buf: list[str] = []
    for j, (w, st) in enumerate(words):
        if j:
            buf.append(" ")
        if st:
            if buf:
                out.append(("".join(buf), ""))
                buf = []
            out.append((w, st))
        else:
            buf.append(w)
    if buf:
        out.append(("".join(buf), ""))
    return out


class Cell:
    """A rule's or a target's words, with their one-line text and pieces made once: most rows
    fit on one line, and then only ``text`` (its width) and ``pieces`` are read."""

    __slots__ = ("_words", "_parts", "text", "pieces", "plain")

    def __init__(self, words: Words | None, text: str, pieces: Line, parts: list[Cell] | None = None) -> None:
        self._words = words
        self._parts = parts
        self.text = text
        self.pieces = pieces
        self.plain = not pieces or (len(pieces) == 1 and not pieces[0][1])

    @classmethod
    def of(cls, words: Words) -> Cell:
        return cls(words, " ".join([w for w, _ in words]), _pieces(words))

    @classmethod
    def concat(cls, parts: list[Cell]) -> Cell:
        """The cells one after the other (a rule: its header, then each match)."""
        if len(parts) == 1:
            return parts[0]
        text = " ".join([p.text for p in parts])
        for p in parts:
            if not p.plain:
                return cls(None, text, _pieces([w for p in parts for w in p.words]), parts)
        return cls(None, text, [(text, "")])

    @classmethod
    def plain_words(cls, words: list[str]) -> Cell:
        """Unstyled words: their list is made from the text only if the cell must be wrapped."""
        text = " ".join(words)
        return cls(None, text, [(text, "")] if text else [])

    @property
    def words(self) -> Words:
        if self._words is None:
            if self._parts is not None:
                self._words = [w for p in self._parts for w in p.words]
            else:  # plain: the text is the words joined by single blanks
                self._words = [(w, "") for w in self.text.split(" ")] if self.text else []
        return self._words


class CellCache:
    """The cells of each header, match and target, made once per view.

    The parser shares one object between all the rules that spell a header or a module alike
    (``-m tcp --dport 443``, ``-j KUBE-MARK-MASQ``: most of a kube-proxy dump), so their cells are
    cached by identity.  The object is kept beside its cell, so that its identity cannot be
    reused while it is cached; the cache is emptied when it grows past ``LIMIT`` (the shared
    objects come back at once, the unique ones -- comments, endpoints -- are not worth keeping)."""

    LIMIT = 8192

    def __init__(self) -> None:
        self._cells: dict[int, tuple[object, Cell]] = {}
        self.get = self._cells.get  # (object, cell) by id(object), for the hot loop in cells()

    def _put(self, obj: object, cell: Cell) -> Cell:
        if len(self._cells) >= self.LIMIT:
            self._cells.clear()
        self._cells[id(obj)] = (obj, cell)
        return cell

    def header(self, h: IPHeader) -> Cell:
        hit = self._cells.get(id(h))
        if hit is not None:
            return hit[1]
        return self._put(h, Cell.plain_words(h.save_args()))

    def match(self, m: Extension) -> Cell:
        hit = self._cells.get(id(m))
        if hit is not None:
            return hit[1]
        # A quoted comment is one argument but wraps like prose.
        if m.understood:
            return self._put(m, Cell.plain_words([x for w in m.save() for x in w.split(" ") if x]))
        st = NOT_UNDERSTOOD_STYLE
        words = [(x, st) for w in m.save() for x in w.split(" ") if x]
        if not m.understood:
            words.append(("(not understood)", NOT_UNDERSTOOD_STYLE))
        return self._put(m, Cell.of(words))

    def target(self, t: Extension) -> Cell:
        hit = self._cells.get(id(t))
        if hit is not None:
            return hit[1]
        name = extension_name(t)
        words = [(name, _verdict_style(name) if t.understood else NOT_UNDERSTOOD_STYLE)]
        words += [(x, "") for w in t.save_args() for x in w.split(" ") if x]
        if not t.understood:
            words.append(("(not understood)", NOT_UNDERSTOOD_STYLE))
        return self._put(t, Cell.of(words))


_EVERY_PACKET = Cell.of([("(every packet)", "dim")])
_NO_TARGET = Cell.of([("(no target: counts only)", "dim")])


def cells(rule: Rule, cache: CellCache) -> tuple[Cell, Cell]:
    """The rule cell and the target cell of one rule."""
    if getattr(rule, "parts", None) is not None:
        return _own_cells(rule)
    get = cache.get
    hit = get(id(rule.header))
    h = hit[1] if hit is not None else cache.header(rule.header)
    parts = [h] if h.text else []
    for m in rule.matches:
        hit = get(id(m))
        parts.append(hit[1] if hit is not None else cache.match(m))
    rule_cell = Cell.concat(parts) if parts else _EVERY_PACKET
    t = rule.target
    if t is None:
        target = _NO_TARGET
    elif isinstance(t, ChainJump):
        text = ("↪ " if rule.goto else "→ ") + t.chain
        words = [(text, "bold blue")]
        target = Cell(words, text, words)
    else:
        target = cache.target(t)
    return rule_cell, target


def _own_cells(rule: Rule) -> tuple[Cell, Cell]:
    """A rule of another language (nft) as that language prints it: its expressions, then its
    statements and verdict; what is not understood is highlighted."""
    matches, target, comments = rule.parts()  # type: ignore[attr-defined]
    if getattr(rule, "piece", "") or len(matches.split()) != sum(len(m.nft_text().split()) for m in rule.matches):
        words = [(x, "") for x in matches.split()]
    else:
        words = [(x, "" if m.understood else NOT_UNDERSTOOD_STYLE) for m in rule.matches
                 for x in m.nft_text().split()]
    if any(not m.understood for m in rule.matches):
        words.append(("(not understood)", NOT_UNDERSTOOD_STYLE))
    words += [(x, "dim") for c in comments for x in f'comment "{c}"'.split()]
    rule_cell = Cell.of(words) if words else _EVERY_PACKET
    t = rule.target
    if t is None and not target:
        return rule_cell, _NO_TARGET
    if t is None:
        return rule_cell, Cell.of([(x, "") for x in target.split()])
    verdict = getattr(t, "verdict_stmt", None)
    vwords = verdict.text.split() if verdict is not None else []
    tw = target.split()
    style = _verdict_style(vwords[0].upper()) if vwords and tw[-len(vwords):] == vwords else ""
    out = [(x, style if style and i >= len(tw) - len(vwords) else "") for i, x in enumerate(tw)]
    if not t.understood:
        out.append(("(not understood)", NOT_UNDERSTOOD_STYLE))
    return rule_cell, Cell.of(out)


def rule_cells(rule: Rule, cache: CellCache | None = None) -> tuple[Words, Words]:
    """(rule words, target words) of one rule.  A module iptexplain does not understand carries
    the highlight style and the words ``(not understood)``.  The lists may be shared: read them,
    do not change them."""
    rule_cell, target = cells(rule, cache or CellCache())
    return rule_cell.words, target.words


def _wrap(words: Words, width: int) -> list[tuple[Line, int]]:
    """Greedy word wrap; a word longer than the column is cut.  Each line as its pieces (plain
    words and blanks gathered, as :func:`_pieces` gives them) and its width."""
    out: list[tuple[Line, int]] = []
    line: Line = []
    buf: list[str] = []
    used = 0
    for w, st in words:
        while len(w) > width:
            if used:
                if buf:
                    line.append(("".join(buf), ""))
                out.append((line, used))
                line, buf, used = [], [], 0
            out.append(([(w[:width], st)], width))
            w = w[width:]
        if not w:
            continue
        if used:
            if used + 1 + len(w) > width:
                if buf:
                    line.append(("".join(buf), ""))
                out.append((line, used))
                line, buf, used = [], [], 0
            else:
                buf.append(" ")
                used += 1
        if st:
            if buf:
                line.append(("".join(buf), ""))
                buf = []
            line.append((w, st))
        else:
            buf.append(w)
        used += len(w)
    if used or not out:
        if buf:
            line.append(("".join(buf), ""))
        out.append((line, used))
    return out


def _wrap_plain(text: str, width: int) -> list[tuple[Line, int]]:
    """:func:`_wrap` of unstyled words given as their text (words joined by single blanks):
    the same lines, found with ``str.rfind``."""
    out: list[tuple[Line, int]] = []
    start, n = 0, len(text)
    while n - start > width:
        cut = text.rfind(" ", start, start + width + 1)
        if cut > start:
            out.append(([(text[start:cut], "")], cut - start))
            start = cut + 1
        else:  # a word longer than the column: cut it
            out.append(([(text[start:start + width], "")], width))
            start += width
    if start < n or not out:
        out.append(([(text[start:], "")] if start < n else [], n - start))
    return out


def _slice(line: Line, start: int, end: int) -> Line:
    """The pieces of ``line`` between two character offsets."""
    out: Line = []
    pos = 0
    for text, st in line:
        nxt = pos + len(text)
        if nxt > start and pos < end:
            out.append((text[max(start - pos, 0):end - pos], st))
        pos = nxt
        if pos >= end:
            break
    return out


def fold(line: Line, width: int) -> list[Line]:
    """A line of prose (a title, a note, the summary) cut at blanks to fit ``width``; the blanks
    at a break are dropped and a word longer than the width is cut."""
    text = "".join(t for t, _ in line)
    n = len(text)
    if n <= width:
        return [line]
    width = max(width, 1)
    out: list[Line] = []
    start = 0
    while start < n:
        if n - start <= width:
            end = nxt = n
        else:
            cut = text.rfind(" ", start, start + width + 1)
            end = nxt = cut if cut > start else start + width
        while end > start and text[end - 1] == " ":
            end -= 1
        out.append(_slice(line, start, end))
        start = nxt
        while start < n and text[start] == " ":
            start += 1
    return out


def _crop(line: Line, width: int) -> Line:
    return _slice(line, 0, width) if sum(len(t) for t, _ in line) > width else line


class Part:
    """One part of the view (a chain, the notes, a title line): its lines at a given width.
    It is also a rich renderable, for callers that compose it with other rich output."""

    def lines(self, width: int) -> Iterator[Line]:
        raise NotImplementedError

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from _segments([self], console, options.max_width, blank_between=False)


class Prose(Part):
    """Lines of prose, each folded at blanks to the width."""

    def __init__(self, *lines: Line) -> None:
        self.prose = lines

    def lines(self, width: int) -> Iterator[Line]:
        for line in self.prose:
            yield from fold(line, width)

    @property
    def plain(self) -> str:
        return "\n".join("".join(t for t, _ in line) for line in self.prose)


Row = tuple[str, str, str, Cell, Cell]  # number, packets, bytes, rule, target


class ChainRows(Part):
    """One chain: its title, then its rules as aligned columns: #, [pkts, bytes,] rule, target."""

    GAP = "   "

    def __init__(self, title: Line, rows: list[Row], with_counters: bool) -> None:
        self.title = title
        self.rows = rows
        self.with_counters = with_counters

    def lines(self, width: int) -> Iterator[Line]:
        yield from fold(self.title, width)
        rows = self.rows
        if not rows:
            return
        GAP = self.GAP
        heads = ["#"] + (["pkts", "bytes"] if self.with_counters else [])
        nfixed = len(heads)
        fixed = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(heads)]
        rule_nat = max([4] + [len(r[3].text) for r in rows])
        target_nat = max([6] + [len(r[4].text) for r in rows])
        avail = width - sum(fixed) - len(GAP) * nfixed - len(GAP)
        target_w = min(target_nat, max(12, avail * 2 // 5))
        rule_w = max(10, min(rule_nat, avail - target_w))
        target_w = max(6, min(target_nat, avail - rule_w))
        # Keep a target's name (or ``→ CHAIN``) on one line when the width allows it.
        first = max([len(r[4].words[0][0]) for r in rows if r[4].text] + [0])
        if first > target_w and avail - first >= 10:
            target_w = first
            rule_w = max(10, min(rule_nat, avail - target_w))
        total = sum(fixed) + len(GAP) * (nfixed + 1) + rule_w + target_w
        crop = total > width  # only on a console narrower than the fixed columns

        head = GAP.join(h.rjust(w) for h, w in zip(heads, fixed))
        out: list[Line] = [
            [(head + GAP + "rule".ljust(rule_w) + GAP + "target", "bold")],
            [("─" * min(total, width), "dim")],
        ]
        blank = GAP.join(" " * w for w in fixed) + GAP
        w0 = fixed[0]
        w1, w2 = (fixed[1], fixed[2]) if nfixed > 1 else (0, 0)
        for number, packets, nbytes, rule, target in rows:
            lead = GAP + packets.rjust(w1) + GAP + nbytes.rjust(w2) + GAP if nfixed > 1 else GAP
            rtext = rule.text
            if len(rtext) <= rule_w and len(target.text) <= target_w:
                # One line (most rows): the cells' pieces, made once, with the padding between.
                pad = " " * (rule_w - len(rtext)) + GAP
                tp = target.pieces
                if rule.plain:
                    plain = lead + rtext + pad
                    if tp and not tp[0][1]:
                        line = [(number.rjust(w0), "dim"), (plain + tp[0][0], "")]
                        line += tp[1:]
                    else:
                        line = [(number.rjust(w0), "dim"), (plain, "")]
                        line += tp
                else:
                    line = [(number.rjust(w0), "dim"), (lead, "")]
                    _extend(line, rule.pieces)
                    _extend(line, [(pad, "")])
                    _extend(line, tp)
                out.append(line)
            else:
                if len(rtext) <= rule_w:
                    rule_lines = [(rule.pieces, len(rtext))]
                else:
                    rule_lines = _wrap_plain(rtext, rule_w) if rule.plain else _wrap(rule.words, rule_w)
                if len(target.text) <= target_w:
                    target_lines = [(target.pieces, len(target.text))]
                else:
                    target_lines = _wrap_plain(target.text, target_w) if target.plain else _wrap(target.words, target_w)
                nr, nt = len(rule_lines), len(target_lines)
                for i in range(max(nr, nt)):
                    line = [(number.rjust(w0), "dim"), (lead, "")] if i == 0 else [(blank, "")]
                    used = 0
                    if i < nr:
                        pieces, used = rule_lines[i]
                        _extend(line, pieces)
                    if i < nt and target_lines[i][1]:
                        _extend(line, [(" " * (rule_w - used) + GAP, "")])
                        _extend(line, target_lines[i][0])
                    out.append(line)
            if len(out) >= 256:
                yield from (_crop(x, width) for x in out) if crop else out
                out = []
        yield from (_crop(x, width) for x in out) if crop else out


def _extend(line: Line, pieces: Line) -> None:
    """Append gathered pieces to a line that ends with a piece, joining two plain pieces where
    they meet (lines stay a few pieces long: the plain writer joins them, rich makes a segment
    of each)."""
    if pieces:
        if not pieces[0][1] and not line[-1][1]:
            line[-1] = (line[-1][0] + pieces[0][0], "")
            line.extend(pieces[1:])
        else:
            line.extend(pieces)


def _chain_title(table: Table, chain: Chain, both_families: bool) -> Line:
    """The chain's title line as (text, style) pieces (blanks included in the pieces)."""
    fam = f" IPv{table.family}" if both_families and not hasattr(table, "nft_family") else ""
    title: Line = [(f"{table.name}{fam}", "bold"), (" ", ""), (chain.name, "bold underline")]
    if not getattr(chain, "listed", True):
        # A placeholder (iptexplain.graph.Chain.listed): the input never showed this chain.
        title.append(("  not in the input: rules and policy unknown" if chain.builtin
                      else "  not in the input: rules unknown", "yellow"))
        if not chain.builtin and chain.references:
            refs = chain.references
            title.append((f"  ← {', '.join(f'{r.chain}#{r.number}' for r in refs[:MAX_REFERENCES_SHOWN])}", ""))
        return title
    hook = getattr(chain, "hook", None)
    if hook is not None:
        # an nft base chain: where it is registered, as nft prints it
        pri = chain.priority_text or str(chain.priority)  # type: ignore[attr-defined]
        title.append((f"  type {chain.nft_type} hook {hook.lower()} priority {pri}"  # type: ignore[attr-defined]
                      + (f" ({chain.priority})" if pri != str(chain.priority) else ""), ""))  # type: ignore[attr-defined]
    if chain.builtin and not getattr(chain, "policy_known", True):
        title += [("  policy not shown (unknown)", "yellow")]
    elif chain.builtin:
        policy = chain.policy or "ACCEPT"
        title += [("  policy ", ""), (policy, _verdict_style(policy))]
        if chain.counters is not None:
            title.append((f"  [{_counters_text(chain.counters)}]", "dim"))
    else:
        refs = chain.references
        title.append((f"  {len(refs)} reference{'s' if len(refs) != 1 else ''}", "dim"))
        if refs:
            shown = ", ".join(("↪ " if r.goto else "") + f"{r.chain}#{r.number}" for r in refs[:MAX_REFERENCES_SHOWN])
            more = f", … {len(refs) - MAX_REFERENCES_SHOWN} more" if len(refs) > MAX_REFERENCES_SHOWN else ""
            title.append((f"  ← {shown}{more}", ""))
        elif getattr(chain, "kernel_references", None):
            title.append((f"  (its {chain.kernel_references} caller(s) are not in the input)", "yellow"))
        elif any(not getattr(c, "complete", True) for c in table.chains.values()):
            title.append(("  (no caller in the input, which does not show all of the table)", "yellow"))
        else:
            title.append(("  (unreferenced: no packet reaches it)", "yellow"))
    gaps = getattr(chain, "gaps", ())
    if gaps:
        title.append((f"  (rules may be missing after #{', #'.join(map(str, gaps))})"
                      if gaps != (0,) else "  (rules may be missing)", "yellow"))
    if not chain.rules:
        title.append(("  (no rules)", "dim"))
    return title


def chain_table(table: Table, chain: Chain, both_families: bool = False,
                cache: CellCache | None = None) -> ChainRows:
    """One chain: its title line, then its rules (none for an empty chain)."""
    cache = cache or CellCache()
    title = _chain_title(table, chain, both_families)
    with_counters = False
    rows: list[Row] = []
    # an nft chain lists its rules as written (a map-driven rule is walked in pieces)
    for r in getattr(chain, "written", chain.rules):
        rule_cell, target_cell = cells(r, cache)
        c = r.counters
        handle = getattr(r, "handle", None)
        number = str(r.number) if handle is None else f"{r.number} h{handle}"
        if c is None:
            rows.append((number, "", "", rule_cell, target_cell))
        else:
            with_counters = True
            rows.append((number, human(c.packets), human(c.bytes), rule_cell, target_cell))
    return ChainRows(title, rows, with_counters)


@dataclass
class Summary:
    tables: int = 0
    builtin_chains: int = 0
    user_chains: int = 0
    rules: int = 0

    def line(self, not_understood: dict[str, int]) -> Line:
        chains = self.builtin_chains + self.user_chains
        out: Line = [
            (f"{self.tables} table{'s' if self.tables != 1 else ''}", "bold"), (", ", ""),
            (f"{chains} chain{'s' if chains != 1 else ''}", "bold"),
            (f" ({self.builtin_chains} built-in, {self.user_chains} user-defined), ", ""),
            (f"{self.rules} rule{'s' if self.rules != 1 else ''}", "bold"), ("; modules not understood: ", ""),
        ]
        if not not_understood:
            out.append(("none", "green"))
        else:
            out.append((", ".join(f"{n} ({c} rule{'s' if c != 1 else ''})" for n, c in sorted(not_understood.items())),
                        NOT_UNDERSTOOD_STYLE))
        return out

    def text(self, not_understood: dict[str, int]) -> Prose:
        return Prose(self.line(not_understood))


def select_tables(rs: Ruleset, table: str | None = None, family: int | None = None) -> list[Table]:
    """The tables to show, in kernel order (raw … security), IPv4 before IPv6."""
    out = [t for fam in rs.families() if family in (None, fam) for t in rs.tables_of(fam)
           if table in (None, t.name)]
    out += [t for t in getattr(rs, "nft_tables", ()) if table in (None, t.name, t.nft_name)
            and (family is None or family in t.ip_families)]
    if not out:
        what = " ".join(x for x in (f"table {table}" if table else "", f"IPv{family}" if family else "") if x)
        have = ", ".join([f"{t.name} (IPv{t.family})" for t in rs.tables.values()]
                         + [f"table {t.name}" for t in getattr(rs, "nft_tables", ())]) or "none"
        raise InputError(f"no {what or 'table'} in this ruleset (it has: {have})", rs.source)
    return out


def notes_view(rs: Ruleset) -> Prose | None:
    """The reader's notes: repairs, inferences, anonymized MACs, what the format hides."""
    hidden = getattr(rs, "hidden", set())
    if not rs.notes and not hidden:
        return None
    lines: list[Line] = []
    for n in rs.notes:
        for i, text in enumerate(((f"line {n.line}: " if n.line else "") + n.message).split("\n")):
            lines.append(([(f"• {n.kind}: ", "bold yellow")] if i == 0 else []) + [(text, "")])
    if hidden:
        lines.append([("• hidden: ", "bold yellow"), (f"this input format does not show {', '.join(sorted(hidden))}", "")])
    return Prose(*lines)


def iter_view(rs: Ruleset, table: str | None = None, family: int | None = None,
              chain: str | None = None) -> Iterator[Part]:
    """The parts of the view, one chain at a time, in the order they are printed."""
    tables = select_tables(rs, table, family)
    if chain is not None:
        tables = [t for t in tables if chain in t.chains]
        if not tables:
            raise InputError(f"no chain `{chain}' in the tables shown", rs.source)
    both = len({t.family for t in tables}) > 1
    yield Prose([("Ruleset ", "bold"), (rs.source, "bold cyan"), (f"  ({rs.format})", "")])
    notes = notes_view(rs)
    if notes is not None:
        yield notes
    summary = Summary()
    not_understood: dict[str, int] = {}
    cache = CellCache()
    for t in tables:
        summary.tables += 1
        chains: Iterable[Chain] = [t.chains[chain]] if chain is not None else t.chains.values()
        # Built-in chains first (in the kernel's order), then user chains in the input's order.
        for c in sorted(chains, key=lambda c: not c.builtin):
            if c.builtin:
                summary.builtin_chains += 1
            else:
                summary.user_chains += 1
            summary.rules += len(getattr(c, "written", c.rules))
            for r in c.rules:
                for e in r.matches:
                    if not e.understood:
                        n = extension_name(e)
                        not_understood[n] = not_understood.get(n, 0) + 1
                e = r.target
                if e is not None and not e.understood:
                    n = extension_name(e)
                    not_understood[n] = not_understood.get(n, 0) + 1
            yield chain_table(t, c, both, cache)
    yield summary.text(not_understood)


def _segments(parts: Iterable[Part], console: Console, width: int, blank_between: bool = True,
              blank_first: bool = False) -> Iterator[Segment]:
    """The parts' lines as rich segments, a blank line between parts (and before the first one
    when ``blank_first``: the first of a batch that continues the view)."""
    styles: dict[str, Style | None] = {"": None}
    newline = Segment.line()
    for n, part in enumerate(parts):
        if (n or blank_first) and blank_between:
            yield newline
        for line in part.lines(width):
            for text, st in line:
                style = styles.get(st, False)
                if style is False:
                    style = styles[st] = console.get_style(st)
                yield Segment(printable(text), style)  # type: ignore[arg-type]
            yield newline


class View:
    """The whole view (or a batch of it) as one rich renderable, parts separated by blank lines;
    ``continued``: a blank line first, after the previous batch."""

    def __init__(self, parts: Iterable[Part], continued: bool = False) -> None:
        self.parts = parts
        self.continued = continued

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from _segments(self.parts, console, options.max_width, blank_first=self.continued)


def plain_output(console: Console) -> IO[str] | None:
    """The file to write the view to as plain text, or None when rich must write it: when it
    would style something (a terminal: colours, bold; ``NO_COLOR`` still keeps bold), record
    it for export, or capture it."""
    if console.color_system is not None or console.record or console.is_jupyter:
        return None
    if getattr(console, "_buffer_index", 0):  # inside console.capture() or a pager
        return None
    return console.file


def write_plain(parts: Iterable[Part], width: int, file: IO[str]) -> None:
    """The parts' text, a blank line between parts, written a few thousand lines at a time."""
    out: list[str] = []
    for n, part in enumerate(parts):
        if n:
            out.append("")
        for line in part.lines(width):
            out.append(printable(line[0][0] if len(line) == 1 else "".join([t for t, _ in line])))
        if len(out) >= 4096:
            out.append("")
            file.write("\n".join(out))
            out = []
    if out:
        out.append("")
        file.write("\n".join(out))
    file.flush()


def render_ruleset(rs: Ruleset, table: str | None = None, family: int | None = None,
                   console: Console | None = None, chain: str | None = None) -> None:
    """Print the view of ``rs`` on ``console`` (standard output by default), chain by chain.

    Plain text goes straight to the console's file; styled output goes through rich a few
    hundred chains per print (one print per chain would add rich's fixed cost 37,000 times).
    The cyclic collector is paused meanwhile: the view makes millions of short-lived tuples
    and no cycles, and each collection would walk the young objects for nothing."""
    console = console or Console()
    parts = iter_view(rs, table, family, chain)
    enabled = gc.isenabled()
    gc.disable()
    try:
        file = plain_output(console)
        if file is not None:
            write_plain(parts, console.width, file)
            return
        batch: list[Part] = []
        after = False  # a blank line goes between the last part of a batch and the next one
        for part in parts:
            batch.append(part)
            if len(batch) >= 400:
                console.print(View(batch, after), crop=False, soft_wrap=False, end="")
                batch, after = [], True
        if batch:
            console.print(View(batch, after), crop=False, soft_wrap=False, end="")
    finally:
        if enabled:
            gc.enable()


def view(rs: Ruleset, table: str | None = None, family: int | None = None,
         chain: str | None = None) -> View:
    """The whole view as one renderable."""
    return View(list(iter_view(rs, table, family, chain)))
