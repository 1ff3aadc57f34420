"""What a change to a ruleset does: the packets whose fate differs between two rulesets.

Both rulesets are traced over the same entry scenarios (:mod:`.scenarios`) on the same host
model, over whole sets of packets.  Each trace's leaves partition the scenario's entry set into
cells (:mod:`.fates`); the cells of the old and the new trace are intersected pairwise, and
wherever the fates differ the intersection is a region of changed packets.  Regions with the same
before/after fates and the same rules responsible form one class, said in words, with one
concrete example packet.  Nothing is sampled: every changed packet is in a class, and every
packet of a class changes (up to the tracer's own exactness: an undecidable match forks both
ways, and a class then says which condition the change depends on).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from iptexplain.analysis.fates import Cell, Fate, Responsible, cells, fates_words, outcomes
from iptexplain.analysis.scenarios import Scenario, scenarios, shared_host
from iptexplain.analysis.space import FIELDS, PacketClass, meet, merge_boxes, without_martians
from iptexplain.core.packets import Packets, normalize, subtract, union
from iptexplain.graph import Ruleset
from iptexplain.host.model import HostModel
from iptexplain.netfilter.routing import Router
from iptexplain.netfilter.trace import Flow, Trace
from iptexplain.netfilter.tracer import trace_flow

MAX_BRANCHES = 4096  # leaves per scenario trace; beyond, the diff says it is incomplete


@dataclass
class Side:
    """One ruleset of the comparison."""

    ruleset: Ruleset
    ipsets: Any = None
    backend: str | None = None


@dataclass
class ChangeClass(PacketClass):
    """Packets whose fate changed the same way, for the same rules."""

    scenario: Scenario
    boxes: list[Packets]
    before: frozenset[Fate]
    after: frozenset[Fate]
    rules_before: tuple[Responsible, ...]
    rules_after: tuple[Responsible, ...]
    conditions_before: tuple[str, ...] = ()
    conditions_after: tuple[str, ...] = ()
    entry: Packets | None = None  # the scenario's entry set (what the words narrow)
    entry_words: dict[str, str] = field(default_factory=dict)
    names: list = field(default_factory=list)  # (address set, words): "this host"
    prefer_dst: list[int] = field(default_factory=list)  # the address of the entry interface

    @property
    def before_words(self) -> str:
        return fates_words(self.before)

    @property
    def after_words(self) -> str:
        return fates_words(self.after)


@dataclass
class DiffResult:
    classes: list[ChangeClass]
    scenarios: list[Scenario]
    host: HostModel
    notes: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)  # scenarios whose trace hit the branch cap

    @property
    def changed(self) -> bool:
        return bool(self.classes)


def entry_box(trace: Trace) -> tuple[Packets | None, dict[str, str]]:
    """The scenario's whole entry set (the root of the tree), and the words its open fields
    go by ("any address via eth0")."""
    boxes = [o.origin for o in outcomes(trace) if o.origin is not None]
    if not boxes:
        return None, {}
    first = boxes[0]
    # The entry set is the union of the leaves' origins: per field, their hull is the entry
    # field (the leaves partition it).

    changes = {}

    for f in FIELDS:
        s = getattr(first, f)
        if any(getattr(b, f) != s for b in boxes[1:]):  # one merge of every piece, not one per leaf
            s = normalize(iv for b in boxes for iv in getattr(b, f))
        changes[f] = s
    entry = first.copy(**changes, ctstate=frozenset().union(*(b.ctstate for b in boxes)))
    words = {}
    labels = first.extra.get("labels", {})
    if "src" in labels and labels["src"][0] == entry.src:
        words["src"] = labels["src"][1]
    if first.extra.get("src_open"):
        words["src"] = "any (the host's choice)"
    return entry, words


def address_names(host: HostModel, family: int) -> list:
    """Address sets a class's words name rather than list: the host's own addresses."""
    r = Router(host, family)
    local = r.local_addrs
    if family == 4:
        local = subtract(local, ((0x7F000000, 0x7FFFFFFF),))
    else:
        local = subtract(local, ((1, 1),))
    full = ((0, (1 << r.bits) - 1),)
    bcast: tuple = ()
    for part, res in r.split(full):
        if res.type == "broadcast":
            bcast = union(bcast, part)
    if family == 4:
        bcast = subtract(bcast, ((0x7F000000, 0x7FFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF)))
    return [(local, "this host")] + ([(bcast, "the host's subnet broadcast addresses")] if bcast else [])


def branch_cap(rs: Ruleset) -> int:
    """Leaves a scenario's trace may have: MAX_BRANCHES, or more where the ruleset translates
    to many destinations (a kube-proxy node: a way per service endpoint, and per "is the source
    this endpoint" test) -- four per DNAT rule, so that a node's every service is answered."""
    dnat = sum(1 for r in rs.rules() if r.jump is None and r.target_name in ("DNAT", "REDIRECT"))
    return max(MAX_BRANCHES, 4 * dnat)


def trace_scenario(side: Side, sc: Scenario, host: HostModel, max_branches: int = MAX_BRANCHES) -> Trace:
    return trace_flow(side.ruleset, sc.flow, host, ipsets=side.ipsets, verbose=False,
                      max_branches=max_branches, backend=side.backend)


def compare(old: list[Cell], new: list[Cell]) -> list[tuple[Packets, Cell, Cell]]:
    """Every region where an old cell and a new cell overlap with different fates."""
    out = []
    for a in old:
        for b in new:
            if a.fates == b.fates:
                continue
            x = meet(a.box, b.box)
            if x is not None:
                x = without_martians(x, x.iniface == "lo")
            if x is not None:
                out.append((x, a, b))
    return out


def diff_rulesets(old: Side, new: Side, template: Flow, host: HostModel | None = None) -> DiffResult:
    """The classes of packets whose fate differs from ``old`` to ``new``, for the entry scenarios
    ``template`` (the user's flow options) leaves open."""
    h = shared_host([old.ruleset, new.ruleset], host, template.family, template.iniface)
    scs = scenarios(h, template)
    names = address_names(h, template.family)

    router = Router(h, template.family)
    classes: list[ChangeClass] = []
    incomplete: list[str] = []
    notes: list[str] = []
    for sc in scs:
        t_old = trace_scenario(old, sc, h)
        t_new = trace_scenario(new, sc, h)
        for t in (t_old, t_new):
            notes.extend(n for n in t.notes if n not in notes)
            if any("branches: the trace stops" in n for n in t.notes) and sc.key not in incomplete:
                incomplete.append(sc.key)
        entry, entry_words = entry_box(t_old)
        prefer = [a for a, _ in router.addresses(sc.flow.iniface)] if sc.flow.iniface else []
        groups: dict[tuple, ChangeClass] = {}
        for x, a, b in compare(cells(t_old, old.ruleset), cells(t_new, new.ruleset)):
            key = (a.fates, b.fates, a.rules, b.rules)
            c = groups.get(key)
            if c is None:
                groups[key] = ChangeClass(sc, [x], a.fates, b.fates, a.rules, b.rules, a.conditions,
                                          b.conditions, entry, entry_words, names, prefer)
            else:
                c.boxes.append(x)
        for c in groups.values():
            c.boxes = merge_boxes(c.boxes)
            classes.append(c)
    return DiffResult(classes, scs, h, notes, incomplete)
