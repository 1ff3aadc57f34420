"""Outcome.origin: the entry packets of each leaf.  The leaves of a trace over a set of packets
must partition that set (cells of one origin apart, which are the two sides of an undecidable
fork), and each origin must be exact -- every packet of it, traced alone, ends the same way."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from iptexplain.analysis.fates import cells, fate_of
from iptexplain.analysis.space import covers, meet, packet_flow, sample
from iptexplain.netfilter.trace import Flow
from iptexplain.netfilter.tracer import trace_flow
from iptexplain.parse import load

ROOT = Path(__file__).resolve().parent.parent
KUBE = ROOT / "fixtures" / "kube-proxy-k8s-node-flannel.v4.save"


def partition_check(trace, rs):
    """The cells (leaves by origin, overlaps of undecidable branches refined) are disjoint."""
    cs = cells(trace, rs)
    for i, a in enumerate(cs):
        for b in cs[i + 1:]:
            assert meet(a.box, b.box) is None, "two cells overlap"
    return cs


def test_a_rule_refusing_several_parts_keeps_them_all(tmp_path):
    """`-d 10.0.0.10 -p udp` against TCP packets to 10.0.0.0/24 refuses two parts ("not
    10.0.0.10" and "10.0.0.10, not udp"): both go on to the next rule."""
    f = tmp_path / "r.save"
    f.write_text("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n"
                 "-A FORWARD -d 10.0.0.10/32 -p udp -j ACCEPT\n"
                 "-A FORWARD -d 10.0.0.10/32 -p tcp --dport 53 -j DROP\nCOMMIT\n")
    rs = load(str(f), "auto")
    t = trace_flow(rs, Flow(family=4, proto="tcp", dst="10.0.0.0/24"), verbose=False)
    dropped = [lf for lf in t.leaves() if lf.outcome.kind == "dropped"]
    assert len(dropped) == 1
    o = dropped[0].outcome.origin
    assert o.dst == ((0x0A00000A, 0x0A00000A),) and o.dport == ((53, 53),)


@pytest.mark.parametrize("flow", [
    Flow(family=4, proto="tcp", dst="0.0.0.0/0"),
    Flow(family=4, proto="udp", dst="10.96.0.0/12"),
    Flow(family=4, proto="udp", from_host=True, dst="0.0.0.0/0"),
])
def test_origins_partition_and_are_exact_on_a_kube_node(flow):
    rs = load(str(KUBE), "auto")
    t = trace_flow(rs, flow, verbose=False, max_branches=4096)
    cs = partition_check(t, rs)
    assert len(cs) > 3
    rng = random.Random(13)
    for c in cs:
        b, fates = c.box, c.fates
        for _ in range(3):
            p = sample(b, rng)
            if not covers(b, p):  # pragma: no cover - sample draws inside
                raise AssertionError
            f = packet_flow(p, flow, whole_src=b.src == ((0, 0xFFFFFFFF),))
            t2 = trace_flow(rs, f, t.host, verbose=False)
            got = {fate_of(lf) for lf in t2.leaves() if meet(lf.outcome.origin, p) is not None}
            assert got == fates, (f, got, fates)
