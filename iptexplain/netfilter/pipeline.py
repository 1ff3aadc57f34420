"""The hook pipeline: a branch goes from phase to phase (PREROUTING, the input route, INPUT or
FORWARD; the local route, OUTPUT, the re-route; POSTROUTING) and, at each hook, through the
entries of :mod:`.hooks` in priority order -- conntrack, then each table's base chain.
"""

from __future__ import annotations

from typing import Any

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
    hook_rows: dict
    notes: list

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

    def _entries(self, hook: str) -> tuple[H.HookEntry, ...]:
        """The hook's rows for this ruleset -- iptables' tables and nft base chains, by priority
        (:func:`.hooks.hook_entries`), computed once per hook and tracer."""
        rows = self.hook_rows.get(hook)
        if rows is None:
            rows = self.hook_rows[hook] = H.hook_entries(self.rs, self.family, hook, self.backend)
            for a, b in H.ties(rows):
                self.notes.append(
                    f"{a.table} {a.chain.name} and {b.table} {b.chain.name} are both at priority "
                    f"{a.own_priority} on {hook}: the one registered last runs first, which a dump does not "
                    f"show; taken: {a.table} first (nft tables in the order listed, the later first; "
                    "iptables' tables as registered before them)")
        return rows

    def _hook(self, st: State, path: Path) -> None:
        hook = st.phase
        if st.entry == 0 and not st.frames:
            path.steps.append(Step(T.HOOK, hook, reason=_hook_reason(st)))
        entries = self._entries(hook)
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
                if e.is_nat and not self._nat_applies(st, path, hook):
                    st.entry += 1
                    continue
                table, base = e.table_obj, e.chain
                st.table = table
                st.base = base
                st.frames = [Frame(base, 0)]
                path.steps.append(Step(T.TABLE, hook, table.name, base.name, detail=_base_detail(base)))
                mark = st.pkts.mark
                self._traverse(st, path)
                _no_reroute(st, hook, base, mark)
                nat_table_done(st, hook, e)
            st.entry += 1


def _no_reroute(st: State, hook: str, base: Any, mark: int) -> None:
    """A mark set in OUTPUT by an nft chain of type filter does not re-route the packet: only
    iptables' mangle table and nft chains of type route (nf_route_table_hook4) call
    ip_route_me_harder when the mark changes (measured in the kernel lab with an fwmark rule)."""
    if hook == "OUTPUT" and getattr(base, "nft_type", None) == "filter" and st.pkts.mark != mark \
            and st.out_mark == mark:
        st.out_mark = st.pkts.mark


def _base_detail(base: Any) -> dict[str, Any]:
    """What a view shows of a base chain beyond its name: an nft chain's type, priority, handle."""
    pri = getattr(base, "priority", None)
    if pri is None:
        return {}
    return {"priority": pri, "priority_text": getattr(base, "priority_text", "") or str(pri),
            "type": getattr(base, "nft_type", None), "handle": getattr(base, "handle", None)}


def _hook_reason(st: State) -> str:
    p = st.pkts
    parts = []
    if p.iniface:
        parts.append(f"in {p.iniface}")
    if p.outiface:
        parts.append(f"out {p.outiface}")
    parts.append(f"{p.addr_text('src')} → {p.addr_text('dst')}")
    return ", ".join(parts)
