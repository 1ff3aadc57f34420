"""The trace as a tree of display nodes: hooks, the tables entered, the chains walked and the
rules of the taken path, rewrites under the rule that made them, forks with their conditions.
Plain nodes here; :mod:`.trace_view` makes rich Trees of them at render time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rich.text import Text

from iptexplain.ext.base import extension_name
from iptexplain.netfilter.trace import GOTO, RULE, Condition, Path, Step
from iptexplain.render.marks import Marks, style_of, target_style

if TYPE_CHECKING:
    from iptexplain.render.trace_view import TraceView

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
    cascade: bool = False  # "skipped" nodes: random choices not taken, shown as the fork's other ways

    def add(self, node: "Node") -> "Node":
        self.children.append(node)
        return node


class TreeBuilder:
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
                    (f"{self.m.arrow} ", style_of("jump")), (c or "?", style_of("jump")))))
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

    def _skip(self, st: Step, cascade: bool = False) -> None:
        container = self._container_for(st)
        if self.pending_skip is not None and self.pending_skip[0] is container:
            node = self.pending_skip[1]
        else:
            self._end_skip()
            node = container.add(Node("skipped", Text("")))
            self.pending_skip = (container, node)
        node.skipped += 1
        node.cascade = node.cascade or cascade

    def _end_skip(self) -> None:
        """Label the run of rules passed over that just ended (once, not once per rule: a way of
        a 256-way cascade passes over hundreds)."""
        if self.pending_skip is not None:
            node = self.pending_skip[1]
            n = node.skipped
            node.label = Text(f"… {n} rule{'s' if n != 1 else ''} passed over"
                              + (": random choices not taken, each an earlier way of this fork" if node.cascade else ""),
                              style_of("skipped"))
        self.pending_skip = None

    def _on_hook(self, st: Step) -> None:
        label = Text(st.hook or st.chain or "?", style_of("hook"))
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
        text = Text("conntrack", style_of("conntrack"))
        if st.reason:
            text.append(f"  {self.v.names(st.reason)}", "dim")
        (self.hook or self.root).add(Node("conntrack", text))

    def _on_rule(self, st: Step) -> None:
        container = self._container_for(st)
        rule = st.rule
        m = self.m
        if st.matched is False:
            label = Text.assemble((f"{m.miss} ", style_of("miss")))
            label.append(self._rule_head(st), style_of("miss"))
            if rule is not None:
                matches, target, comments = rule_parts(rule)
                label.append(" ".join(x for x in (matches, target) if x), style_of("miss"))
                for c in comments:
                    label.append(f"  /* {c} */", style_of("miss"))
            if st.reason:
                label.append(f"  — {st.reason}", "dim italic")
            if rule is not None and rule.line:
                label.append(f"  {self.v.line_of(rule)}", style_of("where"))
            container.add(Node("miss", label))
            return
        mark = m.match if st.matched else m.maybe
        unsure = (st.detail or {}).get("uncertain")
        if unsure and st.matched:
            mark += m.uncertain
        label = Text.assemble((f"{mark} ", style_of("match") if st.matched else style_of("note")))
        label.append(self._rule_head(st), "bold")
        if rule is not None:
            matches, target, comments = rule_parts(rule)
            label.append(matches)
            if target:
                if matches:
                    label.append(" ")
                label.append(target, target_style(rule.target_name))
            for c in comments:
                label.append(f"  /* {c} */", "dim")
        if st.reason and (self.v.verbose or not st.matched):
            label.append(f"  — {self.v.names(st.reason)}", "dim italic")
        if rule is not None and rule.line:
            label.append(f"  {self.v.line_of(rule)}", style_of("where"))
        node = container.add(Node("rule", label))
        if unsure:
            node.add(Node("uncertain", Text(f"{m.uncertain} {unsure}", style_of("uncertain"))))
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
            (f"{self.m.arrow} ", style_of("jump")), (target or "?", style_of("jump")),
            (f"  {st.reason}" if st.reason else "", "dim"))))
        self.jump_parent[d] = (target, node, st.kind == GOTO)

    _on_goto = _on_jump

    def _on_return(self, st: Step) -> None:
        if not self.v.verbose:
            return
        text = Text(f"{self.m.ret} ", style_of("where"))
        text.append(st.reason or (f"back from {st.chain}" if st.chain else "return"), style_of("where"))
        # under the chain returned from (an explicit RETURN rule or the end of the chain)
        home = next((node for depth, chain, node in reversed(self.stack) if chain == st.chain), None)
        (home or self._innermost()).add(Node("return", text))

    def _on_policy(self, st: Step) -> None:
        pol = st.verdict or st.detail.get("policy", "") if st.detail else st.verdict or ""
        text = Text.assemble((f"{self.m.verdict} policy ", style_of("policy")), (pol or "?", target_style(pol or "")))
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
                self.table.add(Node("verdict", Text(f"{self.m.verdict} {v}  {st.reason}", target_style(v))))
            return
        where = f"{st.table} " if st.table else ""
        text = Text.assemble((f"{self.m.verdict} {where}", ""), (v, target_style(v)))
        if st.reason:
            text.append(f"  {st.reason}", "dim")
        self._top().add(Node("verdict", text))

    def _on_rewrite(self, st: Step) -> None:
        text = Text(f"{self.m.rewrite} ", style_of("rewrite"))
        text.append(self.v.names(rewrite_text(st)), style_of("rewrite"))
        target = self.last_rule
        ls = self.last_rule_step
        if target is None or ls is None or (st.chain and ls.chain != st.chain) or (st.table and ls.table != st.table):
            target = self._innermost()
        target.add(Node("rewrite", text))

    def _on_route(self, st: Step) -> None:
        text = Text("routing", style_of("route"))
        body = st.reason or route_text(st)
        if body:
            text.append(f"  {self.v.names(body)}", "")
        self.root.add(Node("route", text))
        self.hook = None
        self.table = None
        self.stack = []

    def _on_note(self, st: Step) -> None:
        text = Text(f"{self.m.note} ", style_of("note"))
        text.append(self.v.names(st.reason or str(st.detail or "")), style_of("note"))
        self._innermost().add(Node("note", text))

    # -- paths ------------------------------------------------------------------------------

    def build(self, path: Path, prefix: list[Step]) -> None:
        steps = path.steps
        cascade = _cascade_runs(steps) if self.v.verbose else ()
        for i, st in enumerate(steps):
            if i in cascade:
                self._skip(st, cascade=True)
            else:
                self.add(st)
        self._end_skip()
        steps = prefix + path.steps
        if path.fork is not None:
            fork = self.root.add(Node("fork", Text.assemble(
                (f"{self.m.fork} fork", style_of("fork")),
                (f"  {self.v.names(path.fork.reason)}" if path.fork.reason else "", ""),
            )))
            for cond, sub in path.fork.branches:
                branch = fork.add(Node("branch", condition_text(cond)))
                child = TreeBuilder(self.v, branch, self.m)
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


_NOT_CHOSEN = "random choice not taken"


def _cascade_runs(steps: list[Step]) -> set[int]:
    """Indexes of the steps a verbose view counts instead of listing: runs of two or more rules
    passed over as random choices not taken.  Only a way of a flattened statistic cascade has
    them (:mod:`iptexplain.netfilter.cascades`), and each of them is the chosen rule of an
    earlier way of the same fork, shown there: listing them in every way would make the view of
    an n-way fork n² rules long (a 1,000-endpoint service)."""
    out: set[int] = set()
    run: list[int] = []
    for i, st in enumerate([*steps, None]):
        if st is not None and st.kind == RULE and st.matched is False and st.reason.startswith(_NOT_CHOSEN):
            run.append(i)
            continue
        if len(run) >= 2:
            out.update(run)
        run = []
    return out


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
    text.append(cond.text, style_of("cond"))
    return text
