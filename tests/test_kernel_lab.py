"""The kernel lab itself, and the kernel's verdicts on the seed Docker ruleset.

The expectations below were observed on the real kernel (6.18, iptables 1.8.9) through
the lab, then written down: they are what the tracer has to reproduce for these flows.
``SEED_FLOWS`` holds, per flow, the first packet's path as xtables-monitor prints it (nft
backend) and the set of rules/policies whose counters moved over the whole connection
(identical on both backends).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

from kernel_lab import (HOST, Flow, HostIface, Lab, Peer, Topology, counter_deltas,
                        docker_topology, normalize_verdict, parse_save, parse_trace, require_lab)

SEED = Path(__file__).resolve().parent.parent / "fixtures" / "seed-docker.v4.save"
SPORT = "<sport>"  # stands for the source port the lab picked for the flow

# Rules of the seed, as iptables-save prints them.
NAT_PRE_DOCKER = "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER"
NAT_OUT_DOCKER = "-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER"
NAT_MASQ = "-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE"
NAT_DNAT = "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 9525 -j DNAT --to-destination 172.17.0.6:9525"
FWD_USER = "-A FORWARD -j DOCKER-USER"
FWD_ISO1 = "-A FORWARD -j DOCKER-ISOLATION-STAGE-1"
FWD_ESTAB = "-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
FWD_DOCKER = "-A FORWARD -o docker0 -j DOCKER"
FWD_OUT = "-A FORWARD -i docker0 ! -o docker0 -j ACCEPT"
FWD_INTRA = "-A FORWARD -i docker0 -o docker0 -j ACCEPT"
DOCKER_ACCEPT = "-A DOCKER -d 172.17.0.6/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 9525 -j ACCEPT"
ISO1_JUMP = "-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2"
ISO1_RET = "-A DOCKER-ISOLATION-STAGE-1 -j RETURN"
ISO2_RET = "-A DOCKER-ISOLATION-STAGE-2 -j RETURN"
USER_RET = "-A DOCKER-USER -j RETURN"


@dataclass(frozen=True)
class Expect:
    """What the kernel does with one flow of the seed (the tracer's target)."""

    flow: Flow
    outcome: str
    sender: str
    delivered_to: Optional[str]
    arrival: Optional[tuple]
    path: list[tuple[str, str, Optional[str], str]]
    hits: set[tuple[str, str, Optional[str]]]
    needs_bridge_nf: bool = False


FORWARD_OUTBOUND = [  # a packet from docker0 to the outside, through the seed's FORWARD
    ("filter", "FORWARD", FWD_USER, "JUMP:DOCKER-USER"),
    ("filter", "DOCKER-USER", USER_RET, "RETURN"),
    ("filter", "FORWARD", FWD_ISO1, "JUMP:DOCKER-ISOLATION-STAGE-1"),
    ("filter", "DOCKER-ISOLATION-STAGE-1", ISO1_JUMP, "JUMP:DOCKER-ISOLATION-STAGE-2"),
    ("filter", "DOCKER-ISOLATION-STAGE-2", ISO2_RET, "RETURN"),
    ("filter", "DOCKER-ISOLATION-STAGE-1", ISO1_RET, "RETURN"),
    ("filter", "FORWARD", FWD_OUT, "ACCEPT"),
]

SEED_FLOWS: dict[str, Expect] = {
    # (1) Published port from outside: DNAT in nat PREROUTING → FORWARD, never INPUT.
    "outside-to-published": Expect(
        flow=Flow("client", "198.51.100.1", 9525),
        outcome="delivered", sender="connected", delivered_to="c1",
        arrival=("198.51.100.2", SPORT, "172.17.0.6", 9525),
        path=[
            ("nat", "PREROUTING", NAT_PRE_DOCKER, "JUMP:DOCKER"),
            ("nat", "DOCKER", NAT_DNAT, "ACCEPT"),
            ("filter", "FORWARD", FWD_USER, "JUMP:DOCKER-USER"),
            ("filter", "DOCKER-USER", USER_RET, "RETURN"),
            ("filter", "FORWARD", FWD_ISO1, "JUMP:DOCKER-ISOLATION-STAGE-1"),
            ("filter", "DOCKER-ISOLATION-STAGE-1", ISO1_RET, "RETURN"),
            ("filter", "FORWARD", FWD_DOCKER, "JUMP:DOCKER"),
            ("filter", "DOCKER", DOCKER_ACCEPT, "ACCEPT"),
            ("nat", "POSTROUTING", None, "ACCEPT"),
        ],
        hits={
            ("nat", "PREROUTING", NAT_PRE_DOCKER), ("nat", "DOCKER", NAT_DNAT),
            ("nat", "POSTROUTING", None),
            ("filter", "FORWARD", FWD_USER), ("filter", "FORWARD", FWD_ISO1),
            ("filter", "FORWARD", FWD_ESTAB), ("filter", "FORWARD", FWD_DOCKER),
            ("filter", "FORWARD", FWD_OUT),  # the container's SYN-ACK
            ("filter", "DOCKER", DOCKER_ACCEPT), ("filter", "DOCKER-USER", USER_RET),
            ("filter", "DOCKER-ISOLATION-STAGE-1", ISO1_JUMP),
            ("filter", "DOCKER-ISOLATION-STAGE-1", ISO1_RET),
            ("filter", "DOCKER-ISOLATION-STAGE-2", ISO2_RET),
        }),
    # (2) The host's own port 22 from outside: nat DOCKER is entered and fallen off (no
    # event), the policies accept, and the host's TCP answers RST (nothing listens).
    "outside-to-host-22": Expect(
        flow=Flow("client", "198.51.100.1", 22),
        outcome="rejected", sender="refused", delivered_to=HOST,
        arrival=("198.51.100.2", SPORT, "198.51.100.1", 22),
        path=[
            ("nat", "PREROUTING", NAT_PRE_DOCKER, "JUMP:DOCKER"),
            ("nat", "PREROUTING", None, "ACCEPT"),
            ("filter", "INPUT", None, "ACCEPT"),
            ("nat", "INPUT", None, "ACCEPT"),
        ],
        hits={
            ("nat", "PREROUTING", NAT_PRE_DOCKER), ("nat", "PREROUTING", None),
            ("filter", "INPUT", None), ("nat", "INPUT", None),
            ("filter", "OUTPUT", None),  # the RST; a reply: nat OUTPUT is not consulted
        }),
    # (3) Container to the outside: FORWARD out of docker0, MASQUERADE to eth0's address.
    "container-to-outside": Expect(
        flow=Flow("c1", "198.51.100.2", 8080),
        outcome="delivered", sender="connected", delivered_to="client",
        arrival=("198.51.100.1", SPORT, "198.51.100.2", 8080),
        path=[("nat", "PREROUTING", None, "ACCEPT")] + FORWARD_OUTBOUND
        + [("nat", "POSTROUTING", NAT_MASQ, "ACCEPT")],
        hits={
            ("nat", "PREROUTING", None), ("nat", "POSTROUTING", NAT_MASQ),
            ("filter", "FORWARD", FWD_USER), ("filter", "FORWARD", FWD_ISO1),
            ("filter", "FORWARD", FWD_ESTAB), ("filter", "FORWARD", FWD_OUT),
            ("filter", "DOCKER-USER", USER_RET),
            ("filter", "DOCKER-ISOLATION-STAGE-1", ISO1_JUMP),
            ("filter", "DOCKER-ISOLATION-STAGE-1", ISO1_RET),
            ("filter", "DOCKER-ISOLATION-STAGE-2", ISO2_RET),
        }),
    # (4) A host process to the published port: nat OUTPUT DNATs, the packet leaves by
    # docker0 with the host's eth0 address as source (chosen before the DNAT).
    "host-to-published": Expect(
        flow=Flow(HOST, "198.51.100.1", 9525),
        outcome="delivered", sender="connected", delivered_to="c1",
        arrival=("198.51.100.1", SPORT, "172.17.0.6", 9525),
        path=[
            ("nat", "OUTPUT", NAT_OUT_DOCKER, "JUMP:DOCKER"),
            ("nat", "DOCKER", NAT_DNAT, "ACCEPT"),
            ("filter", "OUTPUT", None, "ACCEPT"),
            ("nat", "POSTROUTING", None, "ACCEPT"),
        ],
        hits={
            ("nat", "OUTPUT", NAT_OUT_DOCKER), ("nat", "DOCKER", NAT_DNAT),
            ("nat", "POSTROUTING", None), ("filter", "OUTPUT", None),
            ("filter", "INPUT", None),  # the container's SYN-ACK
        }),
    # (5) Container to container on docker0 (bridge-nf): FORWARD -i docker0 -o docker0.
    "container-to-container": Expect(
        flow=Flow("c1", "172.17.0.7", 80),
        outcome="delivered", sender="connected", delivered_to="c2",
        arrival=("172.17.0.6", SPORT, "172.17.0.7", 80),
        path=[
            ("nat", "PREROUTING", None, "ACCEPT"),
            ("filter", "FORWARD", FWD_USER, "JUMP:DOCKER-USER"),
            ("filter", "DOCKER-USER", USER_RET, "RETURN"),
            ("filter", "FORWARD", FWD_ISO1, "JUMP:DOCKER-ISOLATION-STAGE-1"),
            ("filter", "DOCKER-ISOLATION-STAGE-1", ISO1_RET, "RETURN"),
            ("filter", "FORWARD", FWD_DOCKER, "JUMP:DOCKER"),
            ("filter", "FORWARD", FWD_INTRA, "ACCEPT"),
            ("nat", "POSTROUTING", None, "ACCEPT"),
        ],
        hits={
            ("nat", "PREROUTING", None), ("nat", "POSTROUTING", None),
            ("filter", "FORWARD", FWD_USER), ("filter", "FORWARD", FWD_ISO1),
            ("filter", "FORWARD", FWD_ESTAB), ("filter", "FORWARD", FWD_DOCKER),
            ("filter", "FORWARD", FWD_INTRA),
            ("filter", "DOCKER-USER", USER_RET), ("filter", "DOCKER-ISOLATION-STAGE-1", ISO1_RET),
        },
        needs_bridge_nf=True),
    # Outside straight to the container's address on its published port (a router that
    # routes 172.17.0.0/16 to the host): filter DOCKER accepts it, no NAT involved
    # (Docker 28 added raw PREROUTING drops for exactly this).
    "outside-to-container-address-published": Expect(
        flow=Flow("client", "172.17.0.6", 9525),
        outcome="delivered", sender="connected", delivered_to="c1",
        arrival=("198.51.100.2", SPORT, "172.17.0.6", 9525),
        path=[
            ("nat", "PREROUTING", None, "ACCEPT"),
            ("filter", "FORWARD", FWD_USER, "JUMP:DOCKER-USER"),
            ("filter", "DOCKER-USER", USER_RET, "RETURN"),
            ("filter", "FORWARD", FWD_ISO1, "JUMP:DOCKER-ISOLATION-STAGE-1"),
            ("filter", "DOCKER-ISOLATION-STAGE-1", ISO1_RET, "RETURN"),
            ("filter", "FORWARD", FWD_DOCKER, "JUMP:DOCKER"),
            ("filter", "DOCKER", DOCKER_ACCEPT, "ACCEPT"),
            ("nat", "POSTROUTING", None, "ACCEPT"),
        ],
        hits={
            ("nat", "PREROUTING", None), ("nat", "POSTROUTING", None),
            ("filter", "FORWARD", FWD_USER), ("filter", "FORWARD", FWD_ISO1),
            ("filter", "FORWARD", FWD_ESTAB), ("filter", "FORWARD", FWD_DOCKER),
            ("filter", "FORWARD", FWD_OUT),
            ("filter", "DOCKER", DOCKER_ACCEPT), ("filter", "DOCKER-USER", USER_RET),
            ("filter", "DOCKER-ISOLATION-STAGE-1", ISO1_JUMP),
            ("filter", "DOCKER-ISOLATION-STAGE-1", ISO1_RET),
            ("filter", "DOCKER-ISOLATION-STAGE-2", ISO2_RET),
        }),
    # Outside straight to the container's address on a port not published: FORWARD
    # falls through DOCKER and its policy DROP decides.
    "outside-to-container-address-unpublished": Expect(
        flow=Flow("client", "172.17.0.6", 80),
        outcome="dropped", sender="timeout", delivered_to=None, arrival=None,
        path=[
            ("nat", "PREROUTING", None, "ACCEPT"),
            ("filter", "FORWARD", FWD_USER, "JUMP:DOCKER-USER"),
            ("filter", "DOCKER-USER", USER_RET, "RETURN"),
            ("filter", "FORWARD", FWD_ISO1, "JUMP:DOCKER-ISOLATION-STAGE-1"),
            ("filter", "DOCKER-ISOLATION-STAGE-1", ISO1_RET, "RETURN"),
            ("filter", "FORWARD", FWD_DOCKER, "JUMP:DOCKER"),
            ("filter", "FORWARD", None, "DROP"),
        ],
        hits={
            ("nat", "PREROUTING", None), ("filter", "FORWARD", FWD_USER),
            ("filter", "FORWARD", FWD_ISO1), ("filter", "FORWARD", FWD_DOCKER),
            ("filter", "DOCKER-USER", USER_RET), ("filter", "DOCKER-ISOLATION-STAGE-1", ISO1_RET),
            ("filter", "FORWARD", None),
        }),
    # A container to its own published port through the host address: the seed's nat
    # DOCKER returns for -i docker0 (hairpin went through docker-proxy in Docker 19/20),
    # so the SYN reaches the host's TCP, which answers RST.
    "container-to-published-port": Expect(
        flow=Flow("c1", "198.51.100.1", 9525),
        outcome="rejected", sender="refused", delivered_to=HOST,
        arrival=("172.17.0.6", SPORT, "198.51.100.1", 9525),
        path=[
            ("nat", "PREROUTING", NAT_PRE_DOCKER, "JUMP:DOCKER"),
            ("nat", "DOCKER", "-A DOCKER -i docker0 -j RETURN", "RETURN"),
            ("nat", "PREROUTING", None, "ACCEPT"),
            ("filter", "INPUT", None, "ACCEPT"),
            ("nat", "INPUT", None, "ACCEPT"),
        ],
        hits={
            ("nat", "PREROUTING", NAT_PRE_DOCKER), ("nat", "DOCKER", "-A DOCKER -i docker0 -j RETURN"),
            ("nat", "PREROUTING", None), ("filter", "INPUT", None), ("nat", "INPUT", None),
            ("filter", "OUTPUT", None),
        }),
    # ICMP echo to the host: INPUT; the kernel answers the echo itself.
    "outside-ping-host": Expect(
        flow=Flow("client", "198.51.100.1", proto="icmp"),
        outcome="delivered", sender="replied", delivered_to=HOST,
        arrival=("198.51.100.2", None, "198.51.100.1", None),
        path=[
            ("nat", "PREROUTING", NAT_PRE_DOCKER, "JUMP:DOCKER"),
            ("nat", "PREROUTING", None, "ACCEPT"),
            ("filter", "INPUT", None, "ACCEPT"),
            ("nat", "INPUT", None, "ACCEPT"),
        ],
        hits={
            ("nat", "PREROUTING", NAT_PRE_DOCKER), ("nat", "PREROUTING", None),
            ("filter", "INPUT", None), ("nat", "INPUT", None), ("filter", "OUTPUT", None),
        }),
    # UDP from a container: the same FORWARD path and MASQUERADE as TCP.
    "container-udp-to-outside": Expect(
        flow=Flow("c1", "198.51.100.2", 53, proto="udp"),
        outcome="delivered", sender="replied", delivered_to="client",
        arrival=("198.51.100.1", SPORT, "198.51.100.2", 53),
        path=[("nat", "PREROUTING", None, "ACCEPT")] + FORWARD_OUTBOUND
        + [("nat", "POSTROUTING", NAT_MASQ, "ACCEPT")],
        hits={
            ("nat", "PREROUTING", None), ("nat", "POSTROUTING", NAT_MASQ),
            ("filter", "FORWARD", FWD_USER), ("filter", "FORWARD", FWD_ISO1),
            ("filter", "FORWARD", FWD_ESTAB), ("filter", "FORWARD", FWD_OUT),
            ("filter", "DOCKER-USER", USER_RET),
            ("filter", "DOCKER-ISOLATION-STAGE-1", ISO1_JUMP),
            ("filter", "DOCKER-ISOLATION-STAGE-1", ISO1_RET),
            ("filter", "DOCKER-ISOLATION-STAGE-2", ISO2_RET),
        }),
}


# ----------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module", params=["nft", "legacy"])
def seed_lab(request, kernel_labs):
    """The seed's Docker host with the seed ruleset, one lab per backend."""
    require_lab(request.param)
    lab = kernel_labs(docker_topology())
    try:
        lab.load(SEED.read_text(), request.param)
        yield lab
    finally:
        lab.close()


def _expected_arrival(exp: Expect, sport: int) -> Optional[tuple]:
    if exp.arrival is None:
        return None
    return tuple(sport if v == SPORT else v for v in exp.arrival)


# ----------------------------------------------------------------------------------
# The seed's flows, judged by the kernel on both backends


@pytest.mark.parametrize("name", list(SEED_FLOWS))
def test_seed_flow(seed_lab: Lab, name: str) -> None:
    exp = SEED_FLOWS[name]
    if exp.needs_bridge_nf and not seed_lab.bridge_nf:
        pytest.skip(seed_lab.bridge_nf_reason)
    obs = seed_lab.send(exp.flow)
    why = obs.describe()
    assert obs.sender.status == exp.sender, why
    assert obs.outcome == exp.outcome, why
    assert obs.delivered_to == exp.delivered_to, why
    got_arrival = obs.delivery.tuple if obs.delivery else None
    assert got_arrival == _expected_arrival(exp, obs.sport), why
    backend = seed_lab.loaded[4].backend
    if backend == "nft":
        # The kernel's own account, step by step.
        assert obs.path() == exp.path, why
        assert not [n for n in obs.notes if "incomplete" in n or "not appear" in n], why
    else:
        assert obs.steps is None
    # Counters: the same rules move on both backends; every rule of the first
    # packet's path is among them.
    assert obs.hits() == exp.hits, why
    path_rules = {(t, c, r) for t, c, r, _ in exp.path if r is not None}
    assert path_rules <= obs.hits(), why


def test_seed_dnat_addresses_at_each_hook(seed_lab: Lab) -> None:
    """The PACKET lines show the destination before and after the DNAT (nft backend;
    with legacy only the receiver's view of the addresses is there)."""
    obs = seed_lab.send(Flow("client", "198.51.100.1", 9525))
    assert obs.delivery.tuple == ("198.51.100.2", obs.sport, "172.17.0.6", 9525)
    if seed_lab.loaded[4].backend != "nft":
        assert obs.steps is None and obs.packets is None
        return
    by_chain = {(s.table, s.chain): s.packet for s in obs.steps or [] if s.packet is not None}
    assert by_chain[("nat", "PREROUTING")].dst == "198.51.100.1", obs.describe()
    assert by_chain[("filter", "FORWARD")].dst == "172.17.0.6", obs.describe()
    assert by_chain[("filter", "FORWARD")].iif == "eth0"
    assert by_chain[("filter", "FORWARD")].oif == "docker0"
    assert by_chain[("filter", "FORWARD")].sport == obs.sport


def test_seed_source_address_from_elsewhere(seed_lab: Lab) -> None:
    """Any source address: added to the client on the fly, with a route back."""
    obs = seed_lab.send(Flow("client", "198.51.100.1", 9525, src="203.0.113.7"))
    assert obs.outcome == "delivered", obs.describe()
    assert obs.delivery is not None and obs.delivery.tuple == ("203.0.113.7", obs.sport, "172.17.0.6", 9525)


def test_save_shows_counters_and_lab_trace(seed_lab: Lab) -> None:
    text = seed_lab.save(counters=True)
    assert "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 9525 -j DNAT" in text
    assert text.count("[") > 10  # counters present
    if seed_lab.loaded[4].backend == "nft":
        assert "-A PREROUTING -j TRACE" in text


# ----------------------------------------------------------------------------------
# Many flows over one topology


def _varied_flows() -> list[Flow]:
    flows: list[Flow] = []
    for i in range(10):
        flows += [
            Flow("client", "198.51.100.1", 9525),                       # published
            Flow("client", "198.51.100.1", 22),                         # host, RST
            Flow("c1", "198.51.100.2", 8000 + i),                       # outbound tcp
            Flow("c2", "198.51.100.2", 53, proto="udp"),                # outbound udp
            Flow(HOST, "198.51.100.1", 9525),                           # local to published
            Flow("c1", "172.17.0.7", 80 + i),                           # intra-bridge
            Flow("client", "198.51.100.1", proto="icmp"),               # ping host
            Flow("c2", "198.51.100.2", proto="icmp"),                   # ping outside
            Flow("client", "198.51.100.1", 9525, src=f"203.0.113.{i + 10}"),  # other sources
            Flow("client", "172.17.0.7", 80) if i % 3 == 0 else Flow(HOST, "172.17.0.6", 9000 + i),
        ]
    return flows


def test_hundred_flows_over_one_topology(kernel_labs) -> None:
    require_lab("nft")
    lab = kernel_labs(docker_topology())
    lab.load(SEED.read_text(), "nft")
    flows = _varied_flows()
    assert len(flows) == 100
    t0 = time.monotonic()
    observations = lab.send_all(flows)
    took = time.monotonic() - t0
    print(f"\nkernel lab: {len(flows)} flows in {took:.2f}s "
          f"({sum(o.outcome == 'dropped' for o in observations)} dropped after the "
          f"{lab.timeout}s timeout)")
    paths: dict[str, set] = {}
    for obs in observations:
        assert obs.outcome in ("delivered", "rejected", "dropped"), obs.describe()
        assert obs.steps, obs.describe()  # the first packet was found in the trace
        key = f"{obs.flow.proto} {obs.flow.src_ns} {obs.flow.dst} {obs.flow.dport} {obs.flow.src is None}"
        paths.setdefault(key, set()).add((obs.outcome, tuple(obs.path() or ())))
    # Same kind of flow, same kernel answer: the lab itself adds no noise.
    for key, seen in paths.items():
        assert len(seen) == 1, (key, seen)


# ----------------------------------------------------------------------------------
# Each observation holds its own flow's packets, and nothing else


class _NoisyLab(Lab):
    """A lab where a foreign connection (client UDP to the host's port 7, answered by
    an ICMP port unreachable) is sent right after the first flow's counter snapshot, as a
    late packet of something else would arrive on a loaded machine."""

    noise_sent = 0

    def _quiet_save(self, family, notes):
        text = super()._quiet_save(family, notes)
        if self.noise_sent == 0:
            self.noise_sent += 1
            self.agents["client"].call("send", proto="udp", family=4, src=None, sport=5555,
                                       dst="198.51.100.1", dport=7, timeout=0.2, token="noise")
        return text


@pytest.mark.parametrize("backend", ["nft", "legacy"])
def test_foreign_packet_during_a_flow_is_detected_and_the_flow_sent_again(backend: str) -> None:
    require_lab(backend)
    exp = SEED_FLOWS["outside-to-published"]
    with _NoisyLab(docker_topology()) as lab:
        lab.load(SEED.read_text(), backend)
        obs = lab.send(exp.flow)
    why = obs.describe()
    assert lab.noise_sent == 1
    # The first attempt saw the foreign connection in conntrack and was thrown away...
    assert any(n.startswith("attempt 1: foreign connections") and "dport=7" in n
               for n in obs.notes), why
    # ...the observation kept is exactly the flow's.
    assert obs.outcome == exp.outcome, why
    assert obs.hits() == exp.hits, why
    if backend == "nft":
        assert obs.path() == exp.path, why


def test_listeners_move_between_ports_and_namespaces() -> None:
    """Listeners follow each flow (closed, then bound again a flow later): no port is
    still held by the previous flow's listener or connections."""
    require_lab("nft")
    rules = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
    with Lab(docker_topology()) as lab:
        lab.load(rules, "nft")
        for i in range(12):
            port = (2222, 8080, 2222)[i % 3]
            where = (HOST,) if i % 2 else ("c1",)
            dst = "198.51.100.1" if where == (HOST,) else "172.17.0.6"
            obs = lab.send(Flow("client", dst, port, listen=where))
            assert obs.outcome == "delivered", obs.describe()
            assert obs.delivered_to == where[0], obs.describe()
            assert obs.hits() >= {("filter", "INPUT" if where == (HOST,) else "FORWARD", None)}, obs.describe()
            assert not [n for n in obs.notes if "foreign" in n or "still" in n], obs.describe()


# ----------------------------------------------------------------------------------
# Isolation and cleanup


def test_lab_cleans_up_after_itself() -> None:
    require_lab("nft")
    topo = Topology(ifaces=[HostIface("eth0", "198.51.100.1/24", peers=[Peer("kl-cleanup", "198.51.100.2/24")])])
    lab = Lab(topo).start()
    procs = [lab.holder] + [a.proc for a in lab.agents.values()]
    lab.load("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n", "nft")
    procs.append(lab.monitor.proc)
    obs = lab.send(Flow("kl-cleanup", "198.51.100.1", proto="icmp"))
    assert obs.outcome == "delivered", obs.describe()
    lab.close()
    assert all(p.poll() is not None for p in procs)
    assert not os.path.exists("/run/netns/kl-cleanup")  # nothing in the machine's /run


def test_ruleset_stays_inside_the_lab() -> None:
    """A lab's rules are invisible outside it (checked from a second, empty lab, so as not
    to create tables in the machine's own namespace by looking)."""
    require_lab("nft")
    topo = Topology(ifaces=[HostIface("dummy0", "192.0.2.1/24")])
    with Lab(topo) as a, Lab(topo) as b:
        a.load("*filter\n:INPUT DROP [0:0]\n-A INPUT -s 192.0.2.9/32 -j ACCEPT\nCOMMIT\n", "nft")
        assert "192.0.2.9" in a.save()
        assert "192.0.2.9" not in b.run(HOST, "iptables-nft-save").stdout


# ----------------------------------------------------------------------------------
# Parsers (no root needed)

MONITOR_SAMPLE = """\
PACKET: 2 bbe12c03 IN=eth0 MACSRC=ca:ae:2e:bd:5e:d9 MACDST=ea:86:45:7b:df:ad MACPROTO=0800 SRC=198.51.100.2 DST=198.51.100.1 LEN=60 TOS=0x0 TTL=64 ID=64908 DF SPORT=44898 DPORT=9525 SYN 
 TRACE: 2 bbe12c03 raw:PREROUTING:rule:0x2:CONTINUE  -4 -t raw -A PREROUTING -j TRACE
 TRACE: 2 bbe12c03 raw:PREROUTING:policy:ACCEPT 
PACKET: 2 bbe12c03 IN=eth0 MACSRC=ca:ae:2e:bd:5e:d9 MACDST=ea:86:45:7b:df:ad MACPROTO=0800 SRC=198.51.100.2 DST=198.51.100.1 LEN=60 TOS=0x0 TTL=64 ID=64908 DF SPORT=44898 DPORT=9525 SYN 
 TRACE: 2 bbe12c03 nat:PREROUTING:rule:0x6:JUMP:DOCKER  -4 -t nat -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
 TRACE: 2 bbe12c03 nat:DOCKER:rule:0xb:ACCEPT  -4 -t nat -A DOCKER ! -i docker0 -p tcp -m tcp --dport 9525 -j DNAT --to-destination 172.17.0.6:9525
PACKET: 2 bbe12c03 IN=eth0 OUT=docker0 MACSRC=ca:ae:2e:bd:5e:d9 MACDST=ea:86:45:7b:df:ad MACPROTO=0800 SRC=198.51.100.2 DST=172.17.0.6 LEN=60 TOS=0x0 TTL=63 ID=64908 DF SPORT=44898 DPORT=9525 SYN 
 TRACE: 2 bbe12c03 filter:FORWARD:rule:0x8:JUMP:DOCKER-USER  -4 -t filter -A FORWARD -j DOCKER-USER
 TRACE: 2 bbe12c03 filter:DOCKER-USER:rule:0x13:0xfffffffb  -4 -t filter -A DOCKER-USER -j RETURN
PACKET: 2 ec1a3791 IN=docker0 MACSRC=3a:ac:b:65:13:ca MACDST=8e:7e:35:d:c8:a3 MACPROTO=0800 SRC=172.17.0.6 DST=198.51.100.2 LEN=60 TOS=0x0 TTL=64 ID=0 DF SPORT=9525 DPORT=44898 SYN ACK 
 TRACE: 2 ec1a3791 raw:PREROUTING:rule:0x2:CONTINUE  -4 -t raw -A PREROUTING -j TRACE
 TRACE: 2 ec1a3791 raw:PREROUTING:policy:ACCEPT 
PACKET: 2 1289199a IN=docker0 OUT=eth0 MACSRC=3a:ac:b:65:13:ca MACDST=8e:7e:35:d:c8:a3 MACPROTO=0800 SRC=172.17.0.6 DST=198.51.100.2 LEN=60 TOS=0x0 TTL=63 ID=0 DF SPORT=9525 DPORT=44898 SYN ACK 
 TRACE: 2 1289199a filter:FORWARD:rule:0xc:ACCEPT  -4 -t filter -A FORWARD -i docker0 ! -o docker0 -j ACCEPT
"""


def test_parse_trace_groups_packets_and_drops_lab_rules() -> None:
    packets = parse_trace(MONITOR_SAMPLE.splitlines(), keep_raw_policy=())
    assert len(packets) == 2
    syn, synack = packets
    assert [s.key for s in syn.steps] == [
        ("nat", "PREROUTING", NAT_PRE_DOCKER, "JUMP:DOCKER"),
        ("nat", "DOCKER", NAT_DNAT, "ACCEPT"),
        ("filter", "FORWARD", FWD_USER, "JUMP:DOCKER-USER"),
        ("filter", "DOCKER-USER", USER_RET, "RETURN"),
    ]
    assert syn.first.sport == 44898 and syn.first.dst == "198.51.100.1"
    assert syn.steps[2].packet.dst == "172.17.0.6"
    # The SYN-ACK changed trace id between the bridge and FORWARD: still one packet.
    assert synack.trace_ids == ["ec1a3791", "1289199a"]
    assert [s.key for s in synack.steps] == [("filter", "FORWARD", FWD_OUT, "ACCEPT")]


def test_normalize_verdict() -> None:
    assert normalize_verdict("0xfffffffb") == "RETURN"
    assert normalize_verdict("JUMP:DOCKER") == "JUMP:DOCKER"
    assert normalize_verdict("ACCEPT") == "ACCEPT"
    assert normalize_verdict("") == "RETURN"


def test_counter_deltas_skip_lab_trace_and_number_rules() -> None:
    before = """*raw
:PREROUTING ACCEPT [5:300]
[5:300] -A PREROUTING -j TRACE
COMMIT
*filter
:INPUT DROP [1:60]
[0:0] -A INPUT -s 192.0.2.1/32 -j ACCEPT
[2:120] -A INPUT -p tcp -j ACCEPT
COMMIT
"""
    after = before.replace("[5:300] -A", "[7:400] -A").replace(":INPUT DROP [1:60]", ":INPUT DROP [2:120]") \
        .replace("[2:120] -A INPUT -p tcp", "[3:180] -A INPUT -p tcp")
    hits = counter_deltas(before, after, drop_lab_trace=True, ruleset_tables=["filter"])
    assert {(h.table, h.chain, h.index, h.rule, h.packets) for h in hits} == {
        ("filter", "INPUT", 2, "-A INPUT -p tcp -j ACCEPT", 1),
        ("filter", "INPUT", None, None, 1),
    }
    assert parse_save(after, drop_lab_trace=True).rules[0][:3] == ("filter", "INPUT", 1)


# ----------------------------------------------------------------------------------
# ipsets and IPv6

IPSET_RULES = """*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -m set --match-set trusted src -j ACCEPT
COMMIT
"""
IPSET_DUMP = """create trusted hash:net family inet hashsize 1024 maxelem 65536
add trusted 203.0.113.0/24
"""


@pytest.mark.parametrize("backend", ["nft", "legacy"])
def test_ipset_from_dump_and_source_addresses(kernel_labs, backend: str) -> None:
    require_lab(backend)
    lab = kernel_labs(docker_topology())
    try:
        lab.load(IPSET_RULES, backend, ipsets=IPSET_DUMP)
        member = lab.send(Flow("client", "198.51.100.1", 22, src="203.0.113.5", listen=(HOST,)))
        other = lab.send(Flow("client", "198.51.100.1", 22, listen=(HOST,)))
    finally:
        lab.close()
    assert member.outcome == "delivered", member.describe()
    assert member.delivery.tuple == ("203.0.113.5", member.sport, "198.51.100.1", 22)
    assert ("filter", "INPUT", "-A INPUT -m set --match-set trusted src -j ACCEPT") in member.hits()
    assert other.outcome == "dropped", other.describe()
    assert other.hits() == {("filter", "INPUT", None)}, other.describe()
    if backend == "nft":
        assert member.path() == [("filter", "INPUT", "-A INPUT -m set --match-set trusted src -j ACCEPT", "ACCEPT")]
        assert other.path() == [("filter", "INPUT", None, "DROP")]


V6_RULES = """*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p ipv6-icmp -j ACCEPT
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
-A INPUT -p tcp -m tcp --dport 23 -j REJECT --reject-with icmp6-port-unreachable
-A FORWARD -i docker0 ! -o docker0 -j ACCEPT
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d 2001:db8:1::1/128 -p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd00:17::2]:80
-A POSTROUTING -s fd00:17::/64 ! -o docker0 -j MASQUERADE
COMMIT
"""
V6_DNAT = "-A PREROUTING -d 2001:db8:1::1/128 -p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd00:17::2]:80"
V6_MASQ = "-A POSTROUTING -s fd00:17::/64 ! -o docker0 -j MASQUERADE"
V6_FWD_OUT = "-A FORWARD -i docker0 ! -o docker0 -j ACCEPT"

# (flow, outcome, arrival, full first-packet path, rules that must have moved)
V6_FLOWS = {
    "ssh-to-host": (
        Flow("client", "2001:db8:1::1", 22, listen=(HOST,)), "delivered",
        (HOST, ("2001:db8:1::2", SPORT, "2001:db8:1::1", 22)),
        [("nat", "PREROUTING", None, "ACCEPT"),
         ("filter", "INPUT", "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT", "ACCEPT"),
         ("nat", "INPUT", None, "ACCEPT")],
        {("filter", "INPUT", "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT"), ("nat", "INPUT", None)}),
    # REJECT: the ICMPv6 error reaches the client, whose socket drops it in the lab
    # (LockDroppedIcmps); the lab reports what the network answered.
    "rejected-port": (
        Flow("client", "2001:db8:1::1", 23), "rejected", None,
        [("nat", "PREROUTING", None, "ACCEPT"),
         ("filter", "INPUT", "-A INPUT -p tcp -m tcp --dport 23 -j REJECT --reject-with icmp6-port-unreachable", "DROP")],
        {("filter", "INPUT", "-A INPUT -p tcp -m tcp --dport 23 -j REJECT --reject-with icmp6-port-unreachable")}),
    "dnat-to-container": (
        Flow("client", "2001:db8:1::1", 8080, listen_port=80), "delivered",
        ("c1", ("2001:db8:1::2", SPORT, "fd00:17::2", 80)),
        [("nat", "PREROUTING", V6_DNAT, "ACCEPT"), ("filter", "FORWARD", None, None)],
        {("nat", "PREROUTING", V6_DNAT)}),
    "container-out-masquerade": (
        Flow("c1", "2001:db8:1::2", 443), "delivered",
        ("client", ("2001:db8:1::1", SPORT, "2001:db8:1::2", 443)),
        [("nat", "PREROUTING", None, "ACCEPT"), ("filter", "FORWARD", V6_FWD_OUT, "ACCEPT"),
         ("nat", "POSTROUTING", V6_MASQ, "ACCEPT")],
        {("filter", "FORWARD", V6_FWD_OUT), ("nat", "POSTROUTING", V6_MASQ)}),
    "routed-to-container-dropped": (
        Flow("client", "fd00:17::2", 80), "dropped", None,
        [("nat", "PREROUTING", None, "ACCEPT"), ("filter", "FORWARD", None, "DROP")],
        {("filter", "FORWARD", None)}),
}


@pytest.fixture(scope="module", params=["nft", "legacy"])
def v6_lab(request, kernel_labs):
    require_lab(request.param)
    lab = kernel_labs(docker_topology(ipv6=True))
    try:
        lab.load(V6_RULES, request.param, 6)
        yield lab
    finally:
        lab.close()


@pytest.mark.parametrize("name", list(V6_FLOWS))
def test_ipv6_flow(v6_lab: Lab, name: str) -> None:
    """IPv6 through the lab.  xtables-monitor 1.8.9 exits when it has to print an
    ip6tables rule with a port match, so the nft trace may stop there (the lab notes
    it, names the rule from ``nft -a`` and restarts the monitor): what was traced must
    be a prefix of the kernel's path."""
    flow, outcome, arrival, path, moved = V6_FLOWS[name]
    obs = v6_lab.send(flow)
    why = obs.describe()
    assert obs.outcome == outcome, why
    if arrival is None:
        assert obs.delivery is None or outcome == "rejected", why
    else:
        ns, tup = arrival
        assert obs.delivered_to == ns, why
        assert obs.delivery.tuple == tuple(obs.sport if v == SPORT else v for v in tup), why
    assert moved <= obs.hits(), why
    if v6_lab.loaded[6].backend == "nft":
        steps = obs.path() or []
        assert steps, why
        for got, want in zip(steps, path):
            assert got[:2] == want[:2] and (want[2] is None or got[2] == want[2]), why
            assert want[3] is None or got[3] == want[3], why
        if len(steps) < len(path):
            assert any("incomplete" in n for n in obs.notes), why
