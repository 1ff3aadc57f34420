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
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.segment import Segment
from rich.table import Table as RichTable
from rich.text import Text
from rich.tree import Tree

from iptexplain.netfilter.trace import (
    DROPPED, GOTO, PASSED, REJECTED, REWRITE, RULE, UNDECIDED, Condition, Leaf, Outcome, Path, Step, Trace,
)
from iptexplain.render.outcome import (OUTCOME_WORDS, decided_by, find_decider, format_packet, ordinary_leaves,
                                       outcome_sentence)
from iptexplain.terminal import printable

# ---------------------------------------------------------------------------------------------
# Markers: Unicode on a UTF-8 console, ASCII otherwise (rich tells us through ascii_only).


@dataclass(frozen=True)
class Marks:
    match: str
    miss: str
    verdict: str
    rewrite: str
    route: str
    fork: str
    ret: str
    arrow: str
    note: str
    ok: str
    bad: str
    maybe: str
    neq: str
    uncertain: str = "?"  # a rule or verdict that rests on what the input did not show


# What the texts themselves use (the flow's arrow, reasons written by the tracer…), for consoles
# that cannot show them.
ASCII_TEXT = {
    "→": "->", "←": "<-", "≠": "!=", "∉": "not in", "∈": "in", "…": "...", "—": "-", "–": "-",
    "✓": "+", "✗": "x", "⇒": "=>", "✎": "~", "⑂": "<>", "↩": "<-", "✔": "OK", "✘": "XX",
    "≤": "<=", "≥": ">=", "×": "x", "·": "-", "∅": "none",
}

UNICODE = Marks("✓", "✗", "⇒", "✎", "⤷", "⑂", "↩", "→", "!", "✔", "✘", "?", "≠")
ASCII = Marks("+", "x", "=>", "~", ">", "<>", "<-", "->", "!", "OK", "XX", "??", "!=")

# Note kinds shown as warnings (the trace may differ from the kernel's because of them).
WARNING_NOTES = frozenset({"fidelity", "repair", "unknown-module", "duplicate", "warning", "partial"})

# Styles, by meaning.  Kept here so that every view of the project uses the same words.
STYLE = {
    "hook": "bold cyan",
    "table": "bold",
    "chainpath": "cyan",
    "match": "green",
    "miss": "dim",
    "reason": "italic",
    "skipped": "dim italic",
    "jump": "blue",
    "accept": "bold green",
    "drop": "bold red",
    "nat": "yellow",
    "rewrite": "yellow",
    "route": "magenta",
    "note": "yellow",
    "fork": "bold magenta",
    "cond": "magenta",
    "where": "dim",
    "conntrack": "dim cyan",
    "policy": "bold",
    "uncertain": "dim yellow",
}

_VERDICT_STYLE = {
    "ACCEPT": "accept", "DROP": "drop", "REJECT": "drop", "QUEUE": "note", "NFQUEUE": "note",
    "RETURN": "jump",
}
_NAT_TARGETS = {"DNAT", "SNAT", "MASQUERADE", "REDIRECT", "NETMAP", "MARK", "CONNMARK", "TPROXY"}

_ASSUMED = re.compile(r"assumed\b|[\w.-]+ assumed\b")  # "assumed: eth0 has …", "proto tcp assumed (…)"
MAX_UNCERTAIN_RULES = 4  # rules an uncertain verdict names in the closing summary

def _style(key: str) -> str:
    return STYLE.get(key, key)


def _target_style(rule_target: str) -> str:
    if rule_target in _VERDICT_STYLE:
        return _style(_VERDICT_STYLE[rule_target])
    if rule_target in _NAT_TARGETS:
        return _style("nat")
    return _style("jump")


def outcome_style(kind: str) -> str:
    if kind in PASSED:
        return _style("accept")
    if kind in (DROPPED, REJECTED):
        return _style("drop")
    return _style("note")


class ContainerNames:
    """Annotate addresses with the container that owns them: ``172.17.0.6:9525 (gallant_lumiere)``.

    Only whole addresses (with their port, if any) are annotated: not ``172.17.0.60``, not a
    prefix ``172.17.0.6/32`` (a rule's match is about a range, not the container).
    """

    def __init__(self, host: Any) -> None:
        names: dict[str, str] = {}
        containers = getattr(host, "containers", None) or {}
        for addr, info in containers.items():
            name = info.get("name") if isinstance(info, dict) else str(info)
            if name:
                names[str(addr)] = str(name).lstrip("/")
        self.names = names
        alts = "|".join(re.escape(a) for a in sorted(names, key=len, reverse=True))
        self._re = re.compile(rf"(?<![\w.:/])({alts})(:[0-9]+)?(?![\w./:])") if names else None

    def __call__(self, text: str) -> str:
        if self._re is None or not text:
            return text
        def sub(m: re.Match[str]) -> str:
            name = self.names[m.group(1)]
            return m.group(0) if name in text else f"{m.group(0)} ({name})"

        return self._re.sub(sub, text)


# ---------------------------------------------------------------------------------------------
# The tree model: plain nodes first, rich Trees at render time.


@dataclass
class Node:
    kind: str
    label: Text
    children: list["Node"] = field(default_factory=list)
    # table nodes: chains walked and the verdict, for the label
    chains: list[str] = field(default_factory=list)
    verdict: str | None = None
    hook: str = ""
    table: str = ""
    base: str = ""
    where: str = ""  # an nft base chain's hook and priority (iptables' tables have fixed ones)
    skipped: int = 0  # "skipped" nodes: how many rules

    def add(self, node: "Node") -> "Node":
        self.children.append(node)
        return node


class _Builder:
    """Turns one Path's steps into nodes under ``root``; forks recurse with a fresh builder."""

    def __init__(self, view: "TraceView", root: Node, marks: Marks) -> None:
        self.v = view
        self.m = marks
        self.root = root
        self.hook: Node | None = None
        self.table: Node | None = None
        # open chains: (depth, chain name, node under which its rules go)
        self.stack: list[tuple[int, str, Node]] = []
        self.last_rule: Node | None = None
        self.last_rule_step: Step | None = None
        # the last rule at each depth that jumped (False) or went (True) to a chain
        self.jump_parent: dict[int, tuple[str, Node, bool]] = {}
        self.pending_skip: tuple[Node, Node] | None = None  # (container, skipped node)

    # -- containers -------------------------------------------------------------------------

    def _top(self) -> Node:
        return self.table or self.hook or self.root

    def _innermost(self) -> Node:
        return self.stack[-1][2] if self.stack else self._top()

    def _container_for(self, st: Step) -> Node:
        d, c = max(st.depth, 0), st.chain
        while self.stack and self.stack[-1][0] > d:
            self.stack.pop()
        if self.stack and self.stack[-1][0] == d and self.stack[-1][1] == c:
            return self.stack[-1][2]
        if self.stack and self.stack[-1][0] == d:
            self.stack.pop()  # another chain at the same depth: a goto
        gone = self.jump_parent.get(d)  # -g: the chain gone to runs at the caller's depth
        if gone is not None and gone[0] == c and gone[2]:
            node = gone[1]
        elif d == 0 or (not self.stack and self.table is not None and c == self.table.base):
            node = self._top()
        else:
            jp = self.jump_parent.get(d - 1)
            if jp is not None and jp[0] == c and not jp[2]:
                node = jp[1]
            else:
                parent = self.stack[-1][2] if self.stack else self._top()
                node = parent.add(Node("chain", Text.assemble(
                    (f"{self.m.arrow} ", _style("jump")), (c or "?", _style("jump")))))
        self.stack.append((d, c, node))
        if self.table is not None and c and (not self.table.chains or self.table.chains[-1] != c):
            if c not in self.table.chains:
                self.table.chains.append(c)
        return node

    # -- steps ------------------------------------------------------------------------------

    def add(self, st: Step) -> None:
        kind = st.kind
        if kind == RULE and st.matched is False and not self.v.verbose:
            self._skip(st)
            return
        self._end_skip()
        handler = getattr(self, f"_on_{kind}", None)
        if handler is None:
            self._innermost().add(Node("other", Text(f"{kind}: {st.reason}")))
        else:
            handler(st)

    def _skip(self, st: Step) -> None:
        container = self._container_for(st)
        if self.pending_skip is not None and self.pending_skip[0] is container:
            node = self.pending_skip[1]
        else:
            node = container.add(Node("skipped", Text("")))
            self.pending_skip = (container, node)
        node.skipped += 1
        n = node.skipped
        node.label = Text(f"… {n} rule{'s' if n != 1 else ''} passed over", _style("skipped"))

    def _end_skip(self) -> None:
        self.pending_skip = None

    def _on_hook(self, st: Step) -> None:
        label = Text(st.hook or st.chain or "?", _style("hook"))
        if st.reason:
            label.append(f"  {self.v.names(st.reason)}", "dim")
        self.hook = self.root.add(Node("hook", label, hook=st.hook))
        self.table = None
        self.stack = []
        self.jump_parent = {}

    def _on_table(self, st: Step) -> None:
        base = st.chain or st.hook
        parent = self.hook or self.root
        node = parent.add(Node("table", Text(""), hook=st.hook, table=st.table, base=base,
                               where=_base_where(st)))
        node.chains = [base]
        self.table = node
        self.stack = [(0, base, node)]
        self.jump_parent = {}

    def _on_conntrack(self, st: Step) -> None:
        text = Text("conntrack", _style("conntrack"))
        if st.reason:
            text.append(f"  {self.v.names(st.reason)}", "dim")
        (self.hook or self.root).add(Node("conntrack", text))

    def _on_rule(self, st: Step) -> None:
        container = self._container_for(st)
        rule = st.rule
        m = self.m
        if st.matched is False:
            label = Text.assemble((f"{m.miss} ", _style("miss")))
            label.append(self._rule_head(st), _style("miss"))
            if rule is not None:
                matches, target, comments = rule_parts(rule)
                label.append(" ".join(x for x in (matches, target) if x), _style("miss"))
                for c in comments:
                    label.append(f"  /* {c} */", _style("miss"))
            if st.reason:
                label.append(f"  — {st.reason}", "dim italic")
            if rule is not None and rule.line:
                label.append(f"  {self.v.line_of(rule)}", _style("where"))
            container.add(Node("miss", label))
            return
        mark = m.match if st.matched else m.maybe
        unsure = (st.detail or {}).get("uncertain")
        if unsure and st.matched:
            mark += m.uncertain
        label = Text.assemble((f"{mark} ", _style("match") if st.matched else _style("note")))
        label.append(self._rule_head(st), "bold")
        if rule is not None:
            matches, target, comments = rule_parts(rule)
            label.append(matches)
            if target:
                if matches:
                    label.append(" ")
                label.append(target, _target_style(rule.target_name))
            for c in comments:
                label.append(f"  /* {c} */", "dim")
        if st.reason and (self.v.verbose or not st.matched):
            label.append(f"  — {self.v.names(st.reason)}", "dim italic")
        if rule is not None and rule.line:
            label.append(f"  {self.v.line_of(rule)}", _style("where"))
        node = container.add(Node("rule", label))
        if unsure:
            node.add(Node("uncertain", Text(f"{m.uncertain} {unsure}", _style("uncertain"))))
        self.last_rule, self.last_rule_step = node, st
        if rule is not None and rule.jump:
            self.jump_parent[max(st.depth, 0)] = (rule.jump, node, bool(rule.goto))

    def _rule_head(self, st: Step) -> str:
        rule = st.rule
        chain = st.chain or (rule.chain if rule is not None else "")
        num = f" #{rule.number}" if rule is not None and rule.number else ""
        return f"{chain}{num}  "

    def _on_jump(self, st: Step) -> None:
        target = _jump_target(st)
        d = max(st.depth, 0)
        # the rule that jumped is already shown with "-j CHAIN": nest the chain under it
        for dd in (d, d - 1):
            jp = self.jump_parent.get(dd)
            if jp is not None and jp[0] == target:
                return
        if not self.v.verbose and not target:
            return
        node = self._innermost().add(Node("chain", Text.assemble(
            (f"{self.m.arrow} ", _style("jump")), (target or "?", _style("jump")),
            (f"  {st.reason}" if st.reason else "", "dim"))))
        self.jump_parent[d] = (target, node, st.kind == GOTO)

    _on_goto = _on_jump

    def _on_return(self, st: Step) -> None:
        if not self.v.verbose:
            return
        text = Text(f"{self.m.ret} ", _style("where"))
        text.append(st.reason or (f"back from {st.chain}" if st.chain else "return"), _style("where"))
        # under the chain returned from (an explicit RETURN rule or the end of the chain)
        home = next((node for depth, chain, node in reversed(self.stack) if chain == st.chain), None)
        (home or self._innermost()).add(Node("return", text))

    def _on_policy(self, st: Step) -> None:
        pol = st.verdict or st.detail.get("policy", "") if st.detail else st.verdict or ""
        text = Text.assemble((f"{self.m.verdict} policy ", _style("policy")), (pol or "?", _target_style(pol or "")))
        in_table = self.table is not None and self.table.table == st.table and self.table.base == st.chain
        if st.chain and not in_table:
            text.append(f" of {st.table + ' ' if st.table else ''}{st.chain}", "")
        if st.reason and self.v.verbose and "policy" not in st.reason:
            text.append(f"  — {st.reason}", "dim italic")
        self._top().add(Node("policy", text))
        if self.table is not None and pol:
            self.table.verdict = pol
        self.stack = self.stack[:1]

    def _on_verdict(self, st: Step) -> None:
        v = st.verdict or ""
        if self.table is not None and (not st.table or st.table == self.table.table):
            self.table.verdict = v
            if st.reason and self.v.verbose:
                self.table.add(Node("verdict", Text(f"{self.m.verdict} {v}  {st.reason}", _target_style(v))))
            return
        where = f"{st.table} " if st.table else ""
        text = Text.assemble((f"{self.m.verdict} {where}", ""), (v, _target_style(v)))
        if st.reason:
            text.append(f"  {st.reason}", "dim")
        self._top().add(Node("verdict", text))

    def _on_rewrite(self, st: Step) -> None:
        text = Text(f"{self.m.rewrite} ", _style("rewrite"))
        text.append(self.v.names(rewrite_text(st)), _style("rewrite"))
        target = self.last_rule
        ls = self.last_rule_step
        if target is None or ls is None or (st.chain and ls.chain != st.chain) or (st.table and ls.table != st.table):
            target = self._innermost()
        target.add(Node("rewrite", text))

    def _on_route(self, st: Step) -> None:
        text = Text("routing", _style("route"))
        body = st.reason or route_text(st)
        if body:
            text.append(f"  {self.v.names(body)}", "")
        self.root.add(Node("route", text))
        self.hook = None
        self.table = None
        self.stack = []

    def _on_note(self, st: Step) -> None:
        text = Text(f"{self.m.note} ", _style("note"))
        text.append(self.v.names(st.reason or str(st.detail or "")), _style("note"))
        self._innermost().add(Node("note", text))

    # -- paths ------------------------------------------------------------------------------

    def build(self, path: Path, prefix: list[Step]) -> None:
        for st in path.steps:
            self.add(st)
        self._end_skip()
        steps = prefix + path.steps
        if path.fork is not None:
            fork = self.root.add(Node("fork", Text.assemble(
                (f"{self.m.fork} fork", _style("fork")),
                (f"  {self.v.names(path.fork.reason)}" if path.fork.reason else "", ""),
            )))
            for cond, sub in path.fork.branches:
                branch = fork.add(Node("branch", condition_text(cond)))
                child = _Builder(self.v, branch, self.m)
                if self.table is not None:
                    # the fork happened inside a table's traversal: the branch goes on there
                    t = self.table
                    node = branch.add(Node("table", Text(""), hook=t.hook, table=t.table, base=t.base,
                                           where=t.where))
                    node.chains = list(t.chains)
                    child.table = node
                    child.stack = [(0, t.base, node)]
                child.build(sub, steps)
        elif path.outcome is not None and self.root.kind == "branch":
            self.root.add(Node("outcome", self.v.outcome_text(path.outcome, steps)))


def _base_where(st: Step) -> str:
    """``hook input, priority filter + 10`` for an nft base chain (from the step's detail)."""
    d = st.detail or {}
    if d.get("priority") is None:
        return ""
    text = str(d.get("priority_text") or d["priority"])
    shown = text if text == str(d["priority"]) else f"{text} = {d['priority']}"
    return f"{d.get('type') or 'filter'} hook {st.hook.lower()}, priority {shown}"


def rule_parts(rule: Any) -> tuple[str, str, list[str]]:
    """(matches, ``-j TARGET …``, comments) of a rule in its save syntax.  Comments are set
    apart, as ``iptables -L`` prints them (``/* … */``): on a kube-proxy node they are the best
    explanation of a rule, and inline they would bury its matches.  A rule of another language
    (an nft rule) says its own parts, as that language prints them."""
    from iptexplain.ext.base import extension_name

    parts = getattr(rule, "parts", None)
    if parts is not None:
        return parts()

    args = rule.header.save_args()
    comments: list[str] = []
    for m in rule.matches:
        if extension_name(m) == "comment" and getattr(m, "understood", False):
            comments.append(str(m.value("comment", "")))
        else:
            args += m.save()
    target: list[str] = []
    if rule.target is not None:
        target = rule.target.save()
        if rule.goto:
            target = ["-g"] + target[1:]
    return " ".join(args), " ".join(target), comments


def _jump_target(st: Step) -> str:
    for key in ("to", "target"):
        if st.detail and st.detail.get(key):
            return str(st.detail[key])
    if st.rule is not None and st.rule.jump:
        return st.rule.jump
    return st.chain


def rewrite_text(st: Step) -> str:
    """``dst 198.51.100.1:9525 → 172.17.0.6:9525``: from the step's reason or its detail."""
    if st.reason:
        return st.reason
    d = st.detail or {}
    what = d.get("field") or d.get("what") or ""
    before, after = d.get("before"), d.get("after")
    if before is not None or after is not None:
        return f"{what + ' ' if what else ''}{before} → {after}".strip()
    return " ".join(f"{k} {v}" for k, v in d.items())


def route_text(st: Step) -> str:
    d = st.detail or {}
    if d.get("local"):
        return "local delivery"
    if d.get("iface") or d.get("dev"):
        return f"forward via {d.get('iface') or d.get('dev')}"
    return ""


def condition_text(cond: Condition) -> Text:
    text = Text()
    if cond.probability is not None:
        text.append(f"[{cond.probability:.0%}] ", "bold")
    text.append(cond.text, _style("cond"))
    return text


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
                (f" {m.note if warn else 'i'} ", _style("note") if warn else "dim"),
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
                    text.append(f" ({policy.group(2)})", _style("where"))
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
            text = Text.assemble((f"{m.uncertain} {'uncertain' if brief else 'UNCERTAIN'}: ", _style("note")),
                                 (f"rests on what the input does not show ({why})",
                                  _style("uncertain")))
            if not brief:
                text.append("; the packet may go another way. For the full picture read `iptables-save` "
                            "(every table) instead.", "")
            return text
        listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        if len(rules) > len(shown):  # the count and the list agree: "5 rules, the last 4: A, B, C and D"
            listed = f"{len(rules)} rules, the last {'' if len(shown) == 1 else f'{len(shown)}: '}{listed}"
        them = "it" if len(rules) == 1 else "them"
        if brief:
            return Text.assemble((f"{m.uncertain} uncertain: ", _style("note")),
                                 (f"rests on {listed}" + (f" ({why})" if why else ""), _style("uncertain")))
        text = Text(f"{m.uncertain} UNCERTAIN: ", _style("note"))
        text.append(f"this verdict rests on {listed} ({outcome.uncertain}); the kernel may not match "
                    f"{them} and the packet may go another way. For the full picture read "
                    "`iptables-save` (or `iptables -nvL`, `iptables -t nat -nvL`) instead.", "")
        return text

    def tree_nodes(self, m: Marks) -> list[Node]:
        root = Node("root", Text(""))
        _Builder(self, root, m).build(self.trace.root, [])
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
            conds = Text(" and ".join(c.text for c in leaf.conditions if not edge or c.edge), _style("cond"))
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
            (f"{m.fork} FORKS", _style("fork")),
            (f"  {len(leaves)} ways, " + (f"all {kinds[0]}" if len(kinds) == 1 else " / ".join(kinds)), ""),
        )
        out: list[Any] = [head, self._grid(leaves, m)]
        unsure_ways = [lf for lf in leaves if lf.outcome.uncertain]
        if unsure_ways:
            why = "; ".join(dict.fromkeys(r for lf in unsure_ways for r in self.reasons(lf.outcome)))
            some = "every way rests" if len(unsure_ways) == len(leaves) else \
                f"{len(unsure_ways)} of {len(leaves)} ways rest"
            text = Text(f"{m.uncertain} UNCERTAIN: ", _style("note"))
            text.append(f"{some} on rules the input did not show in full ({why}); the kernel may not "
                        "match them and the packet may go another way. For the full picture read "
                        "`iptables-save` (or `iptables -nvL`, `iptables -t nat -nvL`) instead.", "")
            out.append(_hanging(self._a(text), 2))
        return out

    def _edge_ways(self, leaves: list[Leaf], m: Marks) -> list[Any]:
        head = Text.assemble(("  except", _style("fork")),
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
                                      _style("note")))
            node.children = [note, *flat]
            continue
        stack.extend((c, d + 1) for c in node.children)


def _finish_table(n: Node, m: Marks) -> None:
    """Label a table node ``nat PREROUTING → DOCKER ⇒ ACCEPT``; fold a table where nothing
    matched into that one line (``… 2 rules passed over · policy ACCEPT``)."""
    label = Text(f"{n.table} ", _style("table"))
    chains = n.chains or [n.base]
    label.append(chains[0], _style("table"))
    if n.where:
        label.append(f" ({n.where})", "dim")
    for c in chains[1:]:
        label.append(f" {m.arrow} ", "dim")
        label.append(c, _style("chainpath"))
    quiet = all(c.kind in ("skipped", "policy") for c in n.children)
    if quiet and n.children:
        bits = [c.label.plain for c in n.children if c.kind == "skipped"]
        if bits:
            label.append("   " + ", ".join(bits), _style("skipped"))
        if n.verdict:
            label.append(f"  {m.verdict} ", "dim")
            label.append(n.verdict, _target_style(n.verdict))
            if any(c.kind == "policy" for c in n.children):
                label.append(" (policy)", "dim")
        n.children = []
    elif n.verdict:
        label.append(f"  {m.verdict} ", "dim")
        label.append(n.verdict, _target_style(n.verdict))
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
