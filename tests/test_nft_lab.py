"""The nft kernel lab (tests/nft_lab.py) and the nft fixtures (fixtures/nft/) against the kernel.

The parsing tests read ``nft -a monitor trace`` lines recorded from the kernel (6.18, nft
1.0.6).  The kernel tests load each fixture the way tests/nft_fixtures.py made it, check that
the kernel lists it back byte for byte (text and JSON: the fixtures are what a host prints),
and send the plans' flows (tests/nft_plans.py): what the kernel did with the flows whose
answer the rulesets spell out is asserted here; the tracer's agreement on every flow is
tests/test_nft_differential.py's.
"""

from __future__ import annotations

from pathlib import Path

import json
import re

import pytest

import nft_fixtures
import nft_plans
from kernel_lab import Flow, HostIface, Topology
from nft_lab import (TRACE_TABLE, NftLab, NftStep, packet_matches, parse_event, parse_nft_trace)

# A Docker container's SYN to the outside on a host with br_netfilter, as the kernel traced it:
# the bridge's prerouting pass (nat PREROUTING), then the IP stack's, where only the lab's
# NF_IP_PRI_FIRST chain runs before forward and postrouting.
BRIDGED = """\
trace id 13965a09 inet kernel-lab-trace trace-prerouting packet: iif "docker0" ether saddr f6:19:46:f0:fc:b8 ether daddr 2a:53:3d:80:65:dd ip saddr 172.17.0.6 ip daddr 198.51.100.2 ip dscp cs0 ip ecn not-ect ip ttl 64 ip id 30766 ip protocol tcp ip length 60 tcp sport 20003 tcp dport 80 tcp flags == syn tcp window 64240 
trace id 13965a09 inet kernel-lab-trace trace-prerouting rule meta nftrace set 1 # handle 3 (verdict continue)
trace id 13965a09 inet kernel-lab-trace trace-prerouting policy accept 
trace id 13965a09 ip nat PREROUTING packet: iif "docker0" ether saddr f6:19:46:f0:fc:b8 ether daddr 2a:53:3d:80:65:dd ip saddr 172.17.0.6 ip daddr 198.51.100.2 ip dscp cs0 ip ecn not-ect ip ttl 64 ip id 30766 ip length 60 tcp sport 20003 tcp dport 80 tcp flags == syn tcp window 64240 
trace id 13965a09 ip nat PREROUTING policy accept 
trace id 512b7b6d inet kernel-lab-trace trace-prerouting packet: iif "docker0" ether saddr f6:19:46:f0:fc:b8 ether daddr 2a:53:3d:80:65:dd ip saddr 172.17.0.6 ip daddr 198.51.100.2 ip dscp cs0 ip ecn not-ect ip ttl 64 ip id 30766 ip protocol tcp ip length 60 tcp sport 20003 tcp dport 80 tcp flags == syn tcp window 64240 
trace id 512b7b6d inet kernel-lab-trace trace-prerouting rule meta nftrace set 1 # handle 3 (verdict continue)
trace id 512b7b6d inet kernel-lab-trace trace-prerouting policy accept 
trace id 512b7b6d inet lxd fwd.lxdbr0 packet: iif "docker0" oif "eth0" ether saddr f6:19:46:f0:fc:b8 ether daddr 2a:53:3d:80:65:dd ip saddr 172.17.0.6 ip daddr 198.51.100.2 ip dscp cs0 ip ecn not-ect ip ttl 63 ip id 30766 ip protocol tcp ip length 60 tcp sport 20003 tcp dport 80 tcp flags == syn tcp window 64240 
trace id 512b7b6d inet lxd fwd.lxdbr0 policy accept 
trace id 512b7b6d ip filter FORWARD packet: iif "docker0" oif "eth0" ether saddr f6:19:46:f0:fc:b8 ether daddr 2a:53:3d:80:65:dd ip saddr 172.17.0.6 ip daddr 198.51.100.2 ip dscp cs0 ip ecn not-ect ip ttl 63 ip id 30766 ip length 60 tcp sport 20003 tcp dport 80 tcp flags == syn tcp window 64240 
trace id 512b7b6d ip filter FORWARD rule counter packets 0 bytes 0 jump DOCKER-USER # handle 8 (verdict jump DOCKER-USER)
trace id 512b7b6d ip filter DOCKER-USER rule counter packets 0 bytes 0 return # handle 19 (verdict return)
trace id 512b7b6d ip filter FORWARD rule iifname "docker0" oifname != "docker0" counter packets 0 bytes 0 accept # handle 12 (verdict accept)
trace id 512b7b6d ip nat POSTROUTING packet: iif "docker0" oif "eth0" ether saddr f6:19:46:f0:fc:b8 ether daddr 2a:53:3d:80:65:dd ip saddr 172.17.0.6 ip daddr 198.51.100.2 ip dscp cs0 ip ecn not-ect ip ttl 63 ip id 30766 ip length 60 tcp sport 20003 tcp dport 80 tcp flags == syn tcp window 64240 
trace id 512b7b6d ip nat POSTROUTING rule oifname != "docker0" ip saddr 172.17.0.0/16 counter packets 0 bytes 0 masquerade # handle 8 (verdict accept)
trace id 6a15d172 inet kernel-lab-trace trace-prerouting packet: iif "eth0" ether saddr 52:8f:7b:d7:21:bf ether daddr a6:31:f7:5d:89:16 ip saddr 198.51.100.2 ip daddr 198.51.100.1 ip dscp cs0 ip ecn not-ect ip ttl 64 ip id 0 ip protocol tcp ip length 60 tcp sport 80 tcp dport 20003 tcp flags == 0x12 tcp window 65160 
trace id 6a15d172 inet kernel-lab-trace trace-prerouting rule meta nftrace set 1 # handle 3 (verdict continue)
trace id 6a15d172 inet lxd fwd.lxdbr0 packet: iif "eth0" oif "docker0" ether saddr 52:8f:7b:d7:21:bf ether daddr a6:31:f7:5d:89:16 ip saddr 198.51.100.2 ip daddr 172.17.0.6 ip dscp cs0 ip ecn not-ect ip ttl 63 ip id 0 ip protocol tcp ip length 60 tcp sport 80 tcp dport 20003 tcp flags == 0x12 tcp window 65160 
trace id 6a15d172 inet lxd fwd.lxdbr0 policy accept 
"""

# A local datagram to 127.0.0.1:9: output under one id, back in through lo under another.
LOOPED = """\
trace id b7491cdf inet kernel-lab-trace trace-output packet: oif "lo" ip saddr 127.0.0.1 ip daddr 127.0.0.1 ip dscp cs0 ip ecn not-ect ip ttl 64 ip id 18881 ip protocol udp ip length 29 udp sport 61001 udp dport 9 udp length 9 @th,64,8 0x78 
trace id b7491cdf inet kernel-lab-trace trace-output rule meta nftrace set 1 # handle 4 (verdict continue)
trace id b7491cdf inet kernel-lab-trace trace-output policy accept 
trace id 26218f13 inet kernel-lab-trace trace-prerouting packet: iif "lo" @ll,0,112 0x800 ip saddr 127.0.0.1 ip daddr 127.0.0.1 ip dscp cs0 ip ecn not-ect ip ttl 64 ip id 18881 ip protocol udp ip length 29 udp sport 61001 udp dport 9 udp length 9 @th,64,8 0x78 
trace id 26218f13 inet kernel-lab-trace trace-prerouting rule meta nftrace set 1 # handle 3 (verdict continue)
trace id 26218f13 inet kernel-lab-trace trace-prerouting policy accept 
trace id 26218f13 ip t input packet: iif "lo" @ll,0,112 0x800 ip saddr 127.0.0.1 ip daddr 127.0.0.1 ip dscp cs0 ip ecn not-ect ip ttl 64 ip id 18881 ip length 29 udp sport 61001 udp dport 9 udp length 9 @th,64,8 0x78 
trace id 26218f13 ip t input rule udp dport 9 counter packets 0 bytes 0 drop # handle 10 (verdict drop)
"""


def test_parse_event_kinds() -> None:
    tid, step = parse_event("trace id 512b7b6d ip filter FORWARD rule counter packets 3 bytes 180 "
                            "jump DOCKER-USER # handle 8 (verdict jump DOCKER-USER)")
    assert tid == "512b7b6d"
    assert step == NftStep("ip", "filter", "FORWARD", "rule", "jump DOCKER-USER",
                           rule="counter jump DOCKER-USER", handle=8)
    _, pol = parse_event("trace id 1 ip kube-proxy filter-forward policy accept meta mark 0x00004000 ")
    assert (pol.kind, pol.verdict, pol.rule, pol.handle) == ("policy", "accept", None, None)
    _, vm = parse_event("trace id 2 inet firewalld filter_IN_public rule meta l4proto tcp ip saddr "
                        "!= @admins reject with tcp reset # handle 12 (verdict drop)")
    assert (vm.verdict, vm.handle) == ("drop", 12)
    _, slashy = parse_event("trace id 3 ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 rule numgen "
                            "random mod 1 vmap { 0 : goto endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 } "
                            "# handle 61 (verdict goto endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80)")
    assert slashy.chain == "service-ULMVA6XW-ns1/svc1/tcp/p80"
    assert slashy.verdict == "goto endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"
    _, hdr = parse_event(BRIDGED.splitlines()[0])
    assert (hdr.src, hdr.dst, hdr.sport, hdr.dport, hdr.iif) == ("172.17.0.6", "198.51.100.2", 20003, 80, "docker0")
    assert hdr.get("tcp flags") == "syn"
    assert parse_event("trace id zz not a trace line") is None


def test_bridged_packet_is_one_packet_across_its_two_prerouting_passes() -> None:
    packets = parse_nft_trace(BRIDGED.splitlines())
    assert len(packets) == 2  # the SYN, and the SYN-ACK coming back
    syn, synack = packets
    assert syn.trace_ids == ["13965a09", "512b7b6d"]
    assert [s.key for s in syn.steps] == [
        ("ip", "nat", "PREROUTING", None, "accept"),
        ("inet", "lxd", "fwd.lxdbr0", None, "accept"),
        ("ip", "filter", "FORWARD", 8, "jump DOCKER-USER"),
        ("ip", "filter", "DOCKER-USER", 19, "return"),
        ("ip", "filter", "FORWARD", 12, "accept"),
        ("ip", "nat", "POSTROUTING", 8, "accept"),
    ]
    assert all(s.table != TRACE_TABLE for p in packets for s in p.steps)
    assert synack.first is not None and synack.first.sport == 80
    assert packet_matches(syn.first, Flow("c1", "198.51.100.2", 80), 20003)
    assert not packet_matches(synack.first, Flow("c1", "198.51.100.2", 80), 20003)


def test_looped_packet_is_one_packet() -> None:
    packets = parse_nft_trace(LOOPED.splitlines())
    assert len(packets) == 1
    assert [s.key for s in packets[0].steps] == [("ip", "t", "input", 10, "drop")]


# ---------------------------------------------------------------------------------------------
# The kernel


@pytest.mark.parametrize("fx", nft_fixtures.NFT_FIXTURES, ids=lambda f: f.name)
def test_fixture_is_what_the_kernel_lists(kernel_labs, fx: nft_fixtures.NftFixture) -> None:
    """Loaded as tests/nft_fixtures.py loads it, the kernel lists each fixture back unchanged:
    the text (the lab's own table aside) and the JSON with the same handles."""
    lab = kernel_labs(Topology(ifaces=[HostIface("eth0", "198.51.100.1/24")]), cls=NftLab)
    lab.load_fixture(fx)
    # The lab's probe packets move counters; the fixtures were listed before any packet.
    assert _zero(lab.ruleset()) == Path(fx.text_path).read_text()
    listed = json.loads(_zero(lab.ruleset(json=True)))["nftables"]
    listed = [o for o in listed if TRACE_TABLE not in json.dumps(o)]
    assert listed == json.loads(Path(fx.json_path).read_text())["nftables"]


def _zero(text: str) -> str:
    text = re.sub(r"counter packets \d+ bytes \d+", "counter packets 0 bytes 0", text)
    return re.sub(r'"counter": \{"packets": \d+, "bytes": \d+\}', '"counter": {"packets": 0, "bytes": 0}', text)


@pytest.fixture(scope="module")
def plan_observations(kernel_labs) -> dict[str, dict[str, object]]:
    """Every plan's flows sent once through the kernel: {fixture: {label: Observation}}."""
    out: dict[str, dict[str, object]] = {}
    for plan in nft_plans.KERNEL_PLANS:
        lab = kernel_labs(plan.topology, cls=NftLab)
        lab.load_fixture(nft_fixtures.fixture(plan.fixture))
        out[plan.fixture] = {c.flow.label: lab.send(c.flow) for c in plan.cases}
    return out


@pytest.mark.parametrize("plan", nft_plans.KERNEL_PLANS, ids=lambda p: p.name)
def test_every_flow_is_traced_through_the_fixture(plan_observations, plan: nft_plans.NftPlan) -> None:
    """The kernel's path of every flow's first packet is there, in the fixture's own tables,
    with handles for its rules, and ends where the packet ended."""
    text = Path(nft_fixtures.fixture(plan.fixture).text_path).read_text()
    for case in plan.cases:
        obs = plan_observations[plan.fixture][case.flow.label]
        assert obs.steps, obs.describe()
        for s in obs.steps:
            assert f"table {s.family} {s.table} {{" in text, obs.describe()
            assert s.kind != "rule" or s.handle is not None, obs.describe()
        last = obs.steps[-1]
        if obs.outcome == "dropped":
            assert last.verdict == "drop", obs.describe()
        if obs.outcome == "delivered":
            assert all(s.verdict != "drop" for s in obs.steps), obs.describe()


def _obs(plan_observations, fixture: str, label_start: str):
    for label, obs in plan_observations[fixture].items():
        if label.startswith(label_start):
            return obs
    raise KeyError(label_start)


def test_mixed_host_lxd_accepts_and_docker_policy_still_drops(plan_observations) -> None:
    """LXD's forward chain (registered last, so first at priority 0) accepts the container's
    packet; the accept ends only LXD's chain, and iptables-nft's filter FORWARD policy drops."""
    obs = _obs(plan_observations, "mixed-docker-lxd", "LXD container out")
    keys = [s.key for s in obs.steps]
    assert ("inet", "lxd", "fwd.lxdbr0", 7, "accept") in keys, obs.describe()
    assert keys[-1] == ("ip", "filter", "FORWARD", None, "drop"), obs.describe()
    assert keys.index(("inet", "lxd", "fwd.lxdbr0", 7, "accept")) < len(keys) - 1
    assert obs.outcome == "dropped"
    docker = _obs(plan_observations, "mixed-docker-lxd", "Docker's published port")
    assert docker.delivery is not None and docker.delivery.tuple[2:] == ("172.17.0.6", 9525), docker.describe()


def test_docker29_published_port_and_direct_access(plan_observations) -> None:
    pub = _obs(plan_observations, "docker29-nftables", "published port")
    assert pub.delivered_to == "c1" and pub.delivery.tuple[2:] == ("192.0.2.2", 80), pub.describe()
    direct = _obs(plan_observations, "docker29-nftables", "direct access to the container")
    assert [s.key[:3] for s in direct.steps] == [("ip", "docker-bridges", "raw-PREROUTING")]
    assert direct.outcome == "dropped"


def test_kube_proxy_service_paths(plan_observations) -> None:
    fork = _obs(plan_observations, "kube-proxy-nftables", "ExternalIP, two endpoints")
    assert fork.delivered_to in ("p4", "p5"), fork.describe()
    unalloc = _obs(plan_observations, "kube-proxy-nftables", "unallocated ClusterIP")
    assert unalloc.steps[-1].chain == "cluster-ips-check" and unalloc.outcome == "dropped"
    noep = _obs(plan_observations, "kube-proxy-nftables", "ClusterIP without endpoints")
    assert [s.chain for s in noep.steps][-2:] == ["service-endpoints-check", "reject-chain"]
    assert noep.outcome == "rejected"

