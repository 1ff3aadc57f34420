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

from iptexplain.core.errors import InputError
from iptexplain.ext.base import extension_name
from iptexplain.graph import Chain, Ruleset, Table
from iptexplain.render.layout import (MAX_REFERENCES_SHOWN, NOT_UNDERSTOOD_STYLE, Cell, CellCache, Line, _counters_text,
                                      _crop, _verdict_style, _wrap, _wrap_plain, _wrap_text, cells, fold,
                                      human)
from iptexplain.terminal import printable


class Part:
    """One part of the view (a chain, the notes, a title line): its lines at a given width.
    It is also a rich renderable, for callers that compose it with other rich output."""

    def lines(self, width: int) -> Iterator[Line]:
        raise NotImplementedError

    def text_lines(self, width: int) -> list[str]:
        """The lines' characters, for the plain writer."""
        return ["".join([t for t, _ in line]) for line in self.lines(width)]

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

    def _columns(self, width: int) -> tuple[list[str], list[int], int, int, bool, int]:
        """(column heads, fixed columns' widths, rule width, target width, crop?, total width)."""
        rows = self.rows
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
        return heads, fixed, rule_w, target_w, total > width, total

    def text_lines(self, width: int) -> list[str]:
        """The same characters as :meth:`lines`, as plain strings (the plain writer's path: a
        few string operations per rule, no pieces)."""
        out = ["".join([t for t, _ in line]) for line in fold(self.title, width)]
        rows = self.rows
        if not rows:
            return out
        GAP = self.GAP
        heads, fixed, rule_w, target_w, crop, total = self._columns(width)
        start = len(out)
        out.append(GAP.join(h.rjust(w) for h, w in zip(heads, fixed)) + GAP + "rule".ljust(rule_w) + GAP + "target")
        out.append("─" * min(total, width))
        blank = GAP.join(" " * w for w in fixed) + GAP
        w0 = fixed[0]
        counters = len(fixed) > 1
        w1, w2 = (fixed[1], fixed[2]) if counters else (0, 0)
        append = out.append
        for number, packets, nbytes, rule, target in rows:
            lead = GAP + packets.rjust(w1) + GAP + nbytes.rjust(w2) + GAP if counters else GAP
            rtext = rule.text
            ttext = target.text
            if len(rtext) <= rule_w and len(ttext) <= target_w:
                append(number.rjust(w0) + lead + rtext + " " * (rule_w - len(rtext)) + GAP + ttext)
                continue
            if len(rtext) <= rule_w:
                rule_lines = [rtext]
            elif rule.plain:
                rule_lines = _wrap_text(rtext, rule_w)
            else:
                rule_lines = ["".join([t for t, _ in p]) for p, _n in _wrap(rule.words, rule_w)]
            if len(ttext) <= target_w:
                r0 = rule_lines[0]  # the common case: a long rule, its target on the first line
                append(number.rjust(w0) + lead + r0 + " " * (rule_w - len(r0)) + GAP + ttext)
                for text in rule_lines[1:]:
                    append(blank + text)
                continue
            if target.plain:
                target_lines = _wrap_text(ttext, target_w)
            else:
                target_lines = ["".join([t for t, _ in p]) for p, _n in _wrap(target.words, target_w)]
            nr, nt = len(rule_lines), len(target_lines)
            for i in range(max(nr, nt)):
                line = number.rjust(w0) + lead if i == 0 else blank
                text = rule_lines[i] if i < nr else ""
                line += text
                if i < nt and target_lines[i]:
                    line += " " * (rule_w - len(text)) + GAP + target_lines[i]
                append(line)
        if crop:
            out[start:] = [x[:width] for x in out[start:]]
        return out

    def lines(self, width: int) -> Iterator[Line]:
        yield from fold(self.title, width)
        rows = self.rows
        if not rows:
            return
        GAP = self.GAP
        heads, fixed, rule_w, target_w, crop, total = self._columns(width)  # crop: a console narrower
        nfixed = len(heads)  # than the fixed columns
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
        out += map(printable, part.text_lines(width))
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
