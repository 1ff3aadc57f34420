"""lint across tables: rules whose effect what runs after them undoes.

An ACCEPT ends only its own table's traversal (an nft ``accept`` only its own base chain): a
later table at the same hook, a later base chain, or a later hook still decides.  So a rule can
accept packets that are dropped anyway -- Docker's ``FORWARD ... -j ACCEPT`` on a host whose
firewalld (``table inet firewalld``, forward at priority filter + 10) rejects them, LXD's
``fwd.lxdbr0`` accept on a host whose iptables-nft ``filter FORWARD`` policy is DROP.

Found with the tracer over packet sets, not by reading the rules: every entry scenario
(:mod:`.scenarios`: each interface, the host itself; new TCP, UDP and ICMP) is traced whole, and
each way through it (a leaf) says which rules gave ACCEPT on the way and whether a later
DROP/REJECT ended the packet.  The leaf's origin box is the packet set in words.

* **undone** -- every packet the rule accepts (of the scenarios traced) is dropped or rejected
  afterwards.  A translation (a DNAT/SNAT verdict) all of whose packets are dropped later is
  one too.
* **partly undone** -- the rule is a filtering one (iptables' filter/security, an nft chain of
  type filter) and a later *filtering* chain at the same hook drops part of what it accepts:
  two firewalls deciding at one hook, the second overruling the first for those packets (the
  rest get through).  Said only for ways through the trace that rest on no undecidable
  condition (a ``limit``, a random choice, an unread ipset).

And one found from the rules alone, as the kernel runs the nat table:

* **never applies** -- a rule of the nat table (or an nft nat chain) that matches only packets
  of a conntrack state the nat table never sees: it runs for a connection's first packet only
  (NEW, or RELATED for an expected connection), so a rule matching only ESTABLISHED, INVALID
  or UNTRACKED packets never matches there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from iptexplain.analysis.diff import MAX_BRANCHES, Side, address_names, entry_box
from iptexplain.analysis.fates import decisive_leaves, undecidable
from iptexplain.analysis.scenarios import Scenario, scenarios, shared_host
from iptexplain.analysis.rewrites import reads, rewrite_of
from iptexplain.analysis.why import hooks_of
from iptexplain.analysis.space import PacketClass, merge_boxes, without_martians
from iptexplain.core.context import MatchContext
from iptexplain.core.packets import U8, U16, Decision, Packets
from iptexplain.graph import Rule, Ruleset
from iptexplain.host.model import HostModel
from iptexplain.netfilter.routing import Router
from iptexplain.netfilter.ipheader import header_deciders
from iptexplain.netfilter.trace import (DROPPED, GOTO, JUMP, POLICY, REJECTED, REWRITE, ROUTE, RULE, TABLE, VERDICT,
                                        Flow, Leaf, Trace)
from iptexplain.netfilter.tracer import trace_flow
from iptexplain.netfilter.outcome import find_decider, rule_ref

UNDONE_ACCEPT, PARTLY_UNDONE, NEVER_APPLIES = "undone", "partly undone", "never applies"
NAT_STATES = frozenset({"NEW", "RELATED"})  # what the nat table's chains ever see
ALL_STATES = frozenset({"NEW", "ESTABLISHED", "RELATED", "INVALID", "UNTRACKED"})
STATE_MODULES = frozenset({"state", "conntrack", "ct"})


@dataclass
class UndoneClass(PacketClass):
    """Packets of one scenario that a rule accepted and a later rule or policy ended."""

    scenario: Scenario
    boxes: list[Packets]
    by: str  # the rule or policy that ended them: "policy DROP of filter FORWARD (x.save:3)"
    by_rule: Rule | None
    fate: str  # "dropped", "rejected with icmp-admin-prohibited"
    entry: Packets | None = None
    entry_words: dict[str, str] = field(default_factory=dict)
    names: list = field(default_factory=list)
    prefer_dst: list[int] = field(default_factory=list)


@dataclass
class Undone:
    """A rule whose ACCEPT (or translation) what runs after it undoes: for every packet it
    accepts (``kind`` undone) or for the packets of ``classes`` (partly undone)."""

    kind: str
    rule: Rule
    hook: str
    classes: list[UndoneClass]
    translation: bool = False  # a NAT verdict, not a filtering ACCEPT

    @property
    def by(self) -> list[str]:
        return list(dict.fromkeys(c.by for c in self.classes))

    @property
    def by_rules(self) -> list[Rule]:
        return list({id(c.by_rule): c.by_rule for c in self.classes if c.by_rule is not None}.values())

    def message(self) -> str:
        by = ", ".join(self.by[:3]) + (" …" if len(self.by) > 3 else "")
        if self.kind == UNDONE_ACCEPT:
            what = "translates" if self.translation else "accepts"
            return (f"{rule_ref(self.rule)} {what} for nothing: every new connection it {what} is ended "
                    f"afterwards by {by} (an ACCEPT ends only its own table's {self.hook} traversal)")
        return (f"{rule_ref(self.rule)} accepts, but {by} then refuses some of those packets at "
                f"{self.hook} (an ACCEPT ends only its own table's traversal; the rest get through)")


@dataclass
class NeverApplies:
    rule: Rule
    states: frozenset[str]

    def message(self) -> str:
        st = ",".join(sorted(self.states))
        return (f"{rule_ref(self.rule)} never applies: it matches only {st} packets, and the nat table sees "
                "only a connection's first packet (NEW, or RELATED for an expected connection)")


@dataclass
class RewriteUndone:
    """A MARK / TOS / DSCP / TTL rewrite that a rule of another table or chain sets again, for
    every packet it rewrote, before anything reads it."""

    rule: Rule
    field: str
    classes: list[UndoneClass]

    @property
    def by_rules(self) -> list[Rule]:
        return list({id(c.by_rule): c.by_rule for c in self.classes if c.by_rule is not None}.values())

    def message(self) -> str:
        by = ", ".join(dict.fromkeys(c.by for c in self.classes))
        return (f"{rule_ref(self.rule)} changes the {self.field} for nothing: {by} (another table or chain) "
                "sets it again, for every packet, before anything reads it")


@dataclass
class UndoneResult:
    undone: list[Undone]
    never: list[NeverApplies]
    host: HostModel | None = None
    notes: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)
    rewrites: list[RewriteUndone] = field(default_factory=list)


@dataclass
class _Judged:
    rule: Rule
    hook: str
    translation: bool
    passed: bool = False  # some packet it accepted was not ended by a later rule
    undone: list[tuple[Scenario, Packets, str, Rule | None, str, bool]] = field(default_factory=list)
    # (scenario, box, by, by rule, fate, same-hook filtering chains and a decided way)


def _chain_kinds(leaf: Leaf) -> list[tuple[str, str]]:
    """Per step: (hook, the type of the table or base chain it is in): nft base chains say their
    type; iptables' filter and security tables filter, the others are named for themselves."""
    out = []
    kind = ""
    for st in leaf.steps:
        if st.kind == TABLE:
            t = (st.detail or {}).get("type")
            kind = t or ("filter" if st.table in ("filter", "security") else st.table)
        out.append((st.hook, kind))
    return out


def _block_index(leaf: Leaf) -> int | None:
    """The step that ended the packet (its last DROP/REJECT, by a rule or a policy)."""
    for i in range(len(leaf.steps) - 1, -1, -1):
        st = leaf.steps[i]
        if st.kind in (VERDICT, POLICY) and st.verdict in ("DROP", "REJECT"):
            return i
    return None


def _fate(leaf: Leaf) -> str:
    o = leaf.outcome
    return f"rejected with {o.reply}" if o.kind == REJECTED and o.reply else o.kind


def judge_trace(trace: Trace, sc: Scenario, ruleset: Ruleset, judged: dict[int, _Judged],
                rewrites: dict[int, "_Rewrite"] | None = None) -> None:
    """Read one scenario's trace: for each ACCEPT (rule) on each way through it, whether a later
    DROP/REJECT ended the packet; for each rewrite, whether another table set it again."""
    fam = trace.flow.family
    for leaf in decisive_leaves(trace):
        if rewrites is not None and leaf.outcome.origin is not None:
            judge_rewrites(leaf, sc, leaf.outcome.origin, ruleset, fam, rewrites)
        accepts = [(i, st) for i, st in enumerate(leaf.steps)
                   if st.kind == VERDICT and st.verdict == "ACCEPT" and st.rule is not None]
        if not accepts:
            continue
        origin = leaf.outcome.origin
        box = without_martians(origin, origin.iniface == "lo") if origin is not None else None
        if box is None:
            continue  # the kernel's input routing drops these before any rule decides
        blocked = leaf.outcome.kind in (DROPPED, REJECTED)
        at = _block_index(leaf) if blocked else None
        d = find_decider(leaf.steps, leaf.outcome, ruleset, fam) if at is not None else None
        kinds = _chain_kinds(leaf)
        decided = not any(undecidable(c) for c in leaf.conditions)
        for i, st in accepts:
            rule = st.rule
            assert rule is not None
            j = judged.get(id(rule))
            if j is None:
                j = judged[id(rule)] = _Judged(rule, st.hook, kinds[i][1] == "nat")
            if at is None or d is None or at < i:
                j.passed = True
                continue
            same = (kinds[i][0] == kinds[at][0] and kinds[i][1] == "filter" and kinds[at][1] == "filter"
                    and decided)
            j.undone.append((sc, box, d.text, d.rule, _fate(leaf), same))


def nat_state_rules(rs: Ruleset, family: int) -> list[NeverApplies]:
    """Rules of the nat table (and nft nat chains) whose conntrack-state test admits neither NEW
    nor RELATED."""
    out = []
    router = Router(HostModel(), family)
    bits = 32 if family == 4 else 128
    full = ((0, (1 << bits) - 1),)
    u = Packets(family, full, full, ((0, 255),), U16, U16, U16, U8, U16, U8, U8, ctstate=ALL_STATES)
    for rule in _nat_rules(rs, family):
        states = ALL_STATES
        ctx = MatchContext(family, "PREROUTING", rule.table, rule.chain, router, None)
        ctx.rule = rule
        for m in rule.matches:
            if getattr(m, "name", "") not in STATE_MODULES:
                continue
            try:
                d = m.decide(u, ctx)
            except Exception:  # noqa: BLE001 -- a match that cannot say: no finding
                states = ALL_STATES
                break
            if d.undecidable:
                states = ALL_STATES
                break
            states = states & (d.matched.ctstate if d.matched is not None else frozenset())
        if states != ALL_STATES and not states & NAT_STATES:
            out.append(NeverApplies(rule, states))
    return out


def _nat_rules(rs: Ruleset, family: int) -> list[Rule]:
    rules: list[Rule] = []
    for table in rs.tables_of(family):
        if table.name == "nat":
            rules.extend(table.rules())
    for nt in getattr(rs, "nft_tables", ()) or ():
        if family not in nt.ip_families:
            continue
        nat_chains = {c.name for c in nt.chains.values() if getattr(c, "is_base", False) and c.nft_type == "nat"}
        for c in nt.chains.values():
            if c.name in nat_chains:
                rules.extend(c.rules)
    return rules


def subnet_names(h: HostModel, family: int) -> list:
    """The directly connected subnets, named with their interface ("172.17.0.0/16 (docker0)"),
    for the words of a packet set."""
    r = Router(h, family)
    full = ((0, (1 << r.bits) - 1),)
    out = []
    for part, res in r.split(full):
        if res.type == "unicast" and res.prefix not in ("default", "") and res.via is None and res.dev:
            out.append((part, f"{res.prefix} ({res.dev})"))
    return out


def worth_tracing(rs: Ruleset, family: int) -> bool:
    """Whether an ACCEPT here can be undone by another table or base chain: the ruleset has nft
    tables beside (or instead of) iptables' ones, or verdicts outside iptables' filter table (an
    ACCEPT or a translation in raw, mangle, nat or security; a DROP there; nat POSTROUTING's
    translations come last and are not counted).  A filter-only ruleset -- most big
    hand-written firewalls -- decides each packet in one table per hook."""
    if any(family in nt.ip_families for nt in getattr(rs, "nft_tables", ()) or ()):
        return True
    where: dict[str, set[tuple[str, str]]] = {}  # a field rewritten in two chains: one may undo the other
    for table in rs.tables_of(family):
        for r in table.rules():
            w = rewrite_of(r)
            if w is not None:
                where.setdefault(w[0], set()).add((table.name, r.chain))
    if any(len(v) > 1 for v in where.values()):
        return True
    for table in rs.tables_of(family):
        if table.name == "filter":
            continue
        last: dict[str, bool] = {}  # chains run only by nat POSTROUTING: nothing runs after them
        for r in table.rules():
            if table.name == "nat" and r.chain not in last:
                last[r.chain] = set(hooks_of(table, r.chain)) <= {"POSTROUTING"}
            if table.name == "nat" and last[r.chain]:
                continue
            if r.jump is None and r.target_name not in ("", "RETURN", "LOG", "NFLOG", "MARK", "CONNMARK",
                                                          "CT", "NOTRACK", "TOS", "DSCP", "TTL", "HL",
                                                          "CHECKSUM", "TCPMSS", "TRACE", "CLASSIFY"):
                return True
    return False


def accepts_undone(side: Side, host: HostModel | None, family: int) -> UndoneResult:
    """Every rule whose ACCEPT is undone by what runs after it, over the entry scenarios."""
    h = shared_host([side.ruleset], host, family)
    scs = scenarios(h, Flow(family=family))
    names = address_names(h, family) + subnet_names(h, family)
    router = Router(h, family)
    judged: dict[int, _Judged] = {}
    rewrites: dict[int, _Rewrite] = {}
    entries: dict[str, tuple[Any, dict, list[int]]] = {}
    notes: list[str] = []
    incomplete: list[str] = []
    for sc in scs:
        try:
            t = trace_flow(side.ruleset, sc.flow, h, ipsets=side.ipsets, verbose=False,
                           max_branches=MAX_BRANCHES, backend=side.backend)
        except RecursionError:  # a trace too deep to follow: no "every packet" claim rests on it
            incomplete.append(sc.key)
            notes.append(f"{sc.key}: the trace is too deep to follow; it is left out")
            continue
        notes.extend(n for n in t.notes if n not in notes)
        if any("branches: the trace stops" in n for n in t.notes):
            incomplete.append(sc.key)
        entry, ew = entry_box(t)
        prefer = [a for a, _ in router.addresses(sc.flow.iniface)] if sc.flow.iniface else []
        entries[sc.key] = (entry, ew, prefer)
        judge_trace(t, sc, side.ruleset, judged, rewrites)
    out: list[Undone] = []
    for j in judged.values():
        if not j.undone:
            continue
        if not j.passed and not incomplete:
            parts = j.undone
            kind = UNDONE_ACCEPT
        elif j.passed and not j.translation:
            parts = [p for p in j.undone if p[5]]
            kind = PARTLY_UNDONE
        else:
            continue
        if not parts:
            continue
        groups: dict[tuple, UndoneClass] = {}
        for sc, box, by, by_rule, fate, _ in parts:
            k = (sc.key, by, fate)
            c = groups.get(k)
            if c is None:
                entry, ew, prefer = entries[sc.key]
                groups[k] = UndoneClass(sc, [box], by, by_rule, fate, entry, ew, names, prefer)
            else:
                c.boxes.append(box)
        for c in groups.values():
            c.boxes = merge_boxes(c.boxes)
        out.append(Undone(kind, j.rule, j.hook, list(groups.values()), j.translation))
    out.sort(key=lambda u: (u.kind != UNDONE_ACCEPT, u.rule.table, u.rule.chain, u.rule.number))
    rw: list[RewriteUndone] = []
    for r in rewrites.values():
        if r.passed or not r.undone or incomplete:
            continue
        groups: dict[tuple, UndoneClass] = {}
        for sc, box, by in r.undone:
            k = (sc.key, id(by))
            c = groups.get(k)
            if c is None:
                entry, ew, prefer = entries[sc.key]
                groups[k] = UndoneClass(sc, [box], rule_ref(by), by, f"{r.field} set again", entry, ew, names, prefer)
            else:
                c.boxes.append(box)
        for c in groups.values():
            c.boxes = merge_boxes(c.boxes)
        rw.append(RewriteUndone(r.rule, r.field, list(groups.values())))
    return UndoneResult(out, nat_state_rules(side.ruleset, family), h, notes, incomplete, rw)


# ---------------------------------------------------------------------------------------------
# Rewrites a later table sets again.


@dataclass
class _Rewrite:
    rule: Rule
    field: str
    passed: bool = False  # some packet it rewrote kept the value, or something read it
    undone: list[tuple[Scenario, Packets, Rule]] = field(default_factory=list)


def _chain_rules(rs: Ruleset, family: int, table: str, chain: str | None) -> list[Rule] | None:
    if chain is None:
        return None
    t = rs.table(table, family)
    if t is None:
        t = next((nt for nt in getattr(rs, "nft_tables", ()) or () if nt.name == table), None)
    c = t.chains.get(chain) if t is not None else None
    return list(c.rules) if c is not None else None


def _table_rules(rs: Ruleset, family: int, table: str) -> list[Rule] | None:
    t = rs.table(table, family)
    if t is None:
        t = next((nt for nt in getattr(rs, "nft_tables", ()) or () if nt.name == table), None)
    return list(t.rules()) if t is not None else None


def _may_read(rule: Rule, fld: str, box: Packets | None) -> bool:
    """Whether the rule reads the field for some of the packets (its header tests against the
    packets' origin box; any packet when their addresses were translated on the way)."""
    if not reads(rule, fld):
        return False
    h = getattr(rule, "header", None)
    if box is None or h is None:
        return True
    return Decision.conjunction(box, header_deciders(h)).matched is not None


def judge_rewrites(leaf: Leaf, sc: Scenario, box: Packets, rs: Ruleset, family: int,
                   judged: dict[int, _Rewrite]) -> None:
    """Follow each mark / TOS / TTL rewrite on one way through the trace: does a rule of
    another table or chain set every bit of it again before anything reads it (a rule that
    tests or copies it, a LOG, the routing decision, the packet leaving)?"""
    translated = any(st.kind == REWRITE and (st.detail or {}).get("field") in ("src", "dst", "sport", "dport")
                     for st in leaf.steps)
    probe = None if translated else box
    pending: dict[str, tuple[Rule, int]] = {}

    def kill(f: str) -> None:
        r, _ = pending.pop(f)
        judged[id(r)].passed = True

    for st in leaf.steps:
        if not pending and st.kind != RULE:
            continue
        if st.kind == ROUTE:  # routing reads the mark and the TOS; forwarding the TTL
            for f in list(pending):
                kill(f)
        elif st.kind in (TABLE, JUMP, GOTO):
            chain = st.chain if st.kind == TABLE else (st.detail or {}).get("to")
            rules = _chain_rules(rs, family, st.table, chain)
            for f in list(pending):
                if rules is None or any(_may_read(r, f, probe) for r in rules):
                    kill(f)
        elif st.kind == RULE and st.matched and st.rule is not None:
            for f in list(pending):
                if _may_read(st.rule, f, probe) and rewrite_of(st.rule) is None:
                    kill(f)
            w = rewrite_of(st.rule)
            if w is None:
                continue
            f, changed, setbits = w
            if f in pending:
                a, a_changed = pending[f]
                if a is not st.rule and (setbits & a_changed) == a_changed \
                        and (a.table, a.chain) != (st.rule.table, st.rule.chain):
                    judged[id(a)].undone.append((sc, box, st.rule))
                    del pending[f]
                else:
                    kill(f)
            j = judged.setdefault(id(st.rule), _Rewrite(st.rule, f))
            table = _table_rules(rs, family, st.rule.table)
            if not changed or table is None or any(_may_read(r, f, probe) for r in table if r is not st.rule):
                j.passed = True  # its own table reads it (before or after): followed no further
            else:
                pending[f] = (st.rule, changed)
    for f in list(pending):  # the packet left (or ended) with the value: a qdisc, a log may see it
        kill(f)
