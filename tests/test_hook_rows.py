"""The hook table takes more base chains than iptables' tables: an nftables base chain is one row
(its table, its own chain name, any priority), run in priority order among the fixed ones."""

from __future__ import annotations

from iptexplain.host.infer import complete_host
from iptexplain.host.model import HostModel, IfAddr, Interface, Route
from iptexplain.netfilter import hooks as H
from iptexplain.netfilter import trace as T
from iptexplain.netfilter.flowstate import initial_state
from iptexplain.netfilter.trace import Flow
from iptexplain.netfilter.tracer import Tracer
from iptexplain.parse import parse_text

RULES = """*raw
:PREROUTING ACCEPT [0:0]
-A PREROUTING -p tcp -j ACCEPT
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
:early - [0:0]
-A early -p tcp --dport 22 -j DROP
COMMIT
*filter
:INPUT ACCEPT [0:0]
COMMIT
"""


def _host() -> HostModel:
    h = HostModel(source="test")
    h.add_interface(Interface("eth0")).addrs.append(IfAddr("198.51.100.1", 24, 4))
    h.routes.append(Route("default", "eth0", "198.51.100.254", family=4))
    return h


def _run(dport: int, rows: dict[str, tuple[H.HookEntry, ...]]):
    rs = parse_text(RULES, "<test>")
    flow = Flow(4, "tcp", src="203.0.113.9", dst="198.51.100.1", dport=dport, iniface="eth0")
    host = complete_host(_host(), rs, flow)
    tr = Tracer(rs, host, 4)
    tr.extra_entries = rows
    root = tr.run(initial_state(flow, host, tr.router, []))
    return list(T.Trace(flow, root).leaves())


def test_extra_rows_merge_by_priority() -> None:
    row = H.HookEntry(-250, H.TABLE, "mangle", "early")
    got = H.entries(4, "PREROUTING", "nft", (row,))
    assert [e.priority for e in got] == sorted(e.priority for e in got)
    assert got.index(row) == 1  # after raw (-300), before conntrack (-200)
    assert H.entries(4, "PREROUTING", "nft") == H.HOOK_ORDER["nft"][4]["PREROUTING"]
    # At equal priority the fixed registration runs first.
    same = H.HookEntry(H.PRI_FILTER, H.TABLE, "mangle", "early")
    inp = H.entries(4, "INPUT", "legacy", (same,))
    assert inp.index(same) == inp.index(H.HookEntry(H.PRI_FILTER, H.TABLE, "filter")) + 1


def test_a_base_chain_at_its_own_priority_runs_between_raw_and_conntrack() -> None:
    rows = {"PREROUTING": (H.HookEntry(-250, H.TABLE, "mangle", "early"),)}
    (leaf,) = _run(22, rows)
    assert leaf.outcome.kind == T.DROPPED
    walked = [(s.table, s.chain) for s in leaf.steps if s.kind == T.TABLE]
    assert walked == [("raw", "PREROUTING"), ("mangle", "early")]
    # Nothing else happened before it: conntrack (-200) had not run yet.
    assert not any(s.kind == T.CONNTRACK for s in leaf.steps)
    (other,) = _run(80, rows)
    assert other.outcome.kind == T.DELIVERED
    walked = [(s.table, s.chain) for s in other.steps if s.kind == T.TABLE]
    assert walked[:3] == [("raw", "PREROUTING"), ("mangle", "early"), ("mangle", "PREROUTING")]


def test_without_rows_the_chain_is_not_a_base_chain() -> None:
    (leaf,) = _run(22, {})
    assert leaf.outcome.kind == T.DELIVERED
    assert ("mangle", "early") not in [(s.table, s.chain) for s in leaf.steps if s.kind == T.TABLE]
