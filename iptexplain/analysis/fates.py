"""What happens to a region of packets, as data the analyses compare: each trace leaf's origin
box, its fate (the outcome with the translations that matter to the packet's owner), and the
rules responsible.

Two leaves whose origin boxes are identical come from an undecidable fork (a ``limit``, a
``statistic``, an ipset without contents): both sides hold every packet.  They form one *cell*
whose fate is the set of its leaves' fates, so that a ``limit`` rule both rulesets share is not
mistaken for a difference.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any, Iterator

from iptexplain.analysis.space import FIELDS, meet
from iptexplain.core.packets import IntSet, Packets, intersect, subtract
from iptexplain.netfilter.trace import (DELIVERED, FORWARDED, REJECTED, REWRITE, RULE, SENT, Condition, Leaf, Outcome,
                                        Path, Step, Trace)
from iptexplain.netfilter.outcome import OUTCOME_WORDS, find_decider, rule_ref

NAT_FIELDS = ("src", "sport", "dst", "dport")


@dataclass(frozen=True, order=True)
class Fate:
    """An outcome as the packet's owner sees it: delivered / forwarded via IFACE / dropped /
    rejected (and how), with the address translations it got."""

    kind: str
    iface: str = ""
    reply: str = ""
    nat: tuple[tuple[str, str], ...] = ()  # (field, value after) of the last rewrite of each

    def words(self) -> str:
        text = OUTCOME_WORDS.get(self.kind, self.kind)
        nat = dict(self.nat)
        dst = _endpoint(nat.get("dst"), nat.get("dport"))
        src = _endpoint(nat.get("src"), nat.get("sport"))
        if self.kind == FORWARDED:
            text = "forwarded" + (f" to {dst}" if dst else "") + (f" via {self.iface}" if self.iface else "")
        elif self.kind == SENT:
            text = "sent" + (f" to {dst}" if dst else "") + (f" via {self.iface}" if self.iface else "")
        elif self.kind == DELIVERED:
            text = "delivered locally" + (f" to {dst}" if dst else "")
        elif self.kind == REJECTED and self.reply:
            text = f"rejected with {self.reply}"
        if src:
            text += f", source translated to {src}"
        return text


def _endpoint(addr: str | None, port: str | None) -> str | None:
    if addr and port:
        return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"
    if port:
        return f"port {port}"
    return addr


@dataclass(frozen=True)
class Responsible:
    """A rule (or a policy) that made a fate: the one that decided, or one that translated."""

    text: str  # "filter DOCKER #1 (rules.save:18)" / "policy DROP of filter FORWARD"
    spec: str = ""  # the rule as iptables-save prints it
    role: str = "decided"  # "decided" or "translated"
    rule: Any = field(default=None, compare=False, hash=False)


@dataclass
class Cell:
    """Entry packets every leaf of which has the same origin box: its fates and their rules."""

    box: Packets
    fates: frozenset[Fate]
    rules: tuple[Responsible, ...]
    conditions: tuple[str, ...]  # the undecidable conditions telling the fates apart
    leaves: list[Leaf]


def box_key(b: Packets) -> tuple:
    return tuple(getattr(b, f) for f in FIELDS) + (tuple(sorted(b.ctstate)),)


def fate_of(leaf: Leaf) -> Fate:
    o = leaf.outcome
    nat: dict[str, str] = {}
    for st in leaf.steps:
        if st.kind == REWRITE and st.detail:
            # per field that changed, its value after (an address and its port separately: a
            # MASQUERADE keeps the source port, whatever it was)
            fields = st.detail.get("fields") or {st.detail.get("field"): [st.detail.get("before"), st.detail.get("after")]}
            for f, texts in fields.items():
                if f in NAT_FIELDS and texts and texts[0] != texts[-1]:
                    after = str(texts[-1])
                    if f in ("sport", "dport") and ("-" in after or "," in after):
                        continue  # a port chosen from a range (SNAT's, by the original port's class)
                    nat[f] = after
    iface = o.iface or "" if o.kind in (FORWARDED, SENT) else ""
    return Fate(o.kind, iface, o.reply or "", tuple(sorted(nat.items())))


def responsible(leaf: Leaf, ruleset: Any, family: int) -> list[Responsible]:
    out: list[Responsible] = []
    d = find_decider(leaf.steps, leaf.outcome, ruleset, family)
    if d is not None:
        out.append(Responsible(d.text, d.rule.spec() if d.rule is not None else "", "decided", d.rule))
    for st in leaf.steps:
        if st.kind == REWRITE and st.rule is not None and st.detail and st.detail.get("field") in NAT_FIELDS:
            r = Responsible(rule_ref(st.rule), st.rule.spec(), "translated", st.rule)
            if r not in out:
                out.append(r)
    return out


def decisive_leaves(trace: Trace) -> Iterator[Leaf]:
    """The trace's leaves with the steps an analysis reads: every step but the rules that did
    not match.  A set-wide trace of a big chain records, on each way, every rule of the chain
    it was split from ("destination not in 10.96.0.1" …: a kube-proxy node's thousands of
    services); leaving them out keeps each leaf as long as what happened to it, not as long
    as the chain."""
    todo: list[tuple[Path, list[Condition], list[Step]]] = [(trace.root, [], [])]
    while todo:
        path, conds, prefix = todo.pop()
        steps = prefix + [st for st in path.steps if st.kind != RULE or st.matched is not False]
        if path.fork is not None:
            for cond, sub in reversed(path.fork.branches):
                # the conditions that split the packet set are in the origin box already: only
                # those the ruleset cannot decide (a random choice, a limit) and edge cases stay
                kept = conds + [cond] if undecidable(cond) or cond.edge else conds
                todo.append((sub, kept, steps))
        elif path.outcome is not None:
            yield Leaf(conds, steps, path.outcome)


def outcomes(trace: Trace) -> Iterator[Outcome]:
    """The outcome of every way through the trace, in order (no steps gathered)."""
    todo = [trace.root]
    while todo:
        path = todo.pop()
        if path.fork is not None:
            todo.extend(sub for _, sub in reversed(path.fork.branches))
        elif path.outcome is not None:
            yield path.outcome


def cells(trace: Trace, ruleset: Any) -> list[Cell]:
    """The trace's leaves grouped by origin box, made disjoint."""
    return disjoint(leaf_cells(trace, ruleset))


def leaf_cells(trace: Trace, ruleset: Any) -> list[Cell]:
    """The trace's leaves grouped by origin box (the sides of an undecidable fork may still
    overlap: :func:`disjoint`)."""
    groups: dict[tuple, list[Leaf]] = {}
    boxes: dict[tuple, Packets] = {}
    for leaf in decisive_leaves(trace):
        b = leaf.outcome.origin
        if b is None:  # pragma: no cover - every leaf of trace_flow has one
            raise ValueError("a trace leaf without its origin packets")
        k = box_key(b)
        groups.setdefault(k, []).append(leaf)
        boxes.setdefault(k, b)
    out = []
    fam = trace.flow.family
    for k, leaves in groups.items():
        fates = frozenset(fate_of(lf) for lf in leaves)
        rules: list[Responsible] = []
        for lf in leaves:
            for r in responsible(lf, ruleset, fam):
                if r not in rules:
                    rules.append(r)
        conds = tuple(dict.fromkeys(c.text for lf in leaves for c in lf.conditions
                                    if len(leaves) > 1 and undecidable(c)))
        out.append(Cell(boxes[k], fates, tuple(rules), conds if len(fates) > 1 else (), leaves))
    return out


def box_minus(a: Packets, b: Packets) -> list[Packets]:
    """``a`` without ``b``, as disjoint boxes (one per field where ``a`` reaches outside ``b``)."""
    out = []
    cur = a
    for f in FIELDS:
        x, y = getattr(cur, f), getattr(b, f)
        outside = subtract(x, y)
        if outside:
            out.append(cur.copy(**{f: outside}))
        inside = intersect(x, y)
        if not inside:
            return out
        cur = cur.copy(**{f: inside})
    if cur.ctstate - b.ctstate:
        out.append(cur.copy(ctstate=cur.ctstate - b.ctstate))
    return out


def disjoint(cs: list[Cell]) -> list[Cell]:
    """Cells whose boxes do not overlap.  The two sides of an undecidable fork (a
    ``statistic`` choice) hold the same packets but may be split differently further on
    (kube-proxy's "source is this endpoint" test differs per endpoint): where boxes overlap,
    the packets there get every fate of every cell holding them."""
    if len(cs) < 2:
        return cs
    out: list[Cell] = []
    for group in overlapping_groups(cs):
        out.extend(group if len(group) == 1 else _refine(group))
    return out


def overlapping_groups(cs: list[Cell]) -> list[list[Cell]]:
    """The cells in groups that overlap among themselves (connected by overlapping boxes), in
    their order.  Candidates are found by a sweep over the destinations' hulls, so that a big
    trace (a kube-proxy node's thousands of services, each its own destination) costs about
    one meet per pair of cells whose destinations overlap -- not one per pair of cells."""
    parent = list(range(len(cs)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    hulls = sorted(((c.box.dst[0][0], c.box.dst[-1][1], i) for i, c in enumerate(cs) if c.box.dst),
                   key=lambda h: h[0])
    active: list[tuple[int, int]] = []  # (hull end, index)
    for lo, hi, i in hulls:
        active = [(e, j) for e, j in active if e >= lo]
        for _, j in active:
            if find(i) != find(j) and _may_meet(cs[i].box, cs[j].box) and meet(cs[i].box, cs[j].box) is not None:
                parent[find(i)] = find(j)
        active.append((hi, i))
    groups: dict[int, list[Cell]] = {}
    for i, c in enumerate(cs):
        groups.setdefault(find(i), []).append(c)
    return list(groups.values())


def _overlap(s: IntSet, t: IntSet) -> bool:
    """Whether two interval sets meet: by bisection when one is a single interval (a service's
    address against the thousands of holes of "every other destination")."""
    if len(s) > 1 and len(t) > 1:
        return bool(intersect(s, t))
    if len(s) > 1:
        s, t = t, s
    if not s or not t:
        return False
    lo, hi = s[0]
    k = bisect_left(t, (lo, lo))
    if k > 0 and t[k - 1][1] >= lo:
        return True
    return k < len(t) and t[k][0] <= hi


def _may_meet(a: Packets, b: Packets) -> bool:
    """A quick test before :func:`meet`: the fields kube-proxy's cells differ in."""
    return all(_overlap(getattr(a, f), getattr(b, f)) for f in ("proto", "dport", "dst", "src"))


def _refine(cs: list[Cell]) -> list[Cell]:
    """Overlapping cells made disjoint: the packets in several get the fates of all."""
    done: list[Cell] = []
    for c in cs:
        pieces = [c]
        nxt_done: list[Cell] = []
        for d in done:
            x = meet(d.box, c.box)
            if x is None:
                nxt_done.append(d)
                continue
            both = Cell(x, d.fates | c.fates, tuple(dict.fromkeys(d.rules + c.rules)),
                        tuple(dict.fromkeys(d.conditions + c.conditions)) or _conds(d, c), d.leaves + c.leaves)
            nxt_done.append(both)
            nxt_done.extend(Cell(b, d.fates, d.rules, d.conditions, d.leaves) for b in box_minus(d.box, c.box))
            rest: list[Cell] = []
            for p in pieces:
                if meet(p.box, x) is None:
                    rest.append(p)
                else:
                    rest.extend(Cell(b, p.fates, p.rules, p.conditions, p.leaves) for b in box_minus(p.box, x))
            pieces = rest
        done = nxt_done + pieces
    return done


def undecidable(c: Condition) -> bool:
    """A branch condition the ruleset cannot decide from the packet (a random choice, a
    ``limit`` or an unread ipset "matches", a queue program's verdict), as opposed to a split of
    the packet set (those are in the cell's box already)."""
    return c.probability is not None or any(w in c.text for w in (" matches", " does not match", "queue program"))


def _conds(a: Cell, b: Cell) -> tuple[str, ...]:
    """The conditions telling two overlapping cells' leaves apart (their undecidable choices)."""
    return tuple(dict.fromkeys(c.text for lf in a.leaves + b.leaves for c in lf.conditions if undecidable(c)))[:4]


def fates_words(fates: frozenset[Fate]) -> str:
    """One fate's words; several that differ only in the translated destination (kube-proxy's
    endpoints) as one: "forwarded to 10.244.0.2:53 or 10.244.0.3:53 via cni0"."""
    fs = sorted(fates)
    if len(fs) > 1:
        rest = {(f.kind, f.iface, f.reply, tuple((k, v) for k, v in f.nat if k not in ("dst", "dport"))) for f in fs}
        if len(rest) == 1 and all(dict(f.nat).get("dst") or dict(f.nat).get("dport") for f in fs):
            dsts = [_endpoint(dict(f.nat).get("dst"), dict(f.nat).get("dport")) or "" for f in fs]
            one = Fate(fs[0].kind, fs[0].iface, fs[0].reply, tuple((k, v) for k, v in fs[0].nat if k not in ("dst", "dport"))
                       + (("dst", " or ".join(dsts)),))
            return one.words()
    ws = [f.words() for f in fs]
    return ws[0] if len(ws) == 1 else "either " + " or ".join(ws)
