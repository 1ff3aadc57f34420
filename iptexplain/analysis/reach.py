"""reach: the host's reachability table -- for each destination (the host's own ports, each
published or forwarded destination), which sources on each interface get through, which are
dropped or rejected, and by which rule.

Computed over packet sets, like diff: each entry scenario (:mod:`.scenarios`) is traced whole,
and its cells (:mod:`.fates`) -- the regions of entry packets with one fate -- are grouped by
destination: a DNAT target ("published 198.51.100.10:8080 → 192.0.2.2:80"), the host itself by
port, or a forwarded destination.  Each row lists, per entry point, the source regions in words
with their fate and the rule that decided it; nothing is sampled.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from iptexplain.analysis.diff import Side, address_names, branch_cap, entry_box, trace_scenario
from iptexplain.analysis.fates import Cell, Responsible, cells, fates_words
from iptexplain.analysis.scenarios import Scenario, scenarios, shared_host
from iptexplain.analysis.space import (ICMP_PROTOS, addr_words, box_words, meet, merge_boxes, set_words,
                                       without_martians)
from iptexplain.core.packets import U8, U16, IntSet, Packets, fmt_icmp, fmt_set, intersect, normalize, subtract, union
from iptexplain.graph import Ruleset
from iptexplain.host.model import HostModel
from iptexplain.netfilter.routing import Router
from iptexplain.netfilter.trace import PASSED, Flow

PUBLISHED, HOST, FORWARDED = "published", "host", "forwarded"


@dataclass
class Access:
    """One source region of one entry point for one destination, and what happens to it."""

    scenario: Scenario
    boxes: list[Packets]
    words: str  # "from any address via eth0 but 10.0.0.0/24"
    fate: str
    passed: bool | None  # True: gets through; False: dropped/rejected; None: depends
    rules: tuple[Responsible, ...]
    conditions: tuple[str, ...] = ()
    # Published ports: the sources here that the host's INPUT rules would refuse, were it not
    # for the DNAT that sends them to FORWARD (words, and the rule or policy refusing).
    bypass: list[tuple[str, str]] = field(default_factory=list)
    bypass_boxes: list[Packets] = field(default_factory=list)
    fates: frozenset = frozenset()


@dataclass
class Row:
    """A destination and who reaches it."""

    kind: str  # published / host / forwarded
    proto: str
    dest: str  # "198.51.100.10:8080 → 192.0.2.2:80 (web)", "this host tcp:22"
    access: list[Access] = field(default_factory=list)
    translated_by: list[Responsible] = field(default_factory=list)


@dataclass
class ReachResult:
    rows: list[Row]
    host: HostModel
    scenarios: list[Scenario]
    notes: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)


def _container(host: HostModel, addr: str) -> str:
    a = addr.split(":")[0] if addr.count(":") == 1 else addr
    info = host.containers.get(a)
    return f" ({info['name']})" if info and info.get("name") else ""


def _ports(box: Packets) -> str:
    p = box.proto
    if p and all(v in ICMP_PROTOS for lo, hi in p for v in range(lo, hi + 1)):
        return "" if box.icmp == U16 else f" type {fmt_icmp(box.icmp)}"
    if box.dport == U16:
        return ":*"
    return ":" + set_words(box.dport, U16, lambda x, n: fmt_set(x, limit=n), limit=6)


def _destination(cell: Cell, local, host: HostModel, names) -> tuple[str, str]:
    """(kind, words) of where the cell's packets are going."""
    box = cell.box
    nat = [dict(f.nat) for f in cell.fates if any(k in ("dst", "dport") for k, _ in f.nat)]
    to_local = not subtract(box.dst, local)
    dst = box_words(box.copy(sport=U16, tcpflags=U8), None, None, names).split(" to ", 1)[-1]
    if nat:
        kept = _ports(box) if box.dport != U16 else ""
        targets = sorted({(n.get("dst") or "") + (f":{n['dport']}" if n.get("dport") else kept) for n in nat})
        shown = [t + _container(host, t) for t in targets]
        return PUBLISHED, f"{dst} → " + (" or ".join(shown[:4]) + (" …" if len(shown) > 4 else ""))
    if to_local:
        return HOST, "this host" + _ports(box)
    return FORWARDED, addr_words(box.dst, box.family) + _ports(box)


@dataclass
class _Item:
    """One cell of one scenario, placed: where its packets go."""

    scenario: Scenario
    cell: Cell
    kind: str
    key: str  # the destination without its ports: "this host", "172.17.0.0/16 (docker0)", a DNAT target
    entry: Packets | None
    entry_words: dict


def _targets(cell: Cell, host: HostModel) -> list[str]:
    box = cell.box
    kept = _ports(box) if box.dport != U16 else ""
    out = set()
    for f in cell.fates:
        n = dict(f.nat)
        if n.get("dst") or n.get("dport"):
            out.add((n.get("dst") or "") + (f":{n['dport']}" if n.get("dport") else kept))
    return [t + _container(host, t) for t in sorted(out)]


def _subnets(h: HostModel, family: int):
    """The directly connected subnets not behind the default route (where containers live),
    without the host's own addresses and the subnets' broadcast addresses."""
    r = Router(h, family)
    full = ((0, (1 << r.bits) - 1),)
    out = []
    for part, res in r.split(full):
        if res.type == "unicast" and res.prefix not in ("default", "") and res.via is None:
            out.append((part, f"{res.prefix} ({res.dev})"))
    return out


def reach(side: Side, template: Flow, host: HostModel | None = None) -> ReachResult:
    h = shared_host([side.ruleset], host, template.family, template.iniface)

    local = Router(h, template.family).local_addrs
    own = subtract(local, ((0x7F000000, 0x7FFFFFFF),) if template.family == 4 else ((1, 1),))
    names = address_names(h, template.family)
    subnets = _subnets(h, template.family)
    scs = scenarios(h, template)
    notes: list[str] = []
    incomplete: list[str] = []
    items: list[_Item] = []
    cap = branch_cap(side.ruleset)
    for sc in scs:
        if sc.flow.from_host:
            continue  # the host's own packets reach out; the table is about who reaches in
        t = trace_scenario(side, sc, h, cap)
        notes.extend(n for n in t.notes if n not in notes)
        if any("branches: the trace stops" in n for n in t.notes):
            incomplete.append(sc.key)
        entry, entry_words = entry_box(t)
        for cell in cells(t, side.ruleset):
            box = without_martians(cell.box, False)
            if box is None:
                continue
            targets = _targets(cell, h)
            if targets:
                dst = box_words(box.copy(sport=U16, tcpflags=U8), None, None, names).split(" to ", 1)[-1]
                items.append(_Item(sc, Cell(box, cell.fates, cell.rules, cell.conditions, cell.leaves), PUBLISHED,
                                   f"{dst} → " + " or ".join(targets[:4]) + (" …" if len(targets) > 4 else ""),
                                   entry, entry_words))
                continue
            mine = intersect(box.dst, own)
            if mine:
                items.append(_Item(sc, Cell(box.copy(dst=mine), cell.fates, cell.rules, cell.conditions, cell.leaves),
                                   HOST, "this host", entry, entry_words))
            for part, name in subnets:
                there = intersect(subtract(box.dst, local), part)
                if there:
                    # a subnet's first and last addresses (network, broadcast) are no one's
                    there = subtract(there, ((part[0][0], part[0][0]), (part[-1][1], part[-1][1])))
                if there:
                    items.append(_Item(sc, Cell(box.copy(dst=there), cell.fates, cell.rules, cell.conditions,
                                                cell.leaves), FORWARDED, name, entry, entry_words))
    rows = _rows(items, names, h)
    _bypasses(side, rows, h, names)
    return ReachResult(rows, h, scs, notes, incomplete)


def without_nat(rs: Ruleset) -> Ruleset:
    """The ruleset without its nat tables: what the filter rules do to a packet nobody
    translates (the question "would INPUT have let it in?")."""
    import dataclasses

    return dataclasses.replace(rs, tables={k: t for k, t in rs.tables.items() if k[1] != "nat"})


def _bypasses(side: Side, rows: list[Row], h: HostModel, names) -> None:
    """For each published destination reached: the sources INPUT would have refused.  Docker's
    (and kube-proxy's) DNAT in nat PREROUTING sends the packet to FORWARD, so a host firewall
    on INPUT (ufw, firewalld's INPUT zones) never sees it -- the classic "ufw does not block
    my container" surprise.

    The ruleset without nat is traced once per scenario, whole (its cells partition the
    scenario's entry packets like the translated trace's do), not once per published port: a
    kube-proxy node publishes thousands."""
    bare = Side(without_nat(side.ruleset), side.ipsets, side.backend)
    refused: dict[str, list[Cell]] = {}
    for row in rows:
        if row.kind != PUBLISHED:
            continue
        for a in row.access:
            if not a.passed:
                continue
            sc = a.scenario
            if sc.key not in refused:
                refused[sc.key] = [c for c in cells(trace_scenario(bare, sc, h), bare.ruleset)
                                   if c.fates and not any(f.kind in PASSED for f in c.fates)]
            for box in a.boxes:
                for c in refused[sc.key]:
                    x = meet(c.box, box)
                    if x is None:
                        continue
                    who = next((r.text for r in c.rules if r.role == "decided"), "")
                    w = _source_words(x, getattr(a, "entry", None), getattr(a, "entry_words", {}), names)
                    a.bypass_boxes.append(x)
                    if (w, who) not in a.bypass:
                        a.bypass.append((w, who))


def _atoms(sets: list[IntSet]) -> list[IntSet]:
    """The common refinement of ``sets``: the coarsest pieces each of which lies wholly inside
    or outside every set (ports 22, 80, "other ports" …)."""
    cuts = sorted({lo for s in sets for lo, _ in s} | {hi + 1 for s in sets for _, hi in s})
    pieces: dict[tuple, list[tuple[int, int]]] = {}
    for a, b in zip(cuts, cuts[1:]):
        sig = tuple(i for i, s in enumerate(sets) if intersect(s, ((a, a),)))
        if sig:
            pieces.setdefault(sig, []).append((a, b - 1))

    return sorted((normalize(v) for v in pieces.values()), key=lambda x: (len(x) > 1, x))


def _rows(items: list[_Item], names, h: HostModel) -> list[Row]:
    rows: list[Row] = []
    order = {PUBLISHED: 0, HOST: 1, FORWARDED: 2}
    by_key: dict[tuple, list[_Item]] = {}
    for it in items:
        by_key.setdefault((order[it.kind], it.key, it.scenario.flow.proto or "any", it.kind), []).append(it)
    for (_, key, proto, kind), group in sorted(by_key.items(), key=lambda kv: kv[0][:3]):
        icmp = proto in ("icmp", "ipv6-icmp")
        field_ = "icmp" if icmp else "dport"
        for atom in _atoms([getattr(it.cell.box, field_) for it in group]):
            probe = group[0].cell.box.copy(**{field_: atom})
            label = key if kind == PUBLISHED else key + _ports(probe)
            row = Row(kind, proto, label)
            accesses: dict[tuple, Access] = {}
            for it in group:
                part = intersect(getattr(it.cell.box, field_), atom)
                if not part:
                    continue
                box = it.cell.box.copy(**{field_: part})
                for r in it.cell.rules:
                    if r.role == "translated" and kind == PUBLISHED and "DNAT" in r.spec and r not in row.translated_by:
                        row.translated_by.append(r)
                kinds = {f.kind for f in it.cell.fates}
                passed = True if kinds <= set(PASSED) else False if not kinds & set(PASSED) else None
                deciders = tuple(r for r in it.cell.rules if r.role == "decided")
                k = (it.scenario.key, fates_words(it.cell.fates), deciders)
                a = accesses.get(k)
                if a is None:
                    accesses[k] = a = Access(it.scenario, [], "", fates_words(it.cell.fates), passed, deciders,
                                             it.cell.conditions, fates=it.cell.fates)
                    a.entry, a.entry_words = it.entry, it.entry_words  # type: ignore[attr-defined]
                    row.access.append(a)
                a.boxes.append(box)
            for a in row.access:
                a.boxes = merge_boxes(a.boxes)
                a.words = "; ".join(_source_words(b, a.entry, a.entry_words, names)  # type: ignore[attr-defined]
                                    + _dst_narrowed(b, group, names) for b in a.boxes[:3]) + (f"; and {len(a.boxes) - 3} more" if len(a.boxes) > 3 else "")
            if row.access:
                rows.append(row)
    return rows


def _dst_narrowed(box: Packets, group: list[_Item], names) -> str:
    """" to 172.17.0.2" when the access is for part of the row's destinations only."""
    whole: IntSet = ()

    for it in group:
        whole = union(whole, it.cell.box.dst)
    if box.dst == whole or group[0].kind == PUBLISHED:
        return ""
    return " to " + addr_words(box.dst, box.family)


def _source_words(box: Packets, entry, entry_words, names) -> str:
    """The source side of a box: addresses (and the source port when narrowed)."""
    if entry is None:
        return addr_words(box.src, box.family)
    w = box_words(box.copy(dst=entry.dst, dport=entry.dport, sport=entry.sport), entry, entry_words, names)
    src = w.split(" from ", 1)[-1].split(" to ", 1)[0]
    extra = w.split(" to ", 1)[-1].split(" ", 1)[1:]
    if box.sport != entry.sport:
        extra.insert(0, "source port " + set_words(box.sport, U16, lambda x, n: fmt_set(x, limit=n)))
    return src + (f" ({', '.join(extra)})" if extra else "")
