"""Host inference reads nft rulesets as it reads iptables dumps (iptexplain.host.evidence).

Docker 29's nftables backend says which subnet a bridge carries in nft's words (``oifname !=
"bridge1" ip saddr 192.0.2.0/24 masquerade``).  Without reading them, a trace with no host model
routed a published port's DNATed packet out of the external interface: confidently wrong.  The
lab of ``tests/nft_plans.py`` built the host these rules describe (its answers are the kernel's,
``tests/test_nft_differential.py``); with no host model at all, every case must now end as it
does with that lab's host model.
"""

from __future__ import annotations

import pytest

from iptexplain.host.infer import complete_host
from iptexplain.netfilter.trace import FORWARDED, Flow
from iptexplain.netfilter.tracer import trace_flow
from iptexplain.parse import parse_text
from iptexplain.netfilter.outcome import decided_by
from nft_differential import tracer_input
from nft_plans import DOCKER29
from test_tracer_kernel import host_model, tracer_flow


def _ends(trace, ruleset, family: int) -> list[tuple]:
    return sorted(_ends_of(lf, ruleset, family) for lf in trace.leaves())


@pytest.mark.parametrize("case", DOCKER29.cases, ids=lambda c: c.flow.label)
def test_docker29_nft_without_host_ends_as_in_the_lab(case) -> None:
    rs = tracer_input(DOCKER29).ruleset
    flow = tracer_flow(DOCKER29.topology, case.flow)
    inferred = trace_flow(rs, flow, None)
    lab = trace_flow(rs, flow, host_model(DOCKER29.topology))
    lab_ends = _ends(lab, rs, flow.family)
    assert set(lab_ends) <= set(_ends(inferred, rs, flow.family))
    # Any other way is the honest fork a ruleset cannot settle: whether the destination is one
    # of the host's own addresses (the lab's peer 198.51.100.2 might be, for all the rules say).
    for lf in inferred.leaves():
        end = _ends_of(lf, rs, flow.family)
        if end not in lab_ends:
            assert any("host's own" in c.text or "local address" in c.text for c in lf.conditions), \
                [c.text for c in lf.conditions]


def _ends_of(lf, ruleset, family: int) -> tuple:
    return lf.outcome.kind, lf.outcome.summary, decided_by(lf.outcome, lf.steps, ruleset, family)


def test_docker29_nft_bridges_inferred_from_masquerade_rules() -> None:
    rs = tracer_input(DOCKER29).ruleset
    h = complete_host(None, rs, Flow(proto="tcp", src="203.0.113.5", dst="198.51.100.1", dport=8080))
    assert [str(a.address) + f"/{a.prefixlen}" for a in h.interfaces["bridge1"].addrs] == ["192.0.2.1/24"]
    assert [str(a.address) + f"/{a.prefixlen}" for a in h.interfaces["docker0"].addrs] == ["172.17.0.1/16"]
    assert any("bridge1 carries 192.0.2.0/24" in n and "masquerade" in n for n in h.notes)


def test_published_port_decided_by_the_forward_accept_not_a_nat_policy() -> None:
    """The packet got through because filter-forward-in__bridge1 accepted it; the nat chain's
    policy accept only ends its own base chain (a chain of type nat filters nothing)."""
    rs = tracer_input(DOCKER29).ruleset
    tr = trace_flow(rs, Flow(proto="tcp", src="203.0.113.5", dst="198.51.100.1", dport=8080, iniface="eth0"), None)
    [leaf] = list(tr.leaves())
    assert leaf.outcome.kind == FORWARDED
    who = decided_by(leaf.outcome, leaf.steps, rs, 4)
    assert "filter-forward-in__bridge1 #3" in who and "nat-POSTROUTING" not in who


def test_an_interface_forwarded_into_itself_is_not_the_external_one() -> None:
    """Docker's internal networks have no MASQUERADE; `-i internal1 -o internal1 -j ACCEPT`
    (inter-container traffic) still says internal1 is a bridge, not the way out."""
    text = "\n".join([
        "*filter", ":INPUT ACCEPT [0:0]", ":FORWARD DROP [0:0]", ":OUTPUT ACCEPT [0:0]",
        "-A FORWARD -i internal1 -o internal1 -j ACCEPT",
        "-A FORWARD ! -s 10.99.0.0/24 -o internal1 -j DROP",
        "-A FORWARD -i enp3s0 -p tcp --dport 22 -j ACCEPT", "COMMIT", ""])
    rs = parse_text(text, "t.save")
    h = complete_host(None, rs, Flow(proto="tcp", src="203.0.113.5", dst="198.51.100.1", dport=22))
    default = [r.dev for r in h.routes if r.dst == "default"]
    assert default == ["enp3s0"]
