"""nft rulesets against the kernel: loaded with ``nft -f`` into a private namespace, a real
connection sent, and where it went compared with the tracer's trace of the same flow.

Each ruleset is built so that the outcome tells the order apart: a base chain running at the
wrong priority, an accept taken as final, a nat chain run at its own priority instead of the
NAT core's, a second nat chain consulted after the first one bound the connection -- each would
move the packet elsewhere.  (The kernel's rule-by-rule path, ``nft monitor trace``, is the nft
kernel lab's; here the outcome and the addresses after NAT judge.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

import kernel_lab
from kernel_lab import HOST, Topology, docker_topology, require_lab
from iptexplain.netfilter import trace as T
from iptexplain.netfilter.tracer import trace_flow
from iptexplain.nft.reader import read_nft
from iptexplain.parse import parse_text
from test_tracer_kernel import host_model, owner_of, tracer_flow

LF = kernel_lab.Flow
SERVER = (Path(__file__).resolve().parent.parent / "fixtures" / "nft" / "inet-server.nft").read_text()


@dataclass(frozen=True)
class Case:
    nft: str
    flows: tuple[kernel_lab.Flow, ...]
    save: str = ""  # iptables rules loaded first (iptables-nft): a host where both stacks run
    topology: Topology = field(default_factory=docker_topology)


TO_C1 = LF("client", "172.17.0.6", 80)

CASES: dict[str, Case] = {
    # The hand-written server: sets, a verdict map, rate limits (the kernel's buckets are full and
    # its dynamic set empty: one of the tracer's branches).
    "inet-server": Case(SERVER, (
        LF("client", "198.51.100.1", 22, listen=(HOST,)),
        LF("client", "198.51.100.1", 443, listen=(HOST,)),
        LF("client", "198.51.100.1", 23, listen=(HOST,)),
        LF("client", "198.51.100.1", 53, proto="udp", listen=(HOST,)),
        LF("client", "198.51.100.1", proto="icmp"),
    )),
    # An accept ends one base chain; the next one on the hook still drops.
    "accept-not-final": Case("""
table inet a {
  chain forward_x { type filter hook forward priority 0; policy accept; accept; }
}
table ip b {
  chain forward_x { type filter hook forward priority 10; policy drop; ct state established accept; tcp dport 81 accept; }
}""", (TO_C1, LF("client", "172.17.0.6", 81))),
    # Priority order: the chain at -10 marks, the one at 0 reads the mark.  (Each ruleset lets the
    # answers through, so that the sender sees the connection the tracer's first packet opens.)
    "priority-order": Case("""
table ip late {
  chain forward_x { type filter hook forward priority 0; policy drop; ct state established accept; meta mark 0x1 accept; }
}
table ip early {
  chain forward_x { type filter hook forward priority -10; policy accept; tcp dport 80 meta mark set 0x1; }
}""", (TO_C1, LF("client", "172.17.0.6", 81))),
    # Every nat chain runs from the NAT core's priority (-100 in prerouting): the filter chain at
    # -120 sees the destination before the DNAT of the nat chain "at" -150.
    "nat-core-priority": Case("""
table ip t {
  chain pre_nat { type nat hook prerouting priority -150; policy accept; tcp dport 8080 dnat to 172.17.0.6:80; }
  chain pre_filter { type filter hook prerouting priority -120; policy accept; ip daddr 172.17.0.6 drop; }
}""", (LF("client", "198.51.100.1", 8080, listen_port=80), TO_C1)),
    # The NAT core stops at the first nat chain that binds the connection.
    "nat-until-bound": Case("""
table ip first {
  chain pre { type nat hook prerouting priority dstnat; policy accept; tcp dport 8080 dnat to 172.17.0.6:80; }
}
table ip second {
  chain pre { type nat hook prerouting priority dstnat + 10; policy accept;
    tcp dport 80 dnat to 172.17.0.7:80
    tcp dport 8081 dnat to 172.17.0.7:80
  }
}""", (LF("client", "198.51.100.1", 8080, listen_port=80), LF("client", "198.51.100.1", 8081, listen_port=80))),
    # A NAT map, a verdict map, masquerade, a numgen choice (kube-proxy's endpoint pick).
    "maps": Case("""
table inet svc {
  map ports {
    type inet_service : ipv4_addr . inet_service
    elements = { 8080 : 172.17.0.6 . 80, 8081 : 172.17.0.7 . 80 }
  }
  chain pre {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr 198.51.100.1 dnat ip to tcp dport map @ports
    ip daddr 198.51.100.1 tcp dport 9000 dnat ip to numgen random mod 2 map { 0 : 172.17.0.6 . 80, 1 : 172.17.0.7 . 80 }
  }
  chain post {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "eth0" masquerade
  }
  chain forward_x {
    type filter hook forward priority filter; policy drop;
    ct state vmap { established : accept, related : accept, invalid : drop }
    iifname . oifname vmap { "eth0" . "docker0" : jump in, "docker0" . "eth0" : accept }
  }
  chain in {
    tcp dport 80 accept
  }
}""", (LF("client", "198.51.100.1", 8080, listen_port=80), LF("client", "198.51.100.1", 8081, listen_port=80),
       LF("c1", "198.51.100.2", 8080), LF("client", "198.51.100.1", 9000, listen_port=80), TO_C1,
       LF("client", "172.17.0.6", 81))),
    # Both stacks on one host: Docker's iptables-nft FORWARD policy DROP still drops what a native
    # table accepts (the LXD ticket), unless an iptables rule accepts it too.
    "mixed-host": Case("""
table inet lxd {
  chain forward_x { type filter hook forward priority filter; policy accept; iifname "eth0" accept; }
}""", (TO_C1, LF("client", "172.17.0.6", 81)), save="""*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate ESTABLISHED -j ACCEPT
-A FORWARD -d 172.17.0.6/32 -p tcp -m tcp --dport 81 -j ACCEPT
COMMIT
"""),
}


def ruleset(case: Case):
    rs = read_nft(case.nft, "<case>")
    if case.save:
        ipt = parse_text(case.save, "<case.save>")
        ipt.nft_tables = rs.nft_tables
        return ipt
    return rs


def check(lab: kernel_lab.Lab, case: Case, flow: kernel_lab.Flow) -> None:
    topo = case.topology
    tr = trace_flow(ruleset(case), tracer_flow(topo, flow), host_model(topo))
    leaves = list(tr.leaves())
    obs = lab.send(flow)
    why = obs.describe() + "\n  tracer:\n" + "\n".join(
        f"    {[c.text for c in l.conditions]} {l.outcome.kind}: {l.outcome.summary}" for l in leaves)

    def agrees(leaf: T.Leaf) -> bool:
        out = leaf.outcome
        if out.kind in (T.FORWARDED, T.SENT):
            if obs.outcome != "delivered" or obs.delivered_to != owner_of(topo, out.packet["dst"]):
                return False
        elif out.kind == T.DELIVERED:
            if (obs.outcome, obs.delivered_to) != ("delivered", HOST):
                return False
        elif out.kind in (T.DROPPED, T.REJECTED):
            return obs.outcome == ("dropped" if out.kind == T.DROPPED else "rejected")
        else:
            return False
        if obs.delivery is not None and obs.delivered_to != flow.src_ns:
            if obs.delivery.dst != out.packet["dst"]:
                return False
            src = out.packet["src"]
            if "," not in src and "-" not in src and " " not in src and obs.delivery.src != src:
                return False
        return True

    decidable = all(not l.conditions for l in leaves)
    if decidable:
        assert len(leaves) == 1 and agrees(leaves[0]), why
    else:
        assert any(agrees(l) for l in leaves), why


@pytest.fixture(scope="module")
def labs(kernel_labs):
    require_lab("nft")
    started: dict[str, kernel_lab.Lab] = {}

    def get(name: str) -> kernel_lab.Lab:
        if name not in started:
            case = CASES[name]
            lab = kernel_labs(case.topology, trace=False)
            if case.save:
                lab.load(case.save, "nft", 4)
            lab.run(HOST, "nft", "-f", "-", input=case.nft)
            started[name] = lab
        return started[name]

    yield get
    for lab in started.values():
        lab.close()


PARAMS = [(name, i) for name, case in CASES.items() for i in range(len(case.flows))]


@pytest.mark.parametrize("name,i", PARAMS, ids=[f"{n}-{i}" for n, i in PARAMS])
def test_nft_tracer_matches_kernel(labs, name: str, i: int) -> None:
    case = CASES[name]
    check(labs(name), case, case.flows[i])


def test_numgen_map_reaches_both_endpoints(labs) -> None:
    """The kernel's numgen picks among the tracer's two branches (p=1/2 each): over 16 new
    connections it takes both (all alike with probability 2 * 2**-16)."""
    lab = labs("maps")
    flows = [LF("client", "198.51.100.1", 9000, listen_port=80)] * 16
    assert {lab.send(f).delivered_to for f in flows} == {"c1", "c2"}
