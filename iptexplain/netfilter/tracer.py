"""The tracer: a described flow's real path through netfilter, forking where the ruleset cannot
decide.

The walk follows the kernel, not the man page:

* hooks and tables in priority order (:mod:`.hooks`): nat INPUT runs after filter INPUT, raw
  PREROUTING runs before conntrack and DNAT;
* the input routing decision between PREROUTING and INPUT/FORWARD is taken on the destination
  *after* DNAT (:mod:`.routing`), a locally generated packet is routed before OUTPUT and
  re-routed when OUTPUT changed its destination or mark, and a packet for the host's own
  address leaves by ``lo`` and comes back through PREROUTING and INPUT;
* conntrack: the nat table is consulted once per manipulation type and connection (the first
  packet); later packets, and packets looped back, keep the connection's NAT without it;
* chains: jump pushes, goto replaces, RETURN and falling off a user chain pop, a built-in chain
  ends in its policy; ACCEPT ends one table's traversal, not the journey.

The tracer pushes a *set* of packets (:class:`.packets.Packets`).  A match that splits the set
forks the trace; each branch carries the :class:`~.trace.Condition` that leads into it.  Matches
and targets answer through their own modules' ``decide()`` / ``apply()``; the tracer knows
only the pipeline.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any

from iptexplain.addr import int_to_ip, parse_address
from iptexplain.ext.base import ChainJump, OpaqueMatch, OpaqueTarget, extension_name
from iptexplain.graph import Chain, Rule, Ruleset, Table
from iptexplain.host import HostModel
from iptexplain.netfilter import hooks as H
from iptexplain.netfilter import trace as T
from iptexplain.netfilter.context import (ACCEPT, CONTINUE, DROP, QUEUE, REJECT, RETURN, Connection,
                                          Effect, MatchContext)
from iptexplain.netfilter.ipheader import header_deciders
from iptexplain.netfilter.packets import (U8, U16, Decision, IntSet, Packets, fmt_set, masked_set,
                                          normalize, point, single, span, subtract, union)
from iptexplain.netfilter.nat import PORT_PROTOS
from iptexplain.netfilter.routing import BITS, RouteResult, Router
from iptexplain.netfilter.trace import Condition, Flow, Fork, Outcome, Path, Step, Trace

# What Ruleset.unseen(rule) says a rule may test unseen, in words for the trace.
UNSEEN_WHY = {
    "interfaces": "interfaces hidden by the -nL listing",
    "address": "an address printed as a name that could not be read back",
    "match": "match text the listing could not read back",
}

# Ruleset.hidden kinds that make a rule's match uncertain, and why.
HIDDEN_PARTS = {
    "interfaces": "the listing hides -i/-o (iptables -L without -v)",
    "names": "addresses and ports were read back from names (iptables -L without -n)",
    "matches": "some match text could not be read back",
    "options": "the listing does not print some module options",
}

MAX_DEPTH = 64  # chain nesting the tracer follows before giving up (loops are caught earlier)
MAX_BRANCHES = 256  # leaves of the trace tree before forks stop being followed
INDEX_MIN_RULES = 32  # chains shorter than this are scanned rule by rule

NAT_MANIP = {"PREROUTING": "DST", "OUTPUT": "DST", "INPUT": "SRC", "POSTROUTING": "SRC"}
NAT_KIND = {"DST": "DNAT", "SRC": "SNAT"}
NO_EFFECT_VERDICTS = (CONTINUE,)

# Extensions whose kernel module turns connection tracking on in the network namespace
# (their checkentry calls nf_ct_netns_get).  Without any of them packets carry no conntrack
# entry, and the nat chains -- which run only for tracked packets -- are never traversed.
CONNTRACK_USERS = frozenset({
    "conntrack", "state", "connmark", "CONNMARK", "CT", "NOTRACK", "DNAT", "SNAT", "MASQUERADE",
    "REDIRECT", "NETMAP", "connlimit", "connbytes", "connlabel", "helper", "CONNSECMARK", "cluster",
    "SYNPROXY", "TPROXY", "socket", "ipvs",
})


# ---------------------------------------------------------------------------------------------
# The state of one branch of the walk.


@dataclass(slots=True)
class Frame:
    chain: Chain
    index: int  # next rule to look at


@dataclass(slots=True)
class State:
    pkts: Packets
    conn: Connection
    phase: str  # PREROUTING, ROUTE, INPUT, FORWARD, OUTPUT, REROUTE, POSTROUTING, LOCAL_ROUTE
    entry: int = 0  # index into the hook's entries
    frames: list[Frame] = field(default_factory=list)
    base: Chain | None = None  # the table's base chain (its policy ends the traversal)
    table: Table | None = None
    local_out: bool = False  # locally generated
    looped: bool = False  # came back in through lo
    route: RouteResult | None = None
    out_dst: IntSet = ()  # destination and mark OUTPUT started with (for the re-route)
    out_mark: int = 0
    notrack: bool = False
    nat_init: frozenset = frozenset()  # manip types ("DST", "SRC") already set up
    flow_state: frozenset = frozenset({"NEW"})
    # deciding rules on this path whose unseen parts (a -L listing) may change them
    uncertain: tuple[Rule, ...] = ()
    resume: tuple[Rule, Decision] | None = None  # a fork's matched branch: apply this rule next

    def clone(self, pkts: Packets | None = None) -> "State":
        return State(
            pkts if pkts is not None else self.pkts, self.conn.copy(), self.phase, self.entry,
            [Frame(f.chain, f.index) for f in self.frames], self.base, self.table, self.local_out,
            self.looped, self.route, self.out_dst, self.out_mark, self.notrack, self.nat_init,
            self.flow_state, self.uncertain, self.resume,
        )


class _Stop(Exception):
    """Internal: the branch ended (outcome or fork recorded on its path)."""


# ---------------------------------------------------------------------------------------------
# The rule index: a concrete destination skips the rules written for other destinations.


class ChainIndex:
    """Per chain: the rules keyed by the exact destination address (kube-proxy's KUBE-SERVICES
    has one ``-d IP/32`` rule per service port) or, for rules without one, the exact
    destination port they require (KUBE-NODEPORTS); a rule requiring another address or port
    cannot match and is skipped without being looked at."""

    __slots__ = ("by_dst", "by_dport", "free", "cache")

    PORT_MATCHES = ("tcp", "udp", "sctp", "udplite", "dccp")

    def __init__(self, chain: Chain, bits: int) -> None:
        self.by_dst: dict[int, list[int]] = {}
        self.by_dport: dict[int, list[int]] = {}
        self.free: list[int] = []
        full = (1 << bits) - 1
        for i, r in enumerate(chain.rules):
            # An unread rule (iptexplain.parse.lazy) says from its words what it requires.
            raw = r.raw_keys(bits) if hasattr(r, "raw_keys") else None
            if raw is not None:
                if raw[0] is not None:
                    self.by_dst.setdefault(raw[0], []).append(i)
                elif raw[1] is not None:
                    self.by_dport.setdefault(raw[1], []).append(i)
                else:
                    self.free.append(i)
                continue
            d = r.header.dst
            if d is not None and not r.header.dst_inv and d.mask == full:
                self.by_dst.setdefault(d.value, []).append(i)
                continue
            port = None
            for m in r.matches:
                if m.name in self.PORT_MATCHES:
                    v = m.get("dport")
                    if v is not None and not v.invert and v.value[0] == v.value[1]:
                        port = v.value[0]
            if port is not None:
                self.by_dport.setdefault(port, []).append(i)
            else:
                self.free.append(i)
        self.cache: dict[tuple[int | None, int | None], list[int]] = {}

    def candidates(self, dst: int | None, dport: int | None) -> list[int]:
        """The rules that may match packets with this destination and port (None: any)."""
        key = (dst, dport)
        c = self.cache.get(key)
        if c is None:
            if dst is not None:
                part = list(self.by_dst.get(dst, ()))
            else:
                part = [i for v in self.by_dst.values() for i in v]
            if dport is not None:
                part += self.by_dport.get(dport, ())
            else:
                part += [i for v in self.by_dport.values() for i in v]
            c = sorted(part + self.free)
            self.cache[key] = c
        return c


# ---------------------------------------------------------------------------------------------
# What is derived once per parsed ruleset (a ruleset does not change after parsing): asking a
# second question of a 140,000-line kube-proxy dump must not scan it again.


class RulesetFacts:
    __slots__ = ("conntrack", "indexes", "headers")

    def __init__(self) -> None:
        self.conntrack: dict[int, bool] = {}
        self.indexes: dict[int, ChainIndex | None] = {}
        self.headers: dict[int, list] = {}


_FACTS: dict[int, tuple[Ruleset, RulesetFacts]] = {}


def facts_of(rs: Ruleset) -> RulesetFacts:
    hit = _FACTS.get(id(rs))
    if hit is not None and hit[0] is rs:
        return hit[1]
    if len(_FACTS) >= 4:
        _FACTS.pop(next(iter(_FACTS)))
    f = RulesetFacts()
    _FACTS[id(rs)] = (rs, f)
    return f


def conntrack_in_use(rs: Ruleset, family: int) -> bool:
    """Does a rule of this family turn connection tracking on (see CONNTRACK_USERS)?"""
    facts = facts_of(rs)
    on = facts.conntrack.get(family)
    if on is None:
        users = CONNTRACK_USERS
        on = False
        # filter first: its built-in chains (-m conntrack --ctstate …) answer soonest; a chain
        # still kept as text (iptexplain.parse.deferred) is read only when its text names a user.
        for t in sorted(rs.tables_of(family), key=lambda t: t.name != "filter"):
            for c in t.chains.values():
                if not c.may_use(users):
                    continue
                for r in c.rules:
                    tg = r.target
                    if (tg is not None and tg.name in users) or any(m.name in users for m in r.matches):
                        on = True
                        break
                if on:
                    break
            if on:
                break
        facts.conntrack[family] = on
    return on


# ---------------------------------------------------------------------------------------------
# The tracer.


class Tracer:
    def __init__(self, ruleset: Ruleset, host: HostModel, family: int, *, ipsets: Any = None,
                 verbose: bool = True, max_branches: int = MAX_BRANCHES, backend: str = "nft") -> None:
        self.rs = ruleset
        self.backend = backend
        self.host = host
        self.family = family
        self.router = Router(host, family)
        self.ipsets = ipsets
        self.verbose = verbose
        self.max_branches = max_branches
        self.leaves = 0
        self.capped = False
        self.notes: list[str] = []
        self.tables = {t.name: t for t in ruleset.tables_of(family)}
        self.conntrack_on = conntrack_in_use(ruleset, family)
        facts = facts_of(ruleset)
        self.indexes = facts.indexes
        self.headers = facts.headers
        self.stat_forks: set[int] = set()  # id() of forks made by statistic-like probabilities
        self.finals: list[tuple[State, Outcome]] = []
        self.reply_depth = 0  # >0 while tracing REJECT's answer (whose own REJECT is not followed)
        # What the input format could not show (Ruleset.hidden): a rule that matched as listed may
        # not match as it really is (an -L listing without -v hides -i/-o; without -n, names).
        hidden = getattr(ruleset, "hidden", set()) or set()
        self.hidden_why = "; ".join(w for k, w in HIDDEN_PARTS.items() if k in hidden)
        self.work: list[tuple[State, Path]] = []

    # -- driver ---------------------------------------------------------------------------------

    def run(self, state: State) -> Path:
        root = Path()
        self.leaves = 1
        self.work = [(state, root)]
        try:
            self._bridged_without_iptables(state, root)
        except _Stop:
            return root
        while self.work:
            st, path = self.work.pop()
            try:
                self._walk(st, path)
            except _Stop:
                pass
        _flatten_cascades(root, self.stat_forks)
        return root

    def _finish(self, st: State, path: Path, kind: str, summary: str, rule: Rule | None = None,
                **kw: Any) -> None:
        if st.uncertain:
            why = sorted({w for r in st.uncertain for w in self._unseen(r)})
            kw["uncertain"] = "; ".join(UNSEEN_WHY.get(w, w) for w in why)
            kw["uncertain_rules"] = list(st.uncertain)
        out = Outcome(kind, rule, summary, packet=st.pkts.summary(), **kw)
        path.outcome = out
        self.finals.append((st, out))
        raise _Stop

    def _unseen(self, rule: Rule) -> frozenset[str]:
        unseen = getattr(self.rs, "unseen", None)
        return unseen(rule) if unseen is not None and self.hidden_why else frozenset()

    def _mark_uncertain(self, st: State, step: Step, rule: Rule) -> None:
        """A deciding rule the input did not show in full (an -nL listing hides -i/-o): the path
        goes on as listed, the step and every outcome after it say the kernel may differ."""
        unseen = self._unseen(rule)
        if unseen:
            step.detail["uncertain"] = ("; ".join(UNSEEN_WHY.get(w, w) for w in sorted(unseen))
                                        + ": the kernel may not match this rule")
            st.uncertain = st.uncertain + (rule,)

    def _fork(self, st: State, path: Path, reason: str,
              branches: list[tuple[Condition, State, list[Step]]], stat: bool = False) -> None:
        """Split the walk: each branch continues from ``st``'s point with its own state."""
        if self.leaves + len(branches) - 1 > self.max_branches:
            if not self.capped:
                self.notes.append(f"more than {self.max_branches} branches: the trace stops following forks "
                                  "(narrow the flow with --src/--dst/--sport to see the rest)")
            self.capped = True
            path.steps.append(Step(T.NOTE, st.phase, st.table.name if st.table else "", reason=f"not followed: {reason}"))
            self._finish(st, path, T.UNDECIDED, f"branch limit reached at: {reason}")
        self.leaves += len(branches) - 1
        fork = Fork(reason)
        for cond, sub, steps in branches:
            p = Path(list(steps))
            fork.branches.append((cond, p))
        path.fork = fork
        if stat:
            self.stat_forks.add(id(fork))
        # Depth-first, first branch first.
        for (_, sub, _), (_, p) in reversed(list(zip(branches, fork.branches))):
            self.work.append((sub, p))
        raise _Stop

    # -- the journey --------------------------------------------------------------------------------

    def _bridged_without_iptables(self, st: State, path: Path) -> None:
        """Between two ports of one bridge the packet is switched, not routed: iptables sees
        it only through br_netfilter (``bridge-nf-call-iptables=1``, what Docker and
        Kubernetes set).  With the sysctl at 0 no hook of ours runs at all."""
        p = st.pkts
        key = "net.bridge.bridge-nf-call-iptables" if self.family == 4 else "net.bridge.bridge-nf-call-ip6tables"
        if st.local_out or st.looped or self.host.sysctls.get(key) != "0" or p.iniface is None:
            return
        iface = self.host.interfaces.get(p.iniface)
        if iface is None or iface.kind != "bridge":
            return
        parts = self.router.split(p.dst)
        if len(parts) == 1 and parts[0][1].type == "unicast" and parts[0][1].dev == p.iniface:
            path.steps.append(Step(T.NOTE, "bridge", reason=f"switched by the bridge {p.iniface} with {key}=0: "
                                   "iptables does not see it"))
            self._finish(st, path, T.FORWARDED, f"bridged to {_endpoint(p, 'dst', 'dport')} on {p.iniface} "
                         "(no iptables hook)", iface=p.iniface)

    def _walk(self, st: State, path: Path) -> None:
        while True:
            ph = st.phase
            if ph in H.HOOKS:
                self._hook(st, path)
                st.phase = self._after_hook(st, path)
                st.entry = 0
            elif ph == "ROUTE":
                self._route_input(st, path)
            elif ph == "LOCAL_ROUTE":
                self._route_local(st, path, first=True)
            elif ph == "REROUTE":
                self._route_local(st, path, first=False)
            elif ph == "QUEUE_DROP":
                self._finish(st, path, T.DROPPED, "dropped by the queue program in user space")
            else:  # pragma: no cover
                raise AssertionError(ph)

    def _after_hook(self, st: State, path: Path) -> str:
        ph = st.phase
        p = st.pkts
        if ph == "PREROUTING":
            return "ROUTE"
        if ph == "INPUT":
            self._finish(st, path, T.DELIVERED,
                         f"delivered to a local socket on {_endpoint(p, 'dst', 'dport')}"
                         + (" (looped back through lo)" if st.looped else ""),
                         iface=p.iniface)
        if ph == "FORWARD":
            return "POSTROUTING"
        if ph == "OUTPUT":
            return "REROUTE"
        if ph == "POSTROUTING":
            if st.local_out and st.route is not None and st.route.local:
                # The packet for our own address comes back in through lo.
                path.steps.append(Step(T.NOTE, "POSTROUTING", reason="sent through lo: the packet comes back in "
                                       "through PREROUTING and INPUT (the connection's NAT is already set up)"))
                st.pkts = p.copy(iniface="lo", outiface=None)
                st.looped = True
                st.local_out = False
                return "PREROUTING"
            where = f" via {p.outiface}" if p.outiface else ""
            if st.local_out:
                self._finish(st, path, T.SENT, f"sent to {_endpoint(p, 'dst', 'dport')}{where}"
                             f" from {_endpoint(p, 'src', 'sport')}", iface=p.outiface)
            self._finish(st, path, T.FORWARDED, f"forwarded to {_endpoint(p, 'dst', 'dport')}{where}",
                         iface=p.outiface)
        raise AssertionError(ph)  # pragma: no cover

    def _hook(self, st: State, path: Path) -> None:
        hook = st.phase
        if st.entry == 0 and not st.frames:
            path.steps.append(Step(T.HOOK, hook, reason=_hook_reason(st)))
        entries = H.entries(self.family, hook, self.backend)
        while st.entry < len(entries):
            e = entries[st.entry]
            if st.frames:  # resuming inside a table after a fork
                self._traverse(st, path)
                self._table_done(st, hook, e)
                st.entry += 1
                continue
            if e.kind == H.CONNTRACK:
                self._conntrack(st, path, hook)
            elif e.kind == H.TABLE:
                table = self.tables.get(e.table)
                if table is not None and hook in table.chains:
                    if e.table == "nat" and not self._nat_applies(st, path, hook):
                        st.entry += 1
                        continue
                    base = table.chains[hook]
                    st.table = table
                    st.base = base
                    st.frames = [Frame(base, 0)]
                    path.steps.append(Step(T.TABLE, hook, table.name, hook))
                    self._traverse(st, path)
                    self._table_done(st, hook, e)
            st.entry += 1

    @staticmethod
    def _table_done(st: State, hook: str, e: H.HookEntry) -> None:
        if e.is_nat:  # the connection's NAT of this manip type is set up (or null) now
            st.nat_init = st.nat_init | {NAT_MANIP[hook]}

    # -- conntrack and nat ----------------------------------------------------------------------------

    def _conntrack(self, st: State, path: Path, hook: str) -> None:
        p = st.pkts
        if st.looped:
            path.steps.append(Step(T.CONNTRACK, hook, reason="the looped-back packet keeps its connection"))
            return
        if not self.conntrack_on:
            st.conn.tracked = False
            st.pkts = p.copy(ctstate=frozenset({"UNTRACKED"}))
            path.steps.append(Step(T.CONNTRACK, hook, reason="connection tracking is off: no rule of this "
                                   "ruleset needs it, so the packet has no connection and the nat "
                                   "chains are not traversed"))
            return
        if st.notrack:
            st.pkts = p.copy(ctstate=frozenset({"UNTRACKED"}))
            st.conn.tracked = False
            path.steps.append(Step(T.CONNTRACK, hook, reason="untracked (NOTRACK in raw): no connection, no NAT",
                                   detail={"state": "UNTRACKED"}))
            return
        st.pkts = p = p.copy(ctstate=st.flow_state)
        c = st.conn
        if c.direction == "REPLY":
            path.steps.append(Step(T.CONNTRACK, hook, reason="a reply of the connection (ESTABLISHED): the nat "
                                   "table is not consulted; conntrack undoes the connection's NAT",
                                   detail={"state": "ESTABLISHED", "direction": "REPLY"}))
            return
        c.orig_src, c.orig_dst, c.orig_sport, c.orig_dport, c.proto = p.src, p.dst, p.sport, p.dport, p.proto
        states = ",".join(sorted(st.flow_state))
        if "NEW" in st.flow_state:
            why = "new connection: the nat table decides its NAT"
        else:
            why = f"{states} connection: the nat table is not consulted"
            if c.nat:
                why += "; the connection's " + " and ".join(sorted(c.nat)) + " applies"
        path.steps.append(Step(T.CONNTRACK, hook, reason=why, detail={"state": states}))

    def _nat_applies(self, st: State, path: Path, hook: str) -> bool:
        """Is the nat table consulted here?  Otherwise apply the connection's binding."""
        manip = NAT_MANIP[hook]
        why = None
        if not self.conntrack_on:
            why = "connection tracking is off"
        elif "UNTRACKED" in st.pkts.ctstate or not st.conn.tracked:
            why = "untracked packet"
        elif manip in st.nat_init:
            why = "the connection's NAT was set up already" + (" (on the way out)" if st.looped else "")
        elif "NEW" not in st.pkts.ctstate:
            why = f"{','.join(sorted(st.pkts.ctstate))} packet: only a connection's first packet"
        if why is None:
            return True
        kind = NAT_KIND[manip]
        binding = st.conn.nat.get(kind) if st.conn.direction != "REPLY" else st.conn.reply_binding(kind)
        path.steps.append(Step(T.CONNTRACK, hook, "nat", reason=f"nat {hook} not consulted: {why}"))
        if binding and not st.looped and manip not in st.nat_init:
            before = st.pkts
            st.pkts = before.copy(**binding)
            what = f"the connection's {kind}" if st.conn.direction != "REPLY" else \
                f"the connection's {'SNAT' if kind == 'DNAT' else 'DNAT'} undone for the reply"
            changed = [f for f in binding if _field_text(before, f) != _field_text(st.pkts, f)]
            for f, b, a, detail in _rewrites(before, st.pkts, changed):
                path.steps.append(Step(T.REWRITE, hook, "nat", reason=f"{what}: {f} {b} → {a}",
                                       detail={**detail, "by": "conntrack"}))
        return False

    # -- routing ------------------------------------------------------------------------------------

    def _route_input(self, st: State, path: Path) -> None:
        """ip_route_input: martians, local delivery or forward, on the destination after DNAT."""
        p = st.pkts
        r = self.router
        if not st.looped:
            s, d = single(p.src), single(p.dst)
            why = r.martian(s, d, p.iniface)
            if why:
                path.steps.append(Step(T.ROUTE, "routing", reason=why))
                self._finish(st, path, T.DROPPED, f"dropped by the routing decision: {why}")
        parts = r.split(p.dst)
        if len(parts) > 1:
            branches = []
            for part, res in parts:
                sub = st.clone(p.copy(dst=part))
                branches.append((Condition(f"destination {sub.pkts.addr_text('dst')}: {res.describe(self.family)}"),
                                 sub, []))
            self._fork(st, path, "the destination decides the route", branches)
        res = parts[0][1]
        st.route = res
        if res.local:
            path.steps.append(Step(T.ROUTE, "routing", reason=f"{p.addr_text('dst')} is local: {res.describe(self.family)}",
                                   detail={"type": res.type}))
            st.phase = "INPUT"
            return
        if res.type != "unicast":
            path.steps.append(Step(T.ROUTE, "routing", reason=f"{res.describe(self.family)} for {p.addr_text('dst')}"))
            self._finish(st, path, T.DROPPED, f"no route to {p.addr_text('dst')} ({res.type})")
        fwd = r.forwarding()
        if fwd is False:
            path.steps.append(Step(T.ROUTE, "routing", reason="forwarding is disabled on this host"))
            self._finish(st, path, T.DROPPED, "not forwarded: ip_forward is 0")
        same_dev = res.dev == p.iniface
        in_if = self.host.interfaces.get(p.iniface) if p.iniface else None
        bridged = same_dev and in_if is not None and in_if.kind == "bridge"
        reason = (f"{p.addr_text('dst')} via {res.describe(self.family)}"
                  + (": bridged between two ports of the same bridge, seen by iptables as FORWARD "
                     f"-i {p.iniface} -o {res.dev} (bridge-nf-call-iptables)" if bridged
                     else f": forwarded back out of {res.dev}, the interface it came in on" if same_dev
                     else ": forwarded"))
        path.steps.append(Step(T.ROUTE, "routing", reason=reason,
                               detail={"type": res.type, "dev": res.dev, "inferred": res.inferred}))
        st.pkts = p.copy(outiface=res.dev)
        st.phase = "FORWARD"

    def _route_local(self, st: State, path: Path, first: bool) -> None:
        """The route of a locally generated packet, and the re-route after OUTPUT."""
        p = st.pkts
        if not first and p.dst == st.out_dst and p.mark == st.out_mark:
            st.phase = "POSTROUTING"
            return
        parts = self.router.split(p.dst)
        if len(parts) > 1:
            branches = []
            for part, res in parts:
                sub = st.clone(p.copy(dst=part))
                branches.append((Condition(f"destination {sub.pkts.addr_text('dst')}: {res.describe(self.family)}"),
                                 sub, []))
            self._fork(st, path, "the destination decides the route", branches)
        res = parts[0][1]
        st.route = res
        if not res.local and res.type != "unicast":
            path.steps.append(Step(T.ROUTE, "routing", reason=f"{res.describe(self.family)} for {p.addr_text('dst')}"))
            self._finish(st, path, T.DROPPED, f"no route to {p.addr_text('dst')} ({res.type})")
        dev = "lo" if res.local else res.dev
        changes: dict[str, Any] = {"outiface": dev}
        if first and single(p.src) is None and p.extra.get("src_open"):
            d = single(p.dst)
            src = self.router.source_for(res, d)
            if src is not None:
                changes["src"] = point(src)
        st.pkts = p = p.copy(**changes)
        what = "routing" if first else "re-routing after OUTPUT changed the " + (
            "destination" if p.dst != st.out_dst else "mark")
        desc = "local address: sent through lo" if res.local else res.describe(self.family)
        path.steps.append(Step(T.ROUTE, what, reason=f"{p.addr_text('dst')}: {desc}"
                               + (f", source {p.addr_text('src')}" if first else ""),
                               detail={"type": res.type, "dev": dev, "inferred": res.inferred}))
        if first:
            st.out_dst, st.out_mark = p.dst, p.mark
            st.phase = "OUTPUT"
        else:
            st.phase = "POSTROUTING"

    # -- chains -----------------------------------------------------------------------------------

    def _index(self, chain: Chain) -> ChainIndex | None:
        key = id(chain)
        if key not in self.indexes:
            self.indexes[key] = ChainIndex(chain, BITS[self.family]) if chain.size >= INDEX_MIN_RULES else None
        return self.indexes[key]

    def _traverse(self, st: State, path: Path) -> None:
        """Walk the current table's chains until a verdict ends the table's traversal."""
        hook = st.phase
        table = st.table.name
        ctx = MatchContext(self.family, hook, table, "", self.router, self.ipsets, st.conn)
        if st.resume is not None:
            rule, dec = st.resume
            st.resume = None
            ctx.chain, ctx.rule = rule.chain, rule
            self._matched(st, path, rule, dec, ctx, len(st.frames) - 1)
        while st.frames:
            fr = st.frames[-1]
            chain = fr.chain
            rules = chain.rules
            depth = len(st.frames) - 1
            # Skip the rules written for other destinations (kube-proxy's big dispatch chains).
            idx = self._index(chain)
            d = dp = None
            if idx is not None:
                d = single(st.pkts.dst)
                dp = single(st.pkts.dport)
            if (d is not None or dp is not None) and fr.index < len(rules):
                cands = idx.candidates(d, dp)
                k = bisect_left(cands, fr.index)
                nxt = cands[k] if k < len(cands) else len(rules)
                if nxt > fr.index:
                    skipped = nxt - fr.index
                    if self.verbose:
                        path.steps.append(Step(T.NOTE, hook, table, chain.name, depth=depth,
                                               reason=f"rules {fr.index + 1}–{nxt} of {chain.name}: {skipped} rule"
                                               f"{'s' if skipped > 1 else ''} for other destinations or ports, not matching",
                                               detail={"skipped": skipped, "first": fr.index + 1, "last": nxt}))
                    fr.index = nxt
            if fr.index >= len(rules):
                st.frames.pop()
                if not st.frames:  # the base chain ended (or a chain it went to with -g)
                    self._policy(st, path, st.base, depth)
                    return
                path.steps.append(Step(T.RETURN, hook, table, chain.name, depth=depth,
                                       reason=f"end of {chain.name}: back to {st.frames[-1].chain.name}"))
                continue
            rule = rules[fr.index]
            fr.index += 1
            ctx.chain = chain.name
            ctx.rule = rule
            dec = self._decide(rule, st.pkts, ctx)
            matched = dec.matched
            refused = dec.refused()
            if matched is None:
                if self.verbose:
                    path.steps.append(Step(T.RULE, hook, table, chain.name, rule, False, dec.reason, depth=depth))
                st.pkts = refused[0][0] if refused else st.pkts
                continue
            if refused:
                effect = self._target_effect(rule, matched, ctx)
                if effect is not None and _no_effect(effect):
                    # LOG, NFLOG, a counter rule…: both sides continue alike, no need to fork.
                    cond = dec.yes.text if dec.yes else dec.reason
                    path.steps.append(Step(T.RULE, hook, table, chain.name, rule, True,
                                           f"for packets with {cond}", depth=depth,
                                           detail={"partial": True, "note": effect.note}))
                    continue
                branches = []
                yes = dec.yes or Condition(dec.reason)
                sub = st.clone(matched)
                sub.resume = (rule, dec)
                branches.append((yes, sub, []))
                for part, cond in refused:
                    s2 = st.clone(part)
                    branches.append((cond or Condition(f"not: {dec.reason}"), s2,
                                     [Step(T.RULE, hook, table, chain.name, rule, False,
                                           (cond.text if cond else dec.reason), depth=depth)]))
                self._fork(st, path, _fork_reason(rule, dec), branches,
                           stat=dec.probability is not None and dec.undecidable)
            self._matched(st, path, rule, dec, ctx, depth)
            if not st.frames:
                return

    def _decide(self, rule: Rule, pkts: Packets, ctx: MatchContext) -> Decision:
        hdr = self.headers.get(id(rule))
        if hdr is None:
            hdr = self.headers[id(rule)] = header_deciders(rule.header)
        if not rule.matches:
            return Decision.conjunction(pkts, hdr)
        tests = list(hdr)
        for m in rule.matches:
            tests.append(lambda p, m=m: _decide_match(m, p, ctx))
        return Decision.conjunction(pkts, tests)

    def _target_effect(self, rule: Rule, pkts: Packets, ctx: MatchContext) -> Effect | None:
        t = rule.target
        if t is None:
            return Effect(CONTINUE, note="no target: counts only")
        if isinstance(t, (ChainJump, OpaqueTarget)) or rule.jump is not None:
            return None
        apply = getattr(t, "apply", None)
        if apply is None:
            return None
        return apply(pkts, ctx)

    def _matched(self, st: State, path: Path, rule: Rule, dec: Decision, ctx: MatchContext, depth: int) -> None:
        hook, table, chain = st.phase, st.table.name, st.frames[-1].chain.name
        reason = dec.reason or "matches every packet"
        step = Step(T.RULE, hook, table, chain, rule, True, reason, depth=depth)
        path.steps.append(step)
        t = rule.target
        if t is None:
            return
        target_chain = rule.jump
        if target_chain is not None:
            self._mark_uncertain(st, step, rule)
            tchain = st.table.chains.get(target_chain)
            if tchain is None:
                path.steps.append(Step(T.NOTE, hook, table, chain, rule, depth=depth,
                                       reason=f"chain {target_chain} does not exist"))
                self._finish(st, path, T.UNDECIDED, f"jump to missing chain {target_chain}", rule)
            names = [f.chain.name for f in st.frames]
            if target_chain in names:
                path.steps.append(Step(T.NOTE, hook, table, chain, rule, depth=depth,
                                       reason=f"loop: {' → '.join(names + [target_chain])}"))
                self._finish(st, path, T.UNDECIDED, f"chain loop through {target_chain} (iptables refuses to load it)", rule)
            if len(st.frames) >= MAX_DEPTH:
                self._finish(st, path, T.UNDECIDED, f"chains nested deeper than {MAX_DEPTH}", rule)
            if rule.goto:
                path.steps.append(Step(T.GOTO, hook, table, chain, rule, depth=depth,
                                       reason=f"goto {target_chain}: its end returns to the chain above",
                                       detail={"to": target_chain}))
                st.frames[-1] = Frame(tchain, 0)
            else:
                path.steps.append(Step(T.JUMP, hook, table, chain, rule, depth=depth, reason=f"jump to {target_chain}",
                                       detail={"to": target_chain}))
                st.frames.append(Frame(tchain, 0))
            return
        if isinstance(t, OpaqueTarget) or getattr(t, "apply", None) is None:
            name = extension_name(t)
            path.steps.append(Step(T.NOTE, hook, table, chain, rule, depth=depth,
                                   reason=f"target {name} not understood: its effect is unknown"))
            self._finish(st, path, T.UNDECIDED, f"target {name} not understood", rule)
        eff = t.apply(st.pkts, ctx)
        if not (eff.verdict == CONTINUE and eff.pkts is None and eff.nat is None and not eff.notrack
                and not eff.ct_changes):
            # A rule that changes nothing (LOG, a counter) decides nothing, hidden parts or not.
            self._mark_uncertain(st, step, rule)
        if eff.pkts is not None:
            before, st.pkts = st.pkts, eff.pkts
            texts = {f: (b, a) for f, b, a in eff.rewrites}
            for f, b, a, detail in _rewrites(before, st.pkts, list(texts), texts):
                path.steps.append(Step(T.REWRITE, hook, table, chain, rule, depth=depth,
                                       reason=f"{extension_name(t)}: {f} {b} → {a}" + (f" ({eff.note})" if eff.note else ""),
                                       detail=detail))
        elif eff.note and eff.verdict == CONTINUE:
            path.steps.append(Step(T.NOTE, hook, table, chain, rule, depth=depth, reason=eff.note))
        if eff.nat is not None:
            kind, binding = eff.nat
            st.conn.nat[kind] = binding
        if eff.notrack:
            st.notrack = True
        if eff.ct_changes.get("helper"):
            st.conn.helper = eff.ct_changes["helper"]
        v = eff.verdict
        if v == CONTINUE:
            return
        if v == ACCEPT:
            path.steps.append(Step(T.VERDICT, hook, table, chain, rule, verdict="ACCEPT", depth=depth,
                                   reason=f"ACCEPT ends the {table} table's {hook} traversal; the journey goes on"))
            st.frames = []
            return
        if v == DROP:
            path.steps.append(Step(T.VERDICT, hook, table, chain, rule, verdict="DROP", depth=depth,
                                   reason=eff.note or "DROP"))
            self._finish(st, path, T.DROPPED, f"dropped by {table} {chain} rule {rule.number}"
                         + (f": {eff.note}" if eff.note else ""), rule)
        if v == REJECT:
            path.steps.append(Step(T.VERDICT, hook, table, chain, rule, verdict="REJECT", depth=depth,
                                   reason=f"dropped, answered with {eff.reply} (a new packet sent through OUTPUT; "
                                   "the kernel's trace shows DROP)"))
            fate = self._reply_fate(st, eff.reply or "")
            if fate:
                path.steps.append(Step(T.NOTE, hook, table, chain, rule, depth=depth, reason=fate[0],
                                       detail={"reply_outcome": fate[1]}))
            what = f"rejected by {table} {chain} rule {rule.number} with {eff.reply}"
            if fate and fate[1] == T.DROPPED:
                # The answer never leaves the host: for the sender this is a drop.
                self._finish(st, path, T.DROPPED, f"{what}, but {fate[0]}: the sender sees no answer", rule,
                             reply=eff.reply)
            self._finish(st, path, T.REJECTED, what + (f"; {fate[0]}" if fate and fate[1] not in T.PASSED else ""),
                         rule, reply=eff.reply)
        if v == RETURN:
            depth_now = len(st.frames) - 1
            path.steps.append(Step(T.RETURN, hook, table, chain, rule, verdict="RETURN", depth=depth,
                                   reason="RETURN" + (f" to {st.frames[-2].chain.name}" if depth_now > 0 else
                                                      f" in a base chain: the policy of {st.base.name} applies")))
            st.frames.pop()
            if not st.frames:
                self._policy(st, path, st.base, 0)
            return
        if v == QUEUE:
            path.steps.append(Step(T.VERDICT, hook, table, chain, rule, verdict="QUEUE", depth=depth,
                                   reason=f"queued to user space (queue {eff.queue}): the program there decides"
                                   + (f"; {eff.note}" if eff.note else "")))
            self._queue_fork(st, path, rule)
        why = eff.note or f"verdict {v} not understood"
        path.steps.append(Step(T.NOTE, hook, table, chain, rule, depth=depth, reason=why))
        self._finish(st, path, T.UNDECIDED, why, rule)

    def _reply_fate(self, st: State, reply: str) -> tuple[str, str] | None:
        """Trace REJECT's answer: a packet the host sends back through OUTPUT (part of the
        connection, so the nat table is not consulted), where the host's own rules may drop
        it.  Only for a flow whose addresses are exact."""
        if self.reply_depth or not reply:
            return None
        p = st.pkts
        s, d = single(p.src), single(p.dst)
        if s is None or d is None:
            return None
        fam = self.family
        tcp = reply == "tcp-reset"
        src = d
        if not tcp and not self.router.is_local(d) and p.iniface:
            own = self.router.select_source(p.iniface, s)
            src = own if own is not None else d
        sport, dport = single(p.dport), single(p.sport)
        # The reset, like the ICMP error, is attached to the connection it answers as RELATED
        # (nf_ct_attach), not ESTABLISHED: OUTPUT's --ctstate ESTABLISHED rules do not see it.
        flow = Flow(fam, "tcp" if tcp else ("icmp" if fam == 4 else "ipv6-icmp"), src=self.router.text(src),
                    dst=self.router.text(s), sport=sport if tcp else None, dport=dport if tcp else None,
                    state="RELATED", from_host=True,
                    icmp_type=None if tcp else ("3" if fam == 4 else "1"))
        sub = Tracer(self.rs, self.host, fam, ipsets=self.ipsets, verbose=False, max_branches=16,
                     backend=self.backend)
        sub.reply_depth = self.reply_depth + 1
        notes: list[str] = []
        try:
            rst = initial_state(flow, self.host, sub.router, notes)
        except Exception:  # noqa: BLE001 - a reply we cannot describe is simply not followed
            return None
        rst.pkts.tcpflags = point(0x14) if tcp else rst.pkts.tcpflags  # RST,ACK
        sub.run(rst)
        kinds = {o.kind for _, o in sub.finals}
        what = f"the {reply} reply to {flow.dst}"
        if kinds <= set(T.PASSED):
            return f"{what} is sent back through OUTPUT", T.SENT
        if kinds <= {T.DROPPED, T.REJECTED}:
            why = next(o.summary for _, o in sub.finals)
            return f"{what} never leaves: {why}", T.DROPPED
        return f"{what} may be dropped in OUTPUT (depends on: {', '.join(sorted(kinds))})", T.UNDECIDED

    def _queue_fork(self, st: State, path: Path, rule: Rule) -> None:
        """NFQUEUE/QUEUE: a program in user space gives the verdict.  NF_ACCEPT from there
        re-enters after this table; NF_DROP (or no program, without --queue-bypass) drops."""
        hook = st.phase
        entry = H.entries(self.family, hook, self.backend)[st.entry]
        acc = st.clone()
        acc.frames = []
        self._table_done(acc, hook, entry)
        acc.entry = st.entry + 1
        drop = st.clone()
        drop.frames = []
        drop_steps = [Step(T.VERDICT, hook, st.table.name, rule.chain, rule, verdict="DROP",
                           reason="the queue program drops it (or no program listens without --queue-bypass)")]
        drop.resume = None
        drop.phase = "QUEUE_DROP"
        self._fork(st, path, f"{rule.target_name}: user space decides",
                   [(Condition("the queue program accepts the packet"), acc, []),
                    (Condition("the queue program drops the packet"), drop, drop_steps)])

    def _policy(self, st: State, path: Path, chain: Chain, depth: int) -> None:
        hook, table = st.phase, st.table.name
        pol = chain.policy or "ACCEPT"
        path.steps.append(Step(T.POLICY, hook, table, chain.name, verdict=pol, depth=0,
                               reason=f"policy {pol} of {table} {chain.name}"))
        st.frames = []
        if pol == "DROP":
            self._finish(st, path, T.DROPPED, f"dropped by the policy of {table} {chain.name}")


# ---------------------------------------------------------------------------------------------
# Helpers.


def _decide_match(m, pkts: Packets, ctx: MatchContext) -> Decision:
    decide = getattr(m, "decide", None)
    if decide is None or isinstance(m, OpaqueMatch):
        name = extension_name(m)
        return Decision.fork(pkts, f"module {name} not understood", f"{m.describe()} matches",
                             f"{m.describe()} does not match")
    return decide(pkts, ctx)


def _no_effect(e: Effect) -> bool:
    return (e.verdict == CONTINUE and e.pkts is None and not e.notrack and not e.ct_changes
            and e.nat is None)


def _fork_reason(rule: Rule, dec: Decision) -> str:
    what = dec.label or dec.reason
    if dec.undecidable:
        return what
    return f"{rule.table} {rule.chain} rule {rule.number}: {what}"


def _hook_reason(st: State) -> str:
    p = st.pkts
    parts = []
    if p.iniface:
        parts.append(f"in {p.iniface}")
    if p.outiface:
        parts.append(f"out {p.outiface}")
    parts.append(f"{p.addr_text('src')} → {p.addr_text('dst')}")
    return ", ".join(parts)


def _field_text(p: Packets, f: str) -> str:
    if f in ("src", "dst"):
        return p.addr_text(f)
    return fmt_set(getattr(p, f))


ENDPOINTS = {"src": ("src", "sport"), "sport": ("src", "sport"), "dst": ("dst", "dport"),
             "dport": ("dst", "dport")}


def _rewrites(before: Packets, after: Packets, changed: list[str],
              texts: dict[str, tuple[str, str]] | None = None) -> list[tuple[str, str, str, dict]]:
    """(field, before, after, detail) per rewrite step.  For TCP/UDP/SCTP/DCCP/UDP-Lite an
    address and its port are one endpoint, shown together even when only one of them changed
    (``dst 198.51.100.1:9525 → 172.17.0.6:9525``); ``detail["fields"]`` keeps each field
    that changed.  Other fields (mark…) are one step each."""
    texts = texts or {}
    out: list[tuple[str, str, str, dict]] = []
    done: set[str] = set()
    ported = single(before.proto) in PORT_PROTOS
    for f in changed:
        if f in done:
            continue
        if f in ENDPOINTS and ported:
            a, port = ENDPOINTS[f]
            done.update((a, port))
            fields = {g: list(texts.get(g) or (_field_text(before, g), _field_text(after, g)))
                      for g in (a, port) if g in changed}
            show_port = getattr(before, port) != U16 or getattr(after, port) != U16
            b_txt, a_txt = _endpoint(before, a, port, show_port), _endpoint(after, a, port, show_port)
            out.append((a, b_txt, a_txt, {"field": a, "before": b_txt, "after": a_txt, "fields": fields}))
            continue
        done.add(f)
        b_txt, a_txt = texts.get(f) or (_field_text(before, f), _field_text(after, f))
        out.append((f, b_txt, a_txt, {"field": f, "before": b_txt, "after": a_txt}))
    return out


def _endpoint(p: Packets, a: str, port: str, show_port: bool | None = None) -> str:
    """``198.51.100.1:9525``, ``[2001:db8::1]:80``; ``:*`` for any port when ``show_port`` asks
    for it (the other side of a rewrite has one)."""
    addr = p.addr_text(a)
    ports = getattr(p, port)
    if single(p.proto) not in PORT_PROTOS or not (ports != U16 if show_port is None else show_port):
        return addr
    return (f"[{addr}]" if p.family == 6 else addr) + ":" + (fmt_set(ports) if ports != U16 else "*")


def _flatten_cascades(path: Path, stat_forks: set[int]) -> None:
    """Merge a chain of random-choice forks (kube-proxy's 1/3, 1/2, rest) into one fork whose
    branches carry each endpoint's effective probability (1/3, 1/3, 1/3)."""
    stack = [path]
    while stack:
        p = stack.pop()
        f = p.fork
        if f is None:
            continue
        if id(f) in stat_forks:
            changed = True
            while changed:
                changed = False
                cond, last = f.branches[-1]
                nxt = last.fork
                if (last.outcome is None and nxt is not None and id(nxt) in stat_forks
                        and all(s.kind in (T.RULE, T.NOTE) and s.matched is not True for s in last.steps)):
                    merged = []
                    for c2, p2 in nxt.branches:
                        prob = None if cond.probability is None or c2.probability is None else cond.probability * c2.probability
                        merged.append((Condition(f"{cond.text}; {c2.text}", prob), Path(last.steps + p2.steps, p2.outcome, p2.fork)))
                    f.branches[-1:] = merged
                    stat_forks.add(id(f))
                    changed = True
            if len(f.branches) > 2:
                n = len(f.branches)
                f.reason = f"random choice among {n} rules (statistic cascade)"
                for i, (c, sub) in enumerate(f.branches):
                    if c.probability is not None:
                        c.text = f"random choice {i + 1} of {n} (probability {c.probability:.4g})"
        for _, sub in f.branches:
            stack.append(sub)


# ---------------------------------------------------------------------------------------------
# From the user's flow to the first set of packets.

PROTO_ALIASES = {"icmpv6": "ipv6-icmp", "icmp6": "ipv6-icmp"}
TCP_SYN = 0x02
EPHEMERAL = span(32768, 60999)  # net.ipv4.ip_local_port_range's default
TCP_ACK = 0x10


def _port_set(v: int | tuple[tuple[int, int], ...]) -> IntSet:
    return point(v) if isinstance(v, int) else normalize(v)


def _tcp_flags_set(v: tuple[int, int, bool]) -> IntSet:
    """The segments ``--tcp-flags MASK COMP`` describes (``!``: every other one)."""
    mask, comp, inv = v
    s = masked_set(comp, mask, 8) or U8
    return subtract(U8, s) if inv else s


def _addr_set(text: str, family: int) -> IntSet:
    from iptexplain.errors import InputError, OptionError

    try:
        a = parse_address(text, family)
    except OptionError as e:
        raise InputError(f"{text}: {e} (an IPv{family} address was expected)", "<flow>") from None
    s = masked_set(a.value, a.mask, BITS[family])
    assert s is not None
    return s


def initial_state(flow: Flow, host: HostModel, router: Router, notes: list[str]) -> State:
    """The packets of the flow where they enter netfilter, and where that is."""
    from iptexplain.ext.libxt_icmp import parse_icmp_type
    from iptexplain.netfilter.ipheader import proto_number
    from iptexplain.parse.rulespec import canonical_proto

    fam = flow.family
    full = ((0, (1 << BITS[fam]) - 1),)
    proto_name = flow.proto
    if proto_name is None and (flow.dport is not None or flow.sport is not None):
        proto_name = "tcp"
        notes.append("protocol not given: a port was, so the flow is TCP")
    if proto_name is not None:
        pn = canonical_proto(PROTO_ALIASES.get(proto_name.lower(), proto_name))
        if pn == "icmp" and fam == 6:
            pn = "ipv6-icmp"
        proto = point(proto_number(pn)) if pn is not None else span(0, 255)
    else:
        proto = span(0, 255)
    pnum = single(proto)
    sport = _port_set(flow.sport) if flow.sport is not None else U16
    if flow.sport is None and flow.from_host and single(proto) in (6, 17, 132):
        sport = EPHEMERAL  # a local socket binds a port of ip_local_port_range
    dport = _port_set(flow.dport) if flow.dport is not None else U16
    icmp = U16
    if pnum in (1, 58):
        if flow.icmp_type:
            if fam == 6:
                from iptexplain.ext.libip6t_icmp6 import ICMPV6_TYPES

                t, lo, hi = parse_icmp_type(flow.icmp_type, ICMPV6_TYPES)
            else:
                t, lo, hi = parse_icmp_type(flow.icmp_type)
            icmp = span(t << 8 | lo, t << 8 | hi)
        elif "NEW" in flow.state.upper().split(","):
            icmp = point((8 if fam == 4 else 128) << 8)
            notes.append("ICMP type not given: an echo request (ping)")
    states = frozenset(s.strip().upper() for s in flow.state.split(",") if s.strip()) or frozenset({"NEW"})
    tcpflags = U8
    if pnum == 6:
        if flow.tcp_flags is not None and not flow.reply:
            tcpflags = _tcp_flags_set(flow.tcp_flags)  # the user knows the segment
        elif states == {"NEW"}:
            tcpflags = point(TCP_SYN)  # a connection's first packet: SYN
        elif "NEW" not in states:
            tcpflags = masked_set(TCP_ACK, TCP_ACK | TCP_SYN, 8)  # ACK set, SYN clear
    extra: dict[str, Any] = {}
    local_out = bool(flow.from_host)
    src: IntSet
    iniface: str | None = flow.iniface
    if flow.from_container:
        caddr = _container_address(flow.from_container, host, fam)
        if caddr is None:
            from iptexplain.errors import InputError

            raise InputError(f"no container {flow.from_container!r} in the host model", "<flow>")
        src = point(caddr)
        iniface = iniface or router.iface_of(caddr)
        notes.append(f"from container {flow.from_container}: {int_to_ip(caddr, fam)} on {iniface}")
    if local_out:
        if flow.src:
            src = _addr_set(flow.src, fam)
        else:
            src = full
            extra["src_open"] = True
        iniface = None
    elif not flow.from_container:
        if iniface is None and flow.src:
            # A source in one of the host's directly connected subnets comes from there
            # (-s 172.17.0.6: a container on docker0).
            one = single(_addr_set(flow.src, fam))
            res = router.lookup(one) if one is not None else None
            if res is not None and res.type == "unicast" and res.via is None and res.prefix != "default":
                iniface = res.dev
                notes.append(f"arriving on {iniface}, where {flow.src} is ({res.prefix}; use -i to change)")
        if iniface is None:
            iniface = external_iface(host, fam)
            notes.append(f"arriving on {iniface}, the external interface (use -i to change)")
        if flow.src:
            src = _addr_set(flow.src, fam)
        else:
            src = reverse_path_sources(router, iniface)
            extra.setdefault("labels", {})["src"] = (src, f"any address via {iniface}")
            notes.append(f"source: any address reached through {iniface} "
                         f"(reverse path; not the host's own nor a martian)")
    if flow.dst:
        dst = _addr_set(flow.dst, fam)
    elif local_out:
        dst = subtract(full, router.local_addrs)
        notes.append("destination: any address not the host's own")
    else:
        own = router.addresses(iniface) if iniface else []
        if not own:
            raise _no_address(iniface)
        dst = point(own[0][0])
        notes.append(f"destination: {int_to_ip(own[0][0], fam)}, this host's address on {iniface}")
    pk = Packets(fam, src, dst, proto, sport, dport, icmp, tcpflags, ctstate=frozenset({"INVALID"}),
                 iniface=None if local_out else iniface, mark=flow.mark or 0, from_host=local_out,
                 extra=extra)
    if flow.outiface and not local_out:
        notes.append(f"out-interface {flow.outiface} is decided by routing; the flow's value is ignored")
    st = State(pk, Connection(), "LOCAL_ROUTE" if local_out else "PREROUTING", local_out=local_out,
               flow_state=states)
    if not local_out and iniface is not None and (
            iniface == "lo" or getattr(host.interfaces.get(iniface), "kind", "") == "loopback"):
        # Only this host sends on lo: the packet is the second half of a local connection, whose
        # NAT was decided on its way out (nat PREROUTING/INPUT are not consulted again).
        st.looped = True
        st.pkts = st.pkts.copy(ctstate=states)
        st.nat_init = frozenset(NAT_MANIP.values())
        notes.append("a packet arriving on lo was sent by this host: its connection's NAT was decided "
                     "on the way out, so the nat table is not consulted here (--from-host traces the "
                     "whole journey)")
    return st


def _no_address(iface: str | None):
    from iptexplain.errors import InputError

    return InputError(f"no address known on {iface}: give --dst or --iface {iface}=ADDR/PREFIX", "<flow>")


def _container_address(name: str, host: HostModel, family: int) -> int | None:
    from iptexplain.addr import parse_ip
    from iptexplain.errors import OptionError

    try:
        fam, v = parse_ip(name)
        if fam == family:
            return v
    except OptionError:
        pass
    for addr, info in host.containers.items():
        if info.get("name") == name or info.get("id", "").startswith(name):
            try:
                fam, v = parse_ip(addr)
            except OptionError:
                continue
            if fam == family:
                return v
    return None


def external_iface(host: HostModel, family: int) -> str:
    """The interface of the default route (else the first non-loopback, non-bridge one)."""
    for r in host.routes:
        if r.family == family and r.dst == "default" and r.dev:
            return r.dev
    for name, i in host.interfaces.items():
        if name != "lo" and i.kind not in ("bridge", "loopback"):
            return name
    return next((n for n in host.interfaces if n != "lo"), "eth0")


def reverse_path_sources(router: Router, iface: str) -> IntSet:
    """The source addresses a packet arriving on ``iface`` can have: those routed back
    through ``iface`` (what rp_filter accepts), without the host's own and the martians."""
    out: IntSet = ()
    full = ((0, (1 << router.bits) - 1),)
    for part, res in router.split(full):
        if res.type == "unicast" and res.dev == iface:
            out = union(out, part)
    if router.family == 4:
        for bad in ("0.0.0.0/8", "127.0.0.0/8", "224.0.0.0/3"):
            out = subtract(out, _addr_set(bad, 4))
    else:
        for bad in ("::1/128", "ff00::/8", "::/128"):
            out = subtract(out, _addr_set(bad, 6))
    return subtract(out, router.local_addrs)


# ---------------------------------------------------------------------------------------------
# The public entry.


def trace_flow(ruleset: Ruleset, flow: Flow, host: HostModel | None = None, *, ipsets: Any = None,
               verbose: bool = True, max_branches: int = MAX_BRANCHES, backend: str | None = None) -> Trace:
    """Walk ``flow`` through ``ruleset`` on ``host`` and return the trace tree.

    ``host`` is completed from the ruleset where it says nothing (every inference is in
    ``Trace.notes``).  ``backend`` ("nft" or "legacy", default: the ruleset's ``backend``
    attribute when it has one, else nft) decides where the security table runs.  ``ipsets`` maps set names to the contents of an ``ipset save`` dump;
    without it ``-m set`` forks.  ``verbose`` records every rule that did not match (the views'
    "why not" detail); off, only the decisive steps are kept.
    """
    from iptexplain.hostinfer import complete_host

    host = complete_host(host, ruleset, flow)
    notes: list[str] = list(host.notes)
    hidden = [w for k, w in HIDDEN_PARTS.items() if k in (getattr(ruleset, "hidden", None) or ())]
    if hidden:
        notes.append("the input does not show every rule exactly (" + "; ".join(hidden) + "): the path "
                     "follows the rules as listed, and each deciding rule is marked uncertain -- "
                     "iptables-save or iptables -nvL gives the exact answer")
    if flow.family not in ruleset.families() and ruleset.families():
        notes.append(f"the ruleset has no IPv{flow.family} tables: nothing filters this flow "
                     f"(it has IPv{', IPv'.join(map(str, ruleset.families()))})")
    backend = backend or getattr(ruleset, "backend", None) or "nft"
    tr = Tracer(ruleset, host, flow.family, ipsets=ipsets, verbose=verbose, max_branches=max_branches,
                backend=backend)
    if "security" in tr.tables and "nat" in tr.tables:
        notes.append(f"{backend} backend: security runs {'after' if backend == 'nft' else 'before'} nat INPUT"
                     + (" (iptables-nft registers it at priority 150)" if backend == "nft" else ""))
    if flow.reply:
        root = _trace_reply(ruleset, flow, host, notes, ipsets, verbose, max_branches, backend)
        return Trace(flow, root, notes, host)
    st = initial_state(flow, host, tr.router, notes)
    if "NEW" not in st.flow_state and st.flow_state & {"ESTABLISHED", "RELATED"}:
        bindings = _connection_bindings(ruleset, flow, host, ipsets, backend)
        if len(bindings) > 1:
            # The connection's first packet could have gone several ways (kube-proxy's random
            # endpoint choice, made once per connection): one branch per binding it keeps.
            branches = []
            for nat, cond in bindings:
                sub = Tracer(ruleset, host, flow.family, ipsets=ipsets, verbose=verbose,
                             max_branches=max_branches, backend=backend)
                s2 = initial_state(flow, host, sub.router, [])
                s2.conn.nat = {k: dict(v) for k, v in nat.items()}
                branches.append((cond, sub.run(s2)))
                notes.extend(n for n in sub.notes if n not in notes)
            notes.append("the connection's first packet could get different NAT bindings: one branch each")
            return Trace(flow, Path(fork=Fork("the connection's NAT, chosen by its first packet", branches)),
                         notes, host)
        if bindings and bindings[0][0]:
            nat = bindings[0][0]
            st.conn.nat = {k: dict(v) for k, v in nat.items()}
            notes.append("the connection's first packet got " + ", ".join(
                f"{k} to {', '.join(f'{f} {_set_text(v, f, flow.family)}' for f, v in b.items())}"
                for k, b in nat.items() if b) + "; this packet keeps it")
    root = tr.run(st)
    notes.extend(tr.notes)
    return Trace(flow, root, notes, host)


def _trace_reply(ruleset: Ruleset, flow: Flow, host: HostModel, notes: list[str], ipsets: Any,
                 verbose: bool, max_branches: int, backend: str) -> Path:
    """The answer to ``flow``: trace the flow's first packet (quietly) to learn its connection
    -- where it went, which NAT it got -- then walk the reply packet back, ESTABLISHED, in the
    reply direction, with conntrack undoing the NAT.  One branch per way the first packet can
    go (kube-proxy's endpoints each answer with their own probability)."""
    import dataclasses

    first = Tracer(ruleset, host, flow.family, ipsets=ipsets, verbose=False, max_branches=max_branches,
                   backend=backend)
    s0 = initial_state(dataclasses.replace(flow, reply=False, state="NEW", tcp_flags=None), host, first.router,
                       notes)
    first_root = first.run(s0)
    conds = {id(l.outcome): l.conditions for l in Trace(flow, first_root).leaves()}
    passed = [(s, o) for s, o in first.finals if o.kind in T.PASSED]
    if not passed:
        kinds = ", ".join(sorted({o.kind for _, o in first.finals})) or "nothing"
        notes.append(f"the flow's first packet is {kinds}: there is no connection to answer")
        return Path([Step(T.NOTE, reason="no connection: the first packet never got through")],
                    Outcome(T.UNDECIDED, None, f"no reply: the first packet is {kinds}"))
    branches: list[tuple[Condition, Path]] = []
    for st0, out0 in passed:
        tr = Tracer(ruleset, host, flow.family, ipsets=ipsets, verbose=verbose, max_branches=max_branches,
                    backend=backend)
        rst = _reply_state(st0, out0, tr.router, established="NEW" not in flow.state.upper().split(","))
        if flow.tcp_flags is not None and single(rst.pkts.proto) == 6:
            rst.pkts.tcpflags = _tcp_flags_set(flow.tcp_flags)  # the user knows the reply's segment
        path = tr.run(rst)
        path.steps.insert(0, Step(T.NOTE, reason=f"reply to the connection: {out0.summary}",
                                  detail={"original": out0.packet}))
        cs = conds.get(id(out0), [])
        prob = None
        if cs and all(c.probability is not None for c in cs):
            prob = 1.0
            for c in cs:
                prob *= c.probability
        branches.append((Condition("; ".join(c.text for c in cs) or "the connection", prob), path))
        notes.extend(n for n in tr.notes if n not in notes)
    if len(branches) == 1:
        return branches[0][1]
    return Path(fork=Fork("the reply depends on where the first packet went", branches))


def _reply_state(st0: State, out0: Outcome, router: Router, established: bool = False) -> State:
    """The reply packet of the connection ``st0`` ended in: for TCP the SYN,ACK when the flow
    is the connection's first packet, a segment with ACK and without SYN (data, FIN, RST…)
    once it is ``established``."""
    p = st0.pkts
    icmp = p.icmp
    echo = {8 << 8: 0, 128 << 8: 129 << 8}
    if single(p.proto) in (1, 58) and single(icmp) in echo:
        icmp = point(echo[single(icmp)])
    conn = st0.conn.copy()
    conn.direction = "REPLY"
    conn.status = frozenset({"SEEN_REPLY", "CONFIRMED"})
    local = out0.kind == T.DELIVERED
    pk = Packets(p.family, p.dst, p.src, p.proto, p.dport, p.sport, icmp,
                 (masked_set(TCP_ACK, TCP_ACK | TCP_SYN, 8) if established else point(TCP_SYN | TCP_ACK))
                 if single(p.proto) == 6 else U8,
                 ctstate=frozenset({"INVALID"}), iniface=None if local else out0.iface,
                 connmark=p.connmark, from_host=local)
    return State(pk, conn, "LOCAL_ROUTE" if local else "PREROUTING", local_out=local,
                 flow_state=frozenset({"ESTABLISHED"}))


def _connection_bindings(ruleset: Ruleset, flow: Flow, host: HostModel, ipsets: Any,
                         backend: str) -> list[tuple[dict, Condition]]:
    """A later packet keeps the NAT its connection's first packet got: trace that packet
    (quietly) and return each distinct binding with the condition (and probability) of
    getting it."""
    import dataclasses

    first = Tracer(ruleset, host, flow.family, ipsets=ipsets, verbose=False, max_branches=64, backend=backend)
    s0 = initial_state(dataclasses.replace(flow, state="NEW", tcp_flags=None), host, first.router, [])
    root = first.run(s0)
    conds = {id(l.outcome): l.conditions for l in Trace(flow, root).leaves()}
    out: dict[str, tuple[dict, list[str], float | None]] = {}
    for s, o in first.finals:
        if o.kind not in T.PASSED:
            continue
        key = repr(sorted((k, sorted(v.items())) for k, v in s.conn.nat.items()))
        cs = conds.get(id(o), [])
        p: float | None = 1.0
        for c in cs:
            p = None if p is None or c.probability is None else p * c.probability
        texts = "; ".join(c.text for c in cs) or "the connection"
        if key in out:
            nat, t, q = out[key]
            out[key] = (nat, t + [texts], None if q is None or p is None else q + p)
        else:
            out[key] = (s.conn.nat, [texts], p)
    return [(nat, Condition(" or ".join(t), p)) for nat, t, p in out.values()]


def _set_text(s: IntSet, f: str, family: int) -> str:
    if f in ("src", "dst"):
        return fmt_set(s, lambda v: int_to_ip(v, family), 3)
    return fmt_set(s)
