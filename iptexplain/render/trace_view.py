"""The rich view of a trace: what a tired operator reads at 3 a.m.

The view is a tree.  Hooks come in the order the packet meets them; in each hook, the tables
whose base chain was entered, labelled with the chains walked (``filter FORWARD → DOCKER-USER →
DOCKER-ISOLATION-STAGE-1 → DOCKER ⇒ ACCEPT``); under a table, the rules of the taken path, a
jump nesting the jumped-to chain's rules under the rule that jumped.  Rewrites sit under the rule
that made them, the routing decision between the hooks, a fork as a node whose branches are
labelled with their condition.  A closing summary names the outcome and the rule responsible,
with its input line.

The default view shows the path and the rules that decided it; rules passed over are counted
("… 2 rules passed over").  Verbose shows every rule looked at, dimmed, with the reason it did
not match.

Like every rich renderable, :class:`TraceView` only describes what to show: colour, width,
``NO_COLOR`` and pipes are the console's business.  The text carries its own markers (✓ ✗ ⇒ ✎)
so that the view reads the same without colour.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Iterator

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.segment import Segment
from rich.table import Table as RichTable
from rich.text import Text
from rich.tree import Tree

from iptexplain.netfilter.trace import DROPPED, PASSED, REJECTED, REWRITE, UNDECIDED, Leaf, Outcome, Step, Trace
from iptexplain.render.marks import (ASCII, ASCII_TEXT, MAX_UNCERTAIN_RULES, UNICODE, WARNING_NOTES, ContainerNames,
                                     Marks, outcome_style, style_of, target_style)
from iptexplain.netfilter.outcome import (OUTCOME_WORDS, decided_by, find_decider, format_packet, ordinary_leaves,
                                       outcome_sentence)
from iptexplain.render.trace_tree import Node, TreeBuilder, rule_parts
from iptexplain.terminal import printable

_ASSUMED = re.compile(r"assumed\b|[\w.-]+ assumed\b")  # "assumed: eth0 has …", "proto tcp assumed (…)"

# ---------------------------------------------------------------------------------------------
# The renderable.


class TraceView:
    """A rich renderable of a :class:`Trace`.

    ``ruleset`` (optional) adds the input's name, format and notes to the header; ``verbose``
    shows every rule looked at.  Colour and width come from the console it is printed on.
    """

    def __init__(self, trace: Trace, ruleset: Any = None, *, verbose: bool = False,
                 max_notes: int = 8) -> None:
        self.trace = trace
        self.ruleset = ruleset
        self.verbose = verbose
        self.max_notes = max_notes
        self.names = ContainerNames(trace.host)
        self._ascii = False  # set per rendering: the console cannot show Unicode

    def line_of(self, rule: Any) -> str:
        """``line 12``, or ``nat.txt:12`` when the ruleset was read from several inputs."""
        rs = self.ruleset
        if rs is not None and rule.source != rs.source:
            return f"{rule.source}:{rule.line}"
        return f"line {rule.line}"

    def _a(self, text: Text) -> Text:
        return asciify(text) if self._ascii else text

    # -- pieces -----------------------------------------------------------------------------

    def header(self, m: Marks) -> list[Any]:
        flow = self.trace.flow
        out = [Text.assemble(("trace ", "bold"), (self.names(flow.describe()), "bold"))]
        if flow.from_container:
            out[0].append(f"  from container {flow.from_container}", "")
        rs = self.ruleset
        if rs is not None:
            fmt = {"save": "iptables-save", "S": "iptables -S", "listing": "iptables -L listing",
                   "live": "live host", "snapshot": "iptexplain snapshot"}.get(rs.format, rs.format)
            count = rs.rule_count()
            out.append(Text(f"ruleset {rs.source} ({fmt}, {count} rule{'s' if count != 1 else ''})", "dim"))
        notes = list(self.notes())
        warnings = [n for n in notes if n[0] in WARNING_NOTES]
        # facts made up for lack of a host model ("assumed: eth0 has address 198.51.100.1"): the
        # answer rests on them, so they are shown as warnings are, always
        assumed = [n for n in notes if n[0] not in WARNING_NOTES and _ASSUMED.match(n[1])]
        others = [n for n in notes if n[0] not in WARNING_NOTES and not _ASSUMED.match(n[1])]
        # warnings first and always; the rest (inferences, where facts came from) up to a few
        shown = warnings + assumed + (others if self.verbose else
                                      others[: max(self.max_notes - len(warnings) - len(assumed), 2)])
        for kind, msg in shown:
            warn = kind in WARNING_NOTES
            line = Text.assemble(
                (f" {m.note if warn else 'i'} ", style_of("note") if warn else "dim"),
                (self.names(msg), "" if warn else "dim"),
            )
            out.append(_hanging(self._a(line), 3))
        if len(notes) > len(shown):
            more = len(notes) - len(shown)
            out.append(Text(f"   … {more} more note{'s' if more != 1 else ''} (-v shows them)", "dim"))
        return out

    def notes(self) -> Iterator[tuple[str, str]]:
        """Ruleset notes (with their line), then the trace's, each once.  The input is named
        once, in the header: "from rules.save:166: -A …" reads "from line 166: -A …"."""
        seen: set[str] = set()
        rs = self.ruleset
        src = getattr(rs, "source", "") or ""
        here = re.compile(rf"(?<![\w/.]){re.escape(src)}:(\d+)") if src else None
        for n in (getattr(rs, "notes", None) or []):
            # the ruleset line above names the file: "line 72: …" is enough here
            line = getattr(n, "line", None)
            where = f"line {line}: " if line and not re.search(rf"\blines? {line}\b", n.message) else ""
            msg = f"{where}{n.message}"
            if msg not in seen:
                seen.add(msg)
                yield n.kind, msg
        for n in self.trace.notes:
            msg = n if isinstance(n, str) else getattr(n, "message", str(n))
            if here is not None:
                msg = here.sub(r"line \1", msg)
            kind = getattr(n, "kind", "trace")
            if msg not in seen:
                seen.add(msg)
                yield kind, msg

    def outcome_text(self, outcome: Outcome, steps: list[Step], m: Marks | None = None) -> Text:
        m = m or UNICODE
        mark = m.ok if outcome.kind in PASSED else m.bad if outcome.kind in (DROPPED, REJECTED) else m.maybe
        if outcome.uncertain:
            mark += m.uncertain  # "✔?": as listed; the kernel may decide otherwise
        style = outcome_style(outcome.kind)
        sentence = self.names(outcome_sentence(outcome, steps))
        decider = find_decider(steps, outcome, self.ruleset, self.trace.flow.family)
        said = False
        if decider is not None and decider.rule is not None:
            # the tracer's "dropped by filter X rule 7" names the rule the reference names: say it
            # once, as the reference ("dropped by filter X #7 (rules.save:112)")
            r = decider.rule
            short = f"by {r.table} {r.chain} rule {r.number}"
            if short in sentence:
                sentence = sentence.replace(short, f"by {decider.text}", 1)
                said = True
        first, _, rest = sentence.partition(" ")
        text = Text(f"{mark} ", style)
        word = first.lower().rstrip(":,;")
        if word == outcome.kind or word == OUTCOME_WORDS.get(outcome.kind, "").split(" ")[0]:
            text.append(first.upper(), style)
            text.append(f" {rest}" if rest else "", style.replace("bold ", ""))
        else:
            text.append(outcome.kind.upper(), style)
            text.append(f"  {sentence}", style.replace("bold ", ""))
        who = "" if said else decided_by(outcome, steps, self.ruleset, self.trace.flow.family)
        if who:
            policy = re.match(r"\w+ by policy \w+ of (.+?)(?: \((.+)\))?$", who)
            if policy and outcome.rule is None and "policy" in text.plain and policy.group(1) in text.plain:
                # the tracer's summary already names the policy: add only where it is set
                if policy.group(2):
                    text.append(f" ({policy.group(2)})", style_of("where"))
            else:
                text.append(f" — {who}", "")
        if outcome.kind == REJECTED and outcome.reply and outcome.reply not in text.plain:
            text.append(f" (reply {outcome.reply})", "")
        return text

    @staticmethod
    def reasons(outcome: Outcome) -> list[str]:
        """The reasons an uncertain outcome gives, one by one."""
        return [r for r in (outcome.uncertain or "").split("; ") if r]

    def uncertain_text(self, outcome: Outcome, m: Marks, brief: bool = False,
                       common: frozenset[str] = frozenset()) -> Text | None:
        """Why a verdict read from a listing that hid parts of rules may not be the kernel's,
        naming the rules it rests on, and what to read instead for the exact answer.  ``brief``
        (one way among several): the last such rule and how many before it; the advice is
        given once, after every way (:meth:`uncertain_advice`)."""
        if not outcome.uncertain:
            return None
        # One way among several: the reasons every way shares are said once, after them.
        why = "; ".join(r for r in self.reasons(outcome) if r not in common) if brief else outcome.uncertain
        rules = list(outcome.uncertain_rules)
        if brief and not rules and not why:
            return None
        shown = rules[-(1 if brief else MAX_UNCERTAIN_RULES):]  # the latest decided last: they matter most
        names = []
        for r in shown:
            matches, target, _ = rule_parts(r)
            spec = " ".join(x for x in (matches, target) if x)
            names.append(f"{r.table} {r.chain} #{r.number} `{spec}`" + (f" (line {r.line})" if r.line else ""))
        if not names:
            # Nothing a rule hid: a table or chain the input lacks.
            text = Text.assemble((f"{m.uncertain} {'uncertain' if brief else 'UNCERTAIN'}: ", style_of("note")),
                                 (f"rests on what the input does not show ({why})",
                                  style_of("uncertain")))
            if not brief:
                text.append("; the packet may go another way. For the full picture read `iptables-save` "
                            "(every table) instead.", "")
            return text
        listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        if len(rules) > len(shown):  # the count and the list agree: "5 rules, the last 4: A, B, C and D"
            listed = f"{len(rules)} rules, the last {'' if len(shown) == 1 else f'{len(shown)}: '}{listed}"
        them = "it" if len(rules) == 1 else "them"
        if brief:
            return Text.assemble((f"{m.uncertain} uncertain: ", style_of("note")),
                                 (f"rests on {listed}" + (f" ({why})" if why else ""), style_of("uncertain")))
        text = Text(f"{m.uncertain} UNCERTAIN: ", style_of("note"))
        text.append(f"this verdict rests on {listed} ({outcome.uncertain}); the kernel may not match "
                    f"{them} and the packet may go another way. For the full picture read "
                    "`iptables-save` (or `iptables -nvL`, `iptables -t nat -nvL`) instead.", "")
        return text

    def tree_nodes(self, m: Marks) -> list[Node]:
        root = Node("root", Text(""))
        TreeBuilder(self, root, m).build(self.trace.root, [])
        for n in _walk(root):
            if n.kind == "table":
                _finish_table(n, m)
        _bound_depth(root)
        return root.children

    def summary(self, m: Marks) -> list[Any]:
        """The answer: the outcome of the ordinary packets (one way, or the ways they fork into),
        then the ways only edge packets take (source port 0, a broadcast destination…) as the
        exceptions they are (:mod:`iptexplain.netfilter.edges`)."""
        leaves = list(self.trace.leaves())
        if not leaves:
            return [Text(f"{m.maybe} UNDECIDED  the trace has no outcome", outcome_style(UNDECIDED))]
        main = ordinary_leaves(self.trace)
        edges = [lf for lf in leaves if lf.edge and lf not in main]
        out = self._one_way(main[0], m) if len(main) == 1 else self._ways(main, m)
        if edges:
            out.extend(self._edge_ways(edges, m))
        return out

    def _one_way(self, leaf: Leaf, m: Marks) -> list[Any]:
        line = self.outcome_text(leaf.outcome, leaf.steps, m)
        line = self._a(line)
        indent = line.plain.index(" ") + 1
        out: list[Any] = [_hanging(line, indent)]
        pkt = self._final_packet(leaf)
        if pkt:
            what = "packet as it leaves" if leaf.outcome.kind in PASSED else "the packet then"
            extra = Text(f"{' ' * indent}{what}: {self.names(pkt)}", "dim")
            out.append(_hanging(self._a(extra), indent + 2))
        unsure = self.uncertain_text(leaf.outcome, m)
        if unsure is not None:
            out.append(_hanging(self._a(Text(" " * indent) + unsure), indent + 2))
        return out

    def _grid(self, leaves: list[Leaf], m: Marks, *, edge: bool = False) -> RichTable:
        grid = RichTable.grid(padding=(0, 1))
        grid.add_column(width=2)
        grid.add_column(justify="right", no_wrap=True)
        grid.add_column(ratio=1, overflow="fold")
        sets = [set(self.reasons(lf.outcome)) for lf in leaves if lf.outcome.uncertain]
        common = frozenset(set.intersection(*sets)) if len(sets) == len(leaves) and sets else frozenset()
        for leaf in leaves:
            p = leaf.probability
            conds = Text(" and ".join(c.text for c in leaf.conditions if not edge or c.edge), style_of("cond"))
            if edge:
                conds.append(f" — {leaf.edge}", "dim")
            conds.append("\n")
            conds.append_text(self.outcome_text(leaf.outcome, leaf.steps, m))
            unsure = self.uncertain_text(leaf.outcome, m, brief=True, common=common)
            if unsure is not None:
                conds.append("\n")
                conds.append_text(unsure)
            conds = self._a(conds)
            grid.add_row("", Text(f"{p:.0%}" if p is not None and not edge else "" if edge else "?", "bold"),
                         conds)
        return grid

    def _ways(self, leaves: list[Leaf], m: Marks) -> list[Any]:
        kinds = sorted({lf.outcome.kind for lf in leaves}, key=list(OUTCOME_WORDS).index)
        head = Text.assemble(
            (f"{m.fork} FORKS", style_of("fork")),
            (f"  {len(leaves)} ways, " + (f"all {kinds[0]}" if len(kinds) == 1 else " / ".join(kinds)), ""),
        )
        out: list[Any] = [head, self._grid(leaves, m)]
        unsure_ways = [lf for lf in leaves if lf.outcome.uncertain]
        if unsure_ways:
            why = "; ".join(dict.fromkeys(r for lf in unsure_ways for r in self.reasons(lf.outcome)))
            some = "every way rests" if len(unsure_ways) == len(leaves) else \
                f"{len(unsure_ways)} of {len(leaves)} ways rest"
            text = Text(f"{m.uncertain} UNCERTAIN: ", style_of("note"))
            text.append(f"{some} on rules the input did not show in full ({why}); the kernel may not "
                        "match them and the packet may go another way. For the full picture read "
                        "`iptables-save` (or `iptables -nvL`, `iptables -t nat -nvL`) instead.", "")
            out.append(_hanging(self._a(text), 2))
        return out

    def _edge_ways(self, leaves: list[Leaf], m: Marks) -> list[Any]:
        head = Text.assemble(("  except", style_of("fork")),
                             (" edge packets (invalid or exceptional on the wire; not in the exit status):", "dim"))
        return [_hanging(self._a(head), 4), self._grid(leaves, m, edge=True)]

    def _final_packet(self, leaf: Leaf) -> str:
        pkt = leaf.outcome.packet
        if not pkt or not any(st.kind == REWRITE for st in leaf.steps):
            return ""
        return format_packet(pkt)

    # -- rich protocol ----------------------------------------------------------------------

    def renderables(self, ascii_only: bool = False) -> list[Any]:
        m = ASCII if ascii_only else UNICODE
        self._ascii = ascii_only
        parts: list[Any] = list(self.header(m))
        parts.append(Text(""))
        nodes = self.tree_nodes(m)
        if ascii_only:
            for n in nodes:
                for sub in _walk(n):
                    sub.label = asciify(sub.label)
        for node in nodes:
            parts.append(_to_rich(node, ascii_only))
        parts.append(Text(""))
        parts.extend(self.summary(m))
        if ascii_only:
            parts = [asciify(p) if isinstance(p, Text) else p for p in parts]
        return parts

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        # input text (comments, chain names, file names) may hold terminal controls: every
        # segment is made printable, rich's own control segments aside
        for seg in console.render(Group(*self.renderables(options.ascii_only)), options):
            if seg.control or seg.text.isprintable() or seg.text == "\n":
                yield seg
            else:
                yield Segment(printable(seg.text), seg.style)


def asciify(text: Text) -> Text:
    """The same text, styles kept, with every non-ASCII character spelled in ASCII."""
    plain = text.plain
    if plain.isascii():
        return text
    cuts: set[int] = set()
    for i, ch in enumerate(plain):
        if not ch.isascii():
            cuts.update((i, i + 1))
    out = Text(style=text.style, end=text.end, justify=text.justify, overflow=text.overflow)
    for piece in text.divide(sorted(cuts)):
        p = piece.plain
        if len(p) == 1 and not p.isascii():
            rep = Text(ASCII_TEXT.get(p, "?"), style=piece.style)
            for span in piece.spans:
                rep.stylize(span.style, 0, len(rep))
            piece = rep
        out.append_text(piece)
    return out


def _hanging(text: Text, indent: int) -> RichTable:
    """Text whose wrapped lines are indented under its first word (an outcome line)."""
    grid = RichTable.grid()
    grid.add_column(width=indent, no_wrap=True)
    grid.add_column(ratio=1, overflow="fold")
    head, body = text[:indent], text[indent:]
    grid.add_row(head, body)
    return grid


def _walk(node: Node) -> Iterable[Node]:
    """The node and its descendants, in order (iteratively: a tree may be deep)."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(n.children))


# Each -g nests the chain gone to under the rule that went, so a path of 1,000 gotos would be a
# tree 1,000 levels deep, 4,000 columns of guides wide (rich stops drawing at the width of the
# terminal); below this depth, what is deeper is shown flat.
VIEW_DEPTH = 14


def _bound_depth(root: Node) -> None:
    """Flatten what lies deeper than VIEW_DEPTH levels, in order, under a note that says so."""
    stack = [(root, 0)]
    while stack:
        node, d = stack.pop()
        if d >= VIEW_DEPTH - 1 and any(c.children for c in node.children):
            flat = [n for c in node.children for n in list(_walk(c))]
            for n in flat:
                n.children = []
            note = Node("other", Text(f"… nested deeper than {VIEW_DEPTH} levels: the rest is shown flat",
                                      style_of("note")))
            node.children = [note, *flat]
            continue
        stack.extend((c, d + 1) for c in node.children)


def _finish_table(n: Node, m: Marks) -> None:
    """Label a table node ``nat PREROUTING → DOCKER ⇒ ACCEPT``; fold a table where nothing
    matched into that one line (``… 2 rules passed over · policy ACCEPT``)."""
    label = Text(f"{n.table} ", style_of("table"))
    chains = n.chains or [n.base]
    label.append(chains[0], style_of("table"))
    if n.where:
        label.append(f" ({n.where})", "dim")
    for c in chains[1:]:
        label.append(f" {m.arrow} ", "dim")
        label.append(c, style_of("chainpath"))
    quiet = all(c.kind in ("skipped", "policy") for c in n.children)
    if quiet and n.children:
        bits = [c.label.plain for c in n.children if c.kind == "skipped"]
        if bits:
            label.append("   " + ", ".join(bits), style_of("skipped"))
        if n.verdict:
            label.append(f"  {m.verdict} ", "dim")
            label.append(n.verdict, target_style(n.verdict))
            if any(c.kind == "policy" for c in n.children):
                label.append(" (policy)", "dim")
        n.children = []
    elif n.verdict:
        label.append(f"  {m.verdict} ", "dim")
        label.append(n.verdict, target_style(n.verdict))
    n.label = label


def _to_rich(node: Node, ascii_only: bool) -> Tree | Text:
    if not node.children:
        return node.label
    tree = Tree(node.label, guide_style="dim")
    _fill(tree, node)
    return tree


def _fill(tree: Tree, node: Node) -> None:
    stack = [(tree, node)]
    while stack:
        t, n = stack.pop()
        for c in n.children:
            stack.append((t.add(c.label), c))


def render_text(trace: Trace, ruleset: Any = None, *, verbose: bool = False, width: int = 100,
                color: bool = False) -> str:
    """The view as plain (or ANSI) text at a fixed width: for snapshots and ``--output``."""
    import io

    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=color, color_system="standard" if color else None,
                      no_color=not color, highlight=False, soft_wrap=False, legacy_windows=False,
                      emoji=False)
    console.print(TraceView(trace, ruleset, verbose=verbose))
    return "\n".join(line.rstrip() for line in buf.getvalue().splitlines()) + "\n"
