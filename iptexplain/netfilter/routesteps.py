"""The routing decisions of the journey as trace steps: the input route between PREROUTING
and INPUT/FORWARD (on the destination after DNAT), the route of a locally generated packet
before OUTPUT and its re-route after it, the loop back through ``lo``, and the bridge that
switches a packet past every hook.  The lookups themselves are :class:`.routing.Router`'s.
"""

from __future__ import annotations

from typing import Any

from iptexplain.core.packets import point, single
from iptexplain.netfilter import trace as T
from iptexplain.netfilter.branch import Branching, State
from iptexplain.netfilter.rewrites import endpoint
from iptexplain.netfilter.routing import RouteResult
from iptexplain.netfilter.trace import Condition, Path, Step


OWN_ADDRESS = "own-address?"  # State.assumed: the branch already forked on the named destination


class RouteSteps(Branching):
    """Routing, re-routing, loopback and bridging (mixed into :class:`~.tracer.Tracer`)."""

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
            self._finish(st, path, T.FORWARDED, f"bridged to {endpoint(p, 'dst', 'dport')} on {p.iniface} "
                         "(no iptables hook)", iface=p.iniface)

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
        res = self._route_by_destination(st, path)
        self._fork_on_own_address(st, path, res)
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

    def _route_by_destination(self, st: State, path: Path) -> RouteResult:
        """The route of the packets' destinations: where parts of the set take different routes,
        the trace forks, one way per route; the first part's route is this way's."""
        p = st.pkts
        parts = self.router.split(p.dst)
        if len(parts) > 1:
            branches = []
            for part, res in parts:
                sub = st.clone(p.copy(dst=part))
                branches.append((Condition(f"destination {sub.pkts.addr_text('dst')}: {res.describe(self.family)}"),
                                 sub, []))
            self._fork(st, path, "the destination decides the route", branches)
        return parts[0][1]

    def _fork_on_own_address(self, st: State, path: Path, res: RouteResult) -> None:
        """With no host model, whether the address the user named is the host's own is unknown
        (the host's addresses are assumed): where that decides the way -- it would be routed out
        of an assumed interface -- fork, local first when the input suggests it."""
        addr = getattr(self, "named_dst", None)
        if (addr is None or self.host.source != "inferred" or st.looped or st.local_out
                or OWN_ADDRESS in st.assumed or res.local or res.type != "unicast"):
            return
        if any("dst" in b for b in st.conn.nat.values()):
            return  # rewritten by DNAT: the rules, not the user, named this destination
        iface = self.host.interfaces.get(res.dev or "")
        if iface is None or not iface.inferred or iface.kind == "bridge":
            return
        local, why = self._suggest_own(addr)
        own = st.clone()
        own.assumed = st.assumed | {OWN_ADDRESS}
        own.route = RouteResult("local", "lo", prefix="local")
        own.phase = "INPUT"
        other = st.clone()
        other.assumed = own.assumed
        step = Step(T.ROUTE, "routing", reason=f"{addr} taken as this host's own address: local delivery",
                    detail={"type": "local"})
        ways = [(Condition(f"if {addr} is this host's own address"), own, [step]),
                (Condition(f"if {addr} is another machine's, routed via {res.dev}"), other, [])]
        if not local:
            ways.reverse()
        self.notes.append(f"whether {addr} is this host's own address is unknown (no host model: give "
                          f"--local {addr} or --iface): the trace follows both; {why}")
        self._fork(st, path, f"is {addr} this host's address?", ways)

    def _suggest_own(self, addr: str) -> tuple[bool, str]:
        """Which way the input suggests: rules about the host's own traffic only (INPUT) suggest
        the address is the host's; FORWARD rules, that it is routed."""
        filt = self.tables.get("filter")
        fwd = filt.chains.get("FORWARD") if filt else None
        inp = filt.chains.get("INPUT") if filt else None
        fwd_rules = fwd is not None and getattr(fwd, "listed", True) and fwd.size > 0
        if inp is not None and inp.size > 0 and not fwd_rules:
            return True, "the input has INPUT rules and no FORWARD rules, which suggests it is the host's own"
        return False, "the input has FORWARD rules, which suggests it is routed (the local way comes second)"

    def _route_local(self, st: State, path: Path, first: bool) -> None:
        """The route of a locally generated packet, and the re-route after OUTPUT."""
        p = st.pkts
        if not first and p.dst == st.out_dst and p.mark == st.out_mark:
            st.phase = "POSTROUTING"
            return
        res = self._route_by_destination(st, path)
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
        st.rewrite(p, p.copy(**changes))
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

    def _loop_back(self, st: State, path: Path) -> bool:
        """A locally generated packet for the host's own address leaves by ``lo`` and comes back
        in through PREROUTING and INPUT (with its connection's NAT already set up)."""
        if not (st.local_out and st.route is not None and st.route.local):
            return False
        path.steps.append(Step(T.NOTE, "POSTROUTING", reason="sent through lo: the packet comes back in "
                               "through PREROUTING and INPUT (the connection's NAT is already set up)"))
        st.pkts = st.pkts.copy(iniface="lo", outiface=None)
        st.looped = True
        st.local_out = False
        return True
