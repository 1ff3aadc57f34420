"""Conntrack and NAT bookkeeping: the connection a packet gets at the conntrack hooks, and
whether the nat table is consulted -- once per manipulation type and connection, for its first
packet; later packets, replies and packets looped back keep (or undo) the connection's binding.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from iptexplain.graph import Ruleset
from iptexplain.host import HostModel
from iptexplain.netfilter import hooks as H
from iptexplain.netfilter import trace as T
from iptexplain.netfilter.branch import Branching, State
from iptexplain.netfilter.flowstate import initial_state
from iptexplain.netfilter.rewrites import field_text, rewrite_steps
from iptexplain.netfilter.trace import Condition, Flow, Path, Step, Trace

NAT_KIND = {"DST": "DNAT", "SRC": "SNAT"}


def nat_table_done(st: State, hook: str, e: H.HookEntry) -> None:
    """After a nat chain ran at ``hook``: the connection's NAT of that manip type is set up once
    a chain bound it, or (null) after the hook's last nat chain -- the NAT core calls the nat
    chains in turn until one binds (nf_nat_inet_fn; measured in the kernel lab)."""
    if e.is_nat and (e.last_nat or NAT_KIND[H.NAT_MANIP[hook]] in st.conn.nat):
        st.nat_init = st.nat_init | {H.NAT_MANIP[hook]}


class ConntrackSteps(Branching):
    """The conntrack hook and the nat table's once-per-connection rule (mixed into the tracer)."""

    conntrack_on: bool

    def _conntrack(self, st: State, path: Path, hook: str) -> None:
        p = st.pkts
        if st.looped:
            path.steps.append(Step(T.CONNTRACK, hook, reason="the looped-back packet keeps its connection"))
            return
        if not self.conntrack_on:
            st.conn.tracked = False
            st.pkts = p.copy(ctstate=frozenset({"UNTRACKED"}))
            st.rewritten = st.rewritten | {"ctstate"}
            path.steps.append(Step(T.CONNTRACK, hook, reason="connection tracking is off: no rule of this "
                                   "ruleset needs it, so the packet has no connection and the nat "
                                   "chains are not traversed"))
            return
        if st.notrack:
            st.pkts = p.copy(ctstate=frozenset({"UNTRACKED"}))
            st.rewritten = st.rewritten | {"ctstate"}
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
        manip = H.NAT_MANIP[hook]
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
            st.rewrite(before, st.pkts)
            what = f"the connection's {kind}" if st.conn.direction != "REPLY" else \
                f"the connection's {'SNAT' if kind == 'DNAT' else 'DNAT'} undone for the reply"
            changed = [f for f in binding if field_text(before, f) != field_text(st.pkts, f)]
            for f, b, a, detail in rewrite_steps(before, st.pkts, changed):
                path.steps.append(Step(T.REWRITE, hook, "nat", reason=f"{what}: {f} {b} → {a}",
                                       detail={**detail, "by": "conntrack"}))
        return False

    @classmethod
    def connection_bindings(cls, ruleset: Ruleset, flow: Flow, host: HostModel, ipsets: Any,
                            backend: str) -> list[tuple[dict, Condition]]:
        """A later packet keeps the NAT its connection's first packet got: trace that packet
        (quietly) and return each distinct binding with the condition (and probability) of
        getting it."""
        first = cls(ruleset, host, flow.family, ipsets=ipsets, verbose=False, max_branches=64, backend=backend)
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
