"""Answers: REJECT's reply packet (sent back through OUTPUT, where the host's own rules may
drop it) and ``--reply``, the connection's reply walked back with conntrack undoing the NAT.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from iptexplain.core.packets import U8, Packets, masked_set, point, single
from iptexplain.graph import Ruleset
from iptexplain.host.model import HostModel
from iptexplain.netfilter import trace as T
from iptexplain.netfilter.branch import Branching, State
from iptexplain.netfilter.flowstate import TCP_ACK, TCP_SYN, initial_state, tcp_flags_set
from iptexplain.netfilter.routing import Router
from iptexplain.netfilter.trace import Condition, Flow, Fork, Outcome, Path, Step, Trace


class Replies(Branching):
    """REJECT's answer and the reply direction (mixed into :class:`~.tracer.Tracer`)."""

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
        sub = type(self)(self.rs, self.host, fam, ipsets=self.ipsets, verbose=False, max_branches=16,
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

    @classmethod
    def trace_reply(cls, ruleset: Ruleset, flow: Flow, host: HostModel, notes: list[str], ipsets: Any,
                    verbose: bool, max_branches: int, backend: str) -> Path:
        """The answer to ``flow``: trace the flow's first packet (quietly) to learn its connection
        -- where it went, which NAT it got -- then walk the reply packet back, ESTABLISHED, in the
        reply direction, with conntrack undoing the NAT.  One branch per way the first packet can
        go (kube-proxy's endpoints each answer with their own probability)."""
        first = cls(ruleset, host, flow.family, ipsets=ipsets, verbose=False, max_branches=max_branches,
                    backend=backend)
        s0 = initial_state(dataclasses.replace(flow, reply=False, state="NEW", tcp_flags=None), host,
                           first.router, notes)
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
            tr = cls(ruleset, host, flow.family, ipsets=ipsets, verbose=verbose, max_branches=max_branches,
                     backend=backend)
            rst = reply_state(st0, out0, tr.router, established="NEW" not in flow.state.upper().split(","))
            if flow.tcp_flags is not None and single(rst.pkts.proto) == 6:
                rst.pkts.tcpflags = tcp_flags_set(flow.tcp_flags)  # the user knows the reply's segment
            # What the first packet's way rested on, the answer rests on too.  (Not its forks on
            # hidden -i/-o: the answer comes in and goes out by other interfaces, and meets
            # those rules afresh.)
            rst.uncertain, rst.doubts = st0.uncertain, st0.doubts
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


def reply_state(st0: State, out0: Outcome, router: Router, established: bool = False) -> State:
    """The reply packet of the connection ``st0`` ended in: for TCP the SYN,ACK when the flow
    is the connection's first packet, a segment with ACK and without SYN (data, FIN, RST…)
    once it is ``established`` -- as the kernel lab's greeting connection shows."""
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
