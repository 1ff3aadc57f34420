"""The hook pipeline: a branch goes from phase to phase (PREROUTING, the input route, INPUT or
FORWARD; the local route, OUTPUT, the re-route; POSTROUTING) and, at each hook, through the
entries of :mod:`.hooks` in priority order -- conntrack, then each table's base chain.
"""

from __future__ import annotations

from iptexplain.netfilter import hooks as H
from iptexplain.netfilter import trace as T
from iptexplain.netfilter.branch import Frame, State
from iptexplain.netfilter.chainwalk import ChainWalk
from iptexplain.netfilter.conntrack import ConntrackSteps, nat_table_done
from iptexplain.netfilter.rewrites import endpoint
from iptexplain.netfilter.routesteps import RouteSteps
from iptexplain.netfilter.trace import Path, Step


class HookPipeline(ChainWalk, ConntrackSteps, RouteSteps):
    """Phases and hooks: what runs next, and in which order."""

    tables: dict

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
        """The phase after a hook, or the end of the journey (delivered, sent, forwarded)."""
        ph = st.phase
        p = st.pkts
        if ph == "PREROUTING":
            return "ROUTE"
        if ph == "INPUT":
            self._finish(st, path, T.DELIVERED,
                         f"delivered to a local socket on {endpoint(p, 'dst', 'dport')}"
                         + (" (looped back through lo)" if st.looped else ""),
                         iface=p.iniface)
        if ph == "FORWARD":
            return "POSTROUTING"
        if ph == "OUTPUT":
            return "REROUTE"
        if ph == "POSTROUTING":
            if self._loop_back(st, path):
                return "PREROUTING"
            where = f" via {p.outiface}" if p.outiface else ""
            if st.local_out:
                self._finish(st, path, T.SENT, f"sent to {endpoint(p, 'dst', 'dport')}{where}"
                             f" from {endpoint(p, 'src', 'sport')}", iface=p.outiface)
            self._finish(st, path, T.FORWARDED, f"forwarded to {endpoint(p, 'dst', 'dport')}{where}",
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
                nat_table_done(st, hook, e)
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
                    nat_table_done(st, hook, e)
            st.entry += 1


def _hook_reason(st: State) -> str:
    p = st.pkts
    parts = []
    if p.iniface:
        parts.append(f"in {p.iniface}")
    if p.outiface:
        parts.append(f"out {p.outiface}")
    parts.append(f"{p.addr_text('src')} → {p.addr_text('dst')}")
    return ", ".join(parts)
