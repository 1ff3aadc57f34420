"""lint: findings about a ruleset as a whole, each with the rules involved.

* **shadowed** -- a rule that can never match: every packet it would match is taken, earlier
  in its chain, by rules that end the chain's traversal (ACCEPT, DROP, REJECT, RETURN, a NAT
  verdict, ``-g``).  Computed over packet sets, chain by chain: the packets still walking the
  chain are a union of boxes (:class:`~iptexplain.core.packets.Packets`), each terminal rule
  takes its part away, and a rule whose own match is not empty but meets none of what is left
  is shadowed.  The packets entering a chain are a subset of "any packet", so a rule shadowed
  here is shadowed for whatever jumps to the chain.
* **unreachable chain** -- a user chain with rules that no built-in chain reaches by jumps.
* **undone** -- a rule whose rewrite of the mark, the TOS/DSCP or the TTL a later rule of its
  chain sets again, for every packet it rewrote, before anything reads it (no match on the
  field, no jump, no rule taking some of those packets elsewhere in between).

False positives are avoided by construction, at the price of missing some findings: a rule is
judged, or counts as taking packets away, only when each of its tests is decided by the packet's
own header and conntrack state (addresses, protocol, ports, ICMP type, TCP flags, length,
TTL, TOS, ctstate) -- not by what the analysis cannot know exactly (marks set elsewhere, the
host's addresses, a MAC address, rate limits, ipsets, sockets, owners).  A rule is shadowed only
when it is so in every context its chain runs in (each hook that reaches the chain, and each
in- and out-interface the chain's rules name, plus one they do not name).  Rules that change
nothing (LOG, NFLOG, counters) never take packets away; they are judged like any other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from iptexplain.analysis.diff import Side
from iptexplain.analysis.space import covers, meet
from iptexplain.analysis.rewrites import reads as _reads
from iptexplain.analysis.rewrites import rewrite_of
from iptexplain.analysis.undone import (NEVER_APPLIES, PARTLY_UNDONE, UndoneClass, accepts_undone,
                                        nat_state_rules as nat_never, worth_tracing)
from iptexplain.analysis.why import hooks_of
from iptexplain.core.context import MatchContext
from iptexplain.core.packets import U8, U16, Decision, Packets
from iptexplain.graph import Chain, Rule, Ruleset, Table
from iptexplain.host.model import HostModel
from iptexplain.netfilter.ipheader import header_deciders
from iptexplain.netfilter.routing import Router
from iptexplain.netfilter.outcome import rule_ref

# Modules whose decision rests on the packet's own header and conntrack state only.
EXACT_MODULES = frozenset({
    "tcp", "udp", "sctp", "dccp", "udplite", "icmp", "icmp6", "multiport", "iprange", "comment",
    "length", "ttl", "hl", "tos", "dscp", "state", "conntrack", "ecn", "frag", "ah", "esp", "mh",
    "ipv6header", "rt", "hbh", "dst", "tcpmss",
})
TERMINAL = frozenset({"ACCEPT", "DROP", "REJECT", "RETURN", "DNAT", "SNAT", "MASQUERADE", "REDIRECT",
                      "NETMAP"})
IN_HOOKS = frozenset({"PREROUTING", "INPUT", "FORWARD"})
OUT_HOOKS = frozenset({"FORWARD", "OUTPUT", "POSTROUTING"})
OTHER_IFACE = "\x00other"  # an interface no rule of the chain names
MAX_BOXES = 256  # pieces of a rule's packets followed before it is judged as reaching (no finding)

SHADOWED, REDUNDANT, UNREACHABLE, UNDONE = "shadowed", "redundant", "unreachable chain", "undone"
# Across tables (analysis/undone.py): an ACCEPT (or a translation) that a later table, base
# chain or hook undoes, for every packet or for some; a nat rule for a state nat never sees.
UNDONE_ACCEPT, PARTLY_UNDONE_ACCEPT, NEVER = "undone accept", "partly undone accept", NEVER_APPLIES

@dataclass
class Finding:
    kind: str  # shadowed / redundant / unreachable chain / undone
    message: str
    rule: Rule | None = None
    chain: Chain | None = None
    involved: list[Rule] = field(default_factory=list)
    classes: list[UndoneClass] = field(default_factory=list)  # the packets, for findings across tables


@dataclass
class LintResult:
    findings: list[Finding]
    judged: int  # rules judged for shadowing
    unjudged: int  # rules whose tests the analysis cannot decide exactly
    notes: list[str] = field(default_factory=list)
    traced: list[int] = field(default_factory=list)  # families whose scenarios were traced (across tables)
    incomplete: list[str] = field(default_factory=list)


def exact(rule: Rule) -> bool:
    """Each of the rule's tests is decided by the packet alone (see the module docstring)."""
    return all(getattr(m, "name", "") in EXACT_MODULES and getattr(m, "understood", True) for m in rule.matches)


def terminal(rule: Rule) -> bool:
    return rule.goto or (rule.jump is None and rule.target_name in TERMINAL)


def universe(family: int, hook: str, iniface: str | None, outiface: str | None) -> Packets:
    bits = 32 if family == 4 else 128
    full = ((0, (1 << bits) - 1),)
    return Packets(family, full, full, ((0, 255),), U16, U16, U16, U8, U16, U8, U8,
                   ctstate=frozenset({"NEW", "ESTABLISHED", "RELATED", "INVALID", "UNTRACKED"}),
                   iniface=iniface, outiface=outiface, from_host=hook in ("OUTPUT",))


def decide(rule: Rule, pkts: Packets, ctx: MatchContext) -> Decision:
    tests: list[Callable[[Packets], Decision]] = list(header_deciders(rule.header))
    for m in rule.matches:
        tests.append(lambda p, m=m: m.decide(p, ctx))
    return Decision.conjunction(pkts, tests)


def _ifaces(chain: Chain, attr: str) -> list[str]:
    names: list[str] = []
    for r in chain.rules:
        n = getattr(r.header, attr, None)
        if n is not None:
            # a wildcard "eth+" is met by a name it covers
            names.append(n[:-1] + "0" if n.endswith("+") else n)
    return list(dict.fromkeys(names)) + [OTHER_IFACE]


def _iface_ok(pattern: str | None, invert: bool, name: str | None) -> bool:
    if pattern is None:
        return True
    hit = (name or "").startswith(pattern[:-1]) if pattern.endswith("+") else name == pattern
    return hit != invert


def _contexts(chain: Chain, hooks: list[str]) -> list[tuple[str, str | None, str | None]]:
    """The (hook, in, out) contexts to walk the chain in: one per distinct set of rules whose
    interface tests pass (interfaces that no rule tells apart walk alike)."""
    out = []
    ins, outs = _ifaces(chain, "iniface"), _ifaces(chain, "outiface")
    for hook in hooks:
        seen: set[tuple] = set()
        for i in (ins if hook in IN_HOOKS else [None]):
            for o in (outs if hook in OUT_HOOKS else [None]):
                sig = tuple(_iface_ok(r.header.iniface, r.header.iniface_inv, i)
                            and _iface_ok(r.header.outiface, r.header.outiface_inv, o) for r in chain.rules)
                if sig in seen:
                    continue
                seen.add(sig)
                out.append((hook, i, o))
    return out


def _chain_shadows(rs: Ruleset, table: Table, chain: Chain, hooks: list[str], family: int
                   ) -> tuple[dict[int, list[Rule]], dict[int, bool], set[int]]:
    """Per rule index: the earlier terminal rules that take all of its packets (for the rules
    shadowed in every context where they can match), which rules can match alone, and the
    indexes left unjudged.

    For a rule R with its own match M (a box), in one context: the earlier terminal rules whose
    own match meets M take their parts of M away, in order; if nothing is left, R is shadowed
    there.  Only rules meeting M are looked at, so a long chain costs little."""
    router = Router(HostModel(), family)
    alone_any: dict[int, bool] = {}
    reaches: set[int] = set()
    takers: dict[int, list[Rule]] = {}
    unjudged: set[int] = set()
    rules = chain.rules
    for hook, i, o in _contexts(chain, hooks):
        ctx = MatchContext(family, hook, table.name, chain.name, router, None)
        u = universe(family, hook, i, o)
        terminals: list[tuple[Rule, Packets]] = []
        for k, r in enumerate(rules):
            if not exact(r):
                unjudged.add(k)
                continue
            ctx.rule = r
            own = decide(r, u, ctx)
            if own.undecidable:
                unjudged.add(k)
                continue
            if own.matched is None:
                continue
            alone_any[k] = True
            m = own.matched
            relevant = [(t, tb) for t, tb in terminals if meet(tb, m) is not None]
            whole = next((t for t, tb in relevant if covers(tb, m)), None)
            if whole is not None:  # one earlier rule takes all of it
                left: list[Packets] = []
                relevant = [(whole, m)]
            else:
                left = [m]
                for t, _ in relevant:
                    ctx.rule = t
                    nxt: list[Packets] = []
                    for b in left:
                        d = decide(t, b, ctx)
                        nxt.extend(p for p, _ in d.refused()) if d.matched is not None else nxt.append(b)
                    left = nxt
                    if not left or len(left) > MAX_BOXES:
                        break  # too many pieces to follow: judged as reaching (no finding)
            if left:
                reaches.add(k)
            else:
                for t, _ in relevant:
                    if t not in takers.setdefault(k, []):
                        takers[k].append(t)
            if terminal(r):
                terminals.append((r, m))
    shadowed = {k: takers.get(k, []) for k in alone_any if k not in reaches and k not in unjudged}
    return shadowed, alone_any, unjudged


def _chain_undone(table: Table, chain: Chain, hooks: list[str], family: int) -> list[tuple[Rule, Rule]]:
    """(A, B): B, later in the chain, sets every bit A changed, for every packet A changed,
    and nothing between them reads the field or takes any of those packets elsewhere (a
    terminal rule, a jump that might read it)."""
    rules = chain.rules
    cands = [(k, rewrite_of(r)) for k, r in enumerate(rules)]
    cands = [(k, w) for k, w in cands if w is not None and w[1] and exact(rules[k])]
    if len(cands) < 2:
        return []
    router = Router(HostModel(), family)
    ctxs = _contexts(chain, hooks)
    out = []
    for k, (fld, changed, _) in cands:
        a = rules[k]
        undone_by: Rule | None = None
        ok = True
        matched_somewhere = False
        for hook, i, o in ctxs:
            ctx = MatchContext(family, hook, table.name, chain.name, router, None)
            u = universe(family, hook, i, o)
            own = decide(a, u, ctx)
            if own.undecidable:
                ok = False
                break
            if own.matched is None:
                continue
            matched_somewhere = True
            box = own.matched
            found = None
            for j in range(k + 1, len(rules)):
                b = rules[j]
                if not exact(b):
                    if meet_any(b, box, ctx):
                        break
                    continue
                d = decide(b, box, ctx)
                if d.undecidable:
                    break
                if d.matched is None:
                    continue
                w = rewrite_of(b)
                if w is not None and w[0] == fld and (w[2] & changed) == changed and not d.refused():
                    found = b
                    break
                if _reads(b, fld) or terminal(b) or b.jump is not None:
                    break
            if found is None or (undone_by is not None and found is not undone_by):
                ok = False
                break
            undone_by = found
        if ok and matched_somewhere and undone_by is not None:
            out.append((a, undone_by))
    return out


def meet_any(rule: Rule, box: Packets, ctx: MatchContext) -> bool:
    """Might the rule match some of the box (header tests only: its other tests are not known)?"""
    tests = header_deciders(rule.header)
    return Decision.conjunction(box, tests).matched is not None


def unreachable_chains(table: Table) -> list[Chain]:
    seen: set[str] = set()
    todo = [c.name for c in table.chains.values() if c.builtin]
    seen.update(todo)
    while todo:
        c = table.chains.get(todo.pop())
        for r in c.rules if c is not None else []:
            j = r.jump
            if j is not None and j not in seen:
                seen.add(j)
                todo.append(j)
    return [c for c in table.chains.values() if c.name not in seen]


def lint(rs: Ruleset, family: int | None = None, host: HostModel | None = None, ipsets: Any = None,
         backend: str | None = None, across: bool = True) -> LintResult:
    """Every finding about ``rs``.  ``host`` (the host model) and ``ipsets`` serve the findings
    across tables, which trace the ruleset's entry scenarios (``across``: whether to)."""
    rs.parse_all()
    findings: list[Finding] = []
    judged = unjudged_n = 0
    notes: list[str] = []
    traced: list[int] = []
    incomplete: list[str] = []
    fams = [family] if family else rs.families()
    for fam in fams:
        for n in _across(rs, fam, host, ipsets, backend, across, findings, traced):
            (incomplete if n.startswith("incomplete:") else notes).append(n.removeprefix("incomplete:"))
        for table in rs.tables_of(fam):
            dead = unreachable_chains(table)
            # An empty chain nothing reaches does nothing (kube-proxy's canary and hint chains
            # are made to be unreferenced): only one with rules is a finding.
            for c in (c for c in dead if c.rules):
                findings.append(Finding(UNREACHABLE, f"{table.name} {c.name} ({len(c.rules)} rules): no built-in "
                                        "chain reaches it by -j or -g", chain=c,
                                        involved=list(c.references)))
            dead_names = {c.name for c in dead}
            for chain in table.chains.values():
                if chain.name in dead_names or not chain.rules:
                    continue
                hooks = list(hooks_of(table, chain.name)) if not chain.builtin else [chain.name]
                shadowed, alone, unj = _chain_shadows(rs, table, chain, hooks, fam)
                for a, b in _chain_undone(table, chain, hooks, fam):
                    findings.append(Finding(UNDONE, f"{rule_ref(a)} changes the {rewrite_of(a)[0]} for nothing: "
                                            f"{rule_ref(b)} sets it again, for every packet, before anything reads it",
                                            a, chain, [b]))
                judged += len(alone) - len(unj & set(alone))
                unjudged_n += len(unj)
                for k, by in sorted(shadowed.items()):
                    r = chain.rules[k]
                    same = by and all(b.target_name == r.target_name and b.jump == r.jump for b in by) \
                        and terminal(r)
                    kind = REDUNDANT if same else SHADOWED
                    what = ("does the same as" if kind == REDUNDANT else "can never match: its packets are "
                            "taken first by")
                    who = ", ".join(rule_ref(b) for b in by[:4]) + (" …" if len(by) > 4 else "")
                    findings.append(Finding(kind, f"{rule_ref(r)} {what} {who or 'earlier rules'}", r, chain,
                                            list(by)))
    return LintResult(findings, judged, unjudged_n, notes, traced, incomplete)


def _across(rs: Ruleset, fam: int, host: HostModel | None, ipsets: Any, backend: str | None, across: bool,
            findings: list[Finding], traced: list[int]) -> list[str]:
    """The findings across tables (analysis/undone.py) of one family; their notes."""
    out: list[str] = []
    if across and worth_tracing(rs, fam):
        res = accepts_undone(Side(rs, ipsets, backend), host, fam)
        traced.append(fam)
        out += ["incomplete:" + k for k in res.incomplete]
        for u in res.undone:
            kind = PARTLY_UNDONE_ACCEPT if u.kind == PARTLY_UNDONE else UNDONE_ACCEPT
            findings.append(Finding(kind, u.message(), u.rule, None, u.by_rules, u.classes))
        for w in res.rewrites:
            findings.append(Finding(UNDONE, w.message(), w.rule, None, w.by_rules, w.classes))
    else:
        res = None
    for n in (res.never if res is not None else nat_never(rs, fam)):
        findings.append(Finding(NEVER, n.message(), n.rule))
    return out
