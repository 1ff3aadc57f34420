"""``iptexplain show``: a ruleset as rich tables, one per chain, with its jump edges.

What it shows, for each table (raw, mangle, nat, filter, security; IPv4 then IPv6):

* built-in chains with their policy and policy counters, then user chains with the rules that
  reference them (``← INPUT#3``, ``↪`` marking a goto);
* each rule with its number, its counters when the input had them, the rule text (addresses,
  interfaces, protocol and matches, in iptables-save syntax) and its target -- ``→ CHAIN`` for a
  jump, ``↪ CHAIN`` for a goto, the target with its options otherwise.  A module iptexplain does
  not understand is highlighted where it appears;
* the notes the reader made (repairs, inferences, anonymized MACs, what a listing hides);
* a closing summary: tables, chains, rules, modules not understood.

The view is produced chain by chain and printed as it goes.  Rich's own Table measures every cell
through several layers of renderables, which takes seconds on a 5,000-rule firewall; the rows
here are plain words, measured once and wrapped by hand (:class:`ChainRows`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.segment import Segment
from rich.style import Style
from rich.text import Text

from iptexplain.errors import InputError
from iptexplain.ext.base import ChainJump, extension_name
from iptexplain.graph import Chain, Counters, Rule, Ruleset, Table

NOT_UNDERSTOOD_STYLE = "bold magenta"
MAX_REFERENCES_SHOWN = 6

Words = list[tuple[str, str]]  # a cell: (word, style) pairs, wrapped at word boundaries


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


def _verdict_style(name: str) -> str:
    return {"ACCEPT": "green", "DROP": "red", "REJECT": "red", "RETURN": "yellow"}.get(name, "cyan")


def rule_cells(rule: Rule) -> tuple[Words, Words]:
    """(rule words, target words) of one rule.  A module iptexplain does not understand carries
    the highlight style and the words ``(not understood)``."""
    words: Words = [(w, "") for w in rule.header.save_args()]
    for m in rule.matches:
        # A quoted comment is one argument but wraps like prose.
        st = "" if m.understood else NOT_UNDERSTOOD_STYLE
        words += [(x, st) for w in m.save() for x in w.split(" ") if x]
        if not m.understood:
            words.append(("(not understood)", NOT_UNDERSTOOD_STYLE))
    if not words:
        words = [("(every packet)", "dim")]
    t = rule.target
    if t is None:
        target: Words = [("(no target: counts only)", "dim")]
    elif isinstance(t, ChainJump):
        target = [(("↪ " if rule.goto else "→ ") + t.chain, "bold blue")]
    else:
        name = extension_name(t)
        target = [(name, _verdict_style(name) if t.understood else NOT_UNDERSTOOD_STYLE)]
        target += [(x, "") for w in t.save_args() for x in w.split(" ") if x]
        if not t.understood:
            target.append(("(not understood)", NOT_UNDERSTOOD_STYLE))
    return words, target


def _wrap(words: Words, width: int) -> list[Words]:
    """Greedy word wrap; a word longer than the column is cut."""
    lines: list[Words] = []
    line: Words = []
    used = 0
    for w, st in words:
        while len(w) > width:
            if line:
                lines.append(line)
                line, used = [], 0
            lines.append([(w[:width], st)])
            w = w[width:]
        if not w:
            continue
        need = len(w) + (1 if line else 0)
        if line and used + need > width:
            lines.append(line)
            line, used, need = [], 0, len(w)
        line.append((w, st))
        used += need
    if line or not lines:
        lines.append(line)
    return lines


def _width(words: Words) -> int:
    return sum(len(w) for w, _ in words) + max(len(words) - 1, 0)


Row = tuple[str, str, str, Words, Words]  # number, packets, bytes, rule, target


class ChainRows:
    """The rules of one chain as aligned columns: #, [pkts, bytes,] rule, target."""

    GAP = "   "

    def __init__(self, title: Words, rows: list[Row], with_counters: bool) -> None:
        self.title = title
        self.rows = rows
        self.with_counters = with_counters

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        styles: dict[str, Style | None] = {"": None}

        def style(name: str) -> Style | None:
            if name not in styles:
                styles[name] = console.get_style(name)
            return styles[name]

        if sum(len(t) for t, _ in self.title) <= options.max_width:
            for t, st in self.title:
                yield Segment(t, style(st))
            yield Segment.line()
        else:  # a long list of references: let rich wrap it
            yield from console.render(Text.assemble(*self.title), options)
        if not self.rows:
            return
        heads = ["#"] + (["pkts", "bytes"] if self.with_counters else [])
        fixed = [max([len(h)] + [len(r[i]) for r in self.rows]) for i, h in enumerate(heads)]
        rule_nat = max([4] + [_width(r[3]) for r in self.rows])
        target_nat = max([6] + [_width(r[4]) for r in self.rows])
        avail = options.max_width - sum(fixed) - len(self.GAP) * len(fixed) - len(self.GAP)
        target_w = min(target_nat, max(12, avail * 2 // 5))
        rule_w = max(10, min(rule_nat, avail - target_w))
        target_w = max(6, min(target_nat, avail - rule_w))
        # Keep a target's name (or ``→ CHAIN``) on one line when the width allows it.
        first = max([len(r[4][0][0]) for r in self.rows if r[4]] + [0])
        if first > target_w and avail - first >= 10:
            target_w = first
            rule_w = max(10, min(rule_nat, avail - target_w))
        gap = Segment(self.GAP)
        dim, bold = style("dim"), style("bold")

        head = self.GAP.join(h.rjust(w) for h, w in zip(heads, fixed))
        yield Segment(head + self.GAP + "rule".ljust(rule_w) + self.GAP + "target", bold)
        yield Segment.line()
        total = sum(fixed) + len(self.GAP) * (len(fixed) + 1) + rule_w + target_w
        yield Segment("─" * min(total, options.max_width), dim)
        yield Segment.line()
        blank = [" " * w for w in fixed]
        newline = Segment("\n")
        for row in self.rows:
            rule_lines = _wrap(row[3], rule_w)
            target_lines = _wrap(row[4], target_w)
            for i in range(max(len(rule_lines), len(target_lines))):
                # Plain text is gathered into one segment; only styled words get their own.
                if i == 0:
                    cells = [c.rjust(w) for c, w in zip(row[: len(fixed)], fixed)]
                    yield Segment(cells[0], dim)
                    buf = [self.GAP, self.GAP.join(cells[1:])] + ([self.GAP] if len(cells) > 1 else [])
                else:
                    buf = [self.GAP.join(blank), self.GAP]
                used = 0
                for j, (w, st) in enumerate(rule_lines[i] if i < len(rule_lines) else ()):
                    if j:
                        buf.append(" ")
                        used += 1
                    used += len(w)
                    if st:
                        yield Segment("".join(buf))
                        buf = []
                        yield Segment(w, style(st))
                    else:
                        buf.append(w)
                if i < len(target_lines) and target_lines[i]:
                    buf.append(" " * (rule_w - used) + self.GAP)
                    for j, (w, st) in enumerate(target_lines[i]):
                        if j:
                            buf.append(" ")
                        if st:
                            yield Segment("".join(buf))
                            buf = []
                            yield Segment(w, style(st))
                        else:
                            buf.append(w)
                if buf:
                    yield Segment("".join(buf))
                yield newline


def _chain_title(table: Table, chain: Chain, both_families: bool) -> Words:
    """The chain's title line as (text, style) pieces (blanks included in the pieces)."""
    fam = f" IPv{table.family}" if both_families else ""
    title: Words = [(f"{table.name}{fam}", "bold"), (" ", ""), (chain.name, "bold underline")]
    if chain.builtin:
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
        else:
            title.append(("  (unreferenced: no packet reaches it)", "yellow"))
    if not chain.rules:
        title.append(("  (no rules)", "dim"))
    return title


def chain_table(table: Table, chain: Chain, both_families: bool = False) -> RenderableType:
    """One chain: its title line, then its rules (none for an empty chain)."""
    title = _chain_title(table, chain, both_families)
    with_counters = any(r.counters is not None for r in chain.rules)
    rows: list[Row] = []
    for r in chain.rules:
        rule_words, target_words = rule_cells(r)
        c = r.counters
        rows.append((str(r.number), human(c.packets) if c else "", human(c.bytes) if c else "",
                     rule_words, target_words))
    return ChainRows(title, rows, with_counters)


class Blank:
    """An empty line between chains (cheaper than an empty Text)."""

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield Segment.line()


BLANK = Blank()


@dataclass
class Summary:
    tables: int = 0
    builtin_chains: int = 0
    user_chains: int = 0
    rules: int = 0

    def text(self, not_understood: dict[str, int]) -> Text:
        out = Text.assemble(
            (f"{self.tables} table{'s' if self.tables != 1 else ''}", "bold"), ", ",
            (f"{self.builtin_chains + self.user_chains} chain{'s' if self.builtin_chains + self.user_chains != 1 else ''}", "bold"),
            f" ({self.builtin_chains} built-in, {self.user_chains} user-defined), ",
            (f"{self.rules} rule{'s' if self.rules != 1 else ''}", "bold"), "; modules not understood: ",
        )
        if not not_understood:
            out.append("none", style="green")
        else:
            out.append(", ".join(f"{n} ({c} rule{'s' if c != 1 else ''})" for n, c in sorted(not_understood.items())),
                       style=NOT_UNDERSTOOD_STYLE)
        return out


def select_tables(rs: Ruleset, table: str | None = None, family: int | None = None) -> list[Table]:
    """The tables to show, in kernel order (raw … security), IPv4 before IPv6."""
    out = [t for fam in rs.families() if family in (None, fam) for t in rs.tables_of(fam)
           if table in (None, t.name)]
    if not out:
        what = " ".join(x for x in (f"table {table}" if table else "", f"IPv{family}" if family else "") if x)
        have = ", ".join(f"{t.name} (IPv{t.family})" for t in rs.tables.values()) or "none"
        raise InputError(f"no {what or 'table'} in this ruleset (it has: {have})", rs.source)
    return out


def notes_view(rs: Ruleset) -> RenderableType | None:
    """The reader's notes: repairs, inferences, anonymized MACs, what the format hides."""
    hidden = getattr(rs, "hidden", set())
    if not rs.notes and not hidden:
        return None
    lines = Text()
    for n in rs.notes:
        lines.append(f"• {n.kind}: ", style="bold yellow")
        lines.append((f"line {n.line}: " if n.line else "") + n.message + "\n")
    if hidden:
        lines.append("• hidden: ", style="bold yellow")
        lines.append(f"this input format does not show {', '.join(sorted(hidden))}\n")
    lines.rstrip()
    return lines


def iter_view(rs: Ruleset, table: str | None = None, family: int | None = None,
              chain: str | None = None) -> Iterator[RenderableType]:
    """The parts of the view, one chain at a time, in the order they are printed."""
    tables = select_tables(rs, table, family)
    if chain is not None:
        tables = [t for t in tables if chain in t.chains]
        if not tables:
            raise InputError(f"no chain `{chain}' in the tables shown", rs.source)
    both = len({t.family for t in tables}) > 1
    yield Text.assemble(("Ruleset ", "bold"), (rs.source, "bold cyan"), f"  ({rs.format})")
    notes = notes_view(rs)
    if notes is not None:
        yield notes
    summary = Summary()
    not_understood: dict[str, int] = {}
    for t in tables:
        summary.tables += 1
        chains: Iterable[Chain] = [t.chains[chain]] if chain is not None else t.chains.values()
        # Built-in chains first (in the kernel's order), then user chains in the input's order.
        for c in sorted(chains, key=lambda c: not c.builtin):
            if c.builtin:
                summary.builtin_chains += 1
            else:
                summary.user_chains += 1
            summary.rules += len(c.rules)
            for r in c.rules:
                for e in r.extensions():
                    if not e.understood:
                        n = extension_name(e)
                        not_understood[n] = not_understood.get(n, 0) + 1
            yield chain_table(t, c, both)
    yield summary.text(not_understood)


def render_ruleset(rs: Ruleset, table: str | None = None, family: int | None = None,
                   console: Console | None = None, chain: str | None = None) -> None:
    """Print the view of ``rs`` on ``console`` (a terminal console by default), a few hundred
    chains per call: each print has a fixed cost that thousands of small chains would add up."""
    console = console or Console()
    batch: list[RenderableType] = []
    for n, part in enumerate(iter_view(rs, table, family, chain)):
        if n:
            batch.append(BLANK)
        batch.append(part)
        if len(batch) >= 400:
            console.print(Group(*batch))
            batch = []
    if batch:
        console.print(Group(*batch))


def view(rs: Ruleset, table: str | None = None, family: int | None = None,
         chain: str | None = None) -> Group:
    """The whole view as one renderable."""
    return Group(*iter_view(rs, table, family, chain))
