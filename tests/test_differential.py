"""The kernel-differential suite: every ruleset in fixtures/ that iptables loads, judged
flow by flow by the real kernel and by the tracer (issue 5).

For each ruleset :mod:`differential` derives a lab host from the rules (interfaces, bridges,
containers/pods at the DNAT destinations, an outside client), gives the tracer the *same* host
as a HostModel, and chooses up to ~30 flows from the ruleset's own addresses and ports plus
seeded random ones: incoming to the host, to published ports / NodePorts, from containers
outward, container to container, across bridges, hairpin, locally generated, to cluster IPs;
the established packets of every TCP connection the kernel carried (the reply and the
sender's ACK) are checked too.  Outcome (where the packet arrived, addresses after NAT, or
dropped/rejected) and the rule-by-rule path (xtables-monitor on the nft backend, rule counters
on the legacy backend) must agree; where the tracer forks (statistic, recent, an ipset without
members) the kernel's choice must be one of its branches.

Scenarios the issue names get their own assertions below: Docker 28/29 (raw-table drops of
direct access, DOCKER-FORWARD/DOCKER-CT/DOCKER-BRIDGE), a kube-proxy node (ClusterIP through a
statistic fork, NodePort), the seed's Docker flows, and ufw combined with Docker
(fixtures/ufw-docker-combined.v4.save: a published port is reachable although ufw denies it --
the packet is DNATed and goes FORWARD, never through ufw's INPUT chains).  Facts of
shared/netfilter-facts.md that tests/test_tracer_kernel.py does not cover have a test each.

IPv6 fixtures are judged on the legacy backend, by rule counters (the lab's xtables-monitor 1.8.9
dies printing ip6tables rules with port matches, so nft traces of IPv6 packets stop half-way).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Optional

import pytest

import differential as D
import kernel_lab as KL
from iptexplain.ipset import parse_ipset_save
from iptexplain.netfilter import trace as T
from iptexplain.netfilter.tracer import trace_flow
from iptexplain.parse import parse_text

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"

REFUSED = {
    # Fixtures iptables itself refuses, with why and what iptables-restore says (checked: if
    # one ever loads, it joins the suite).
    "tum-chair-2016-06-27.v4.save": ("MAC addresses anonymized as XX:XX:XX:XX:XX:XX", "MAC"),
    "kube-proxy-unit-test-TestOverallIPTablesRules.v4.restore": (
        "a KUBE-FORWARD rule counts into an nfacct object that does not exist",
        "RULE_APPEND failed (No such file or directory): rule in chain KUBE-FORWARD"),
}
LEGACY_TOO = {"ufw-docker-combined.v4.save", "kube-proxy-k8s-node-flannel.v4.save"}
"""Rulesets also judged on the legacy backend (rule counters instead of the trace)."""

TIMEOUT = 0.25
"""How long a sender waits for an answer before calling its packet dropped.  Inside the lab an
answer takes well under a millisecond and TCP retransmits only after a second, so a quarter of a
second loses nothing (the lab's default, 0.4 s, is for slower machines)."""

REQUIRED_KINDS = {"incoming-host", "incoming-published", "container-out", "container-to-container",
                  "hairpin", "local-to-published", "local-out", "cluster-ip", "direct-to-container",
                  "established-reply", "established-ack", "random"}


def ruleset_fixtures() -> list[str]:
    return sorted(p.name for p in FIXTURES.iterdir()
                  if p.is_file() and re.search(r"\.v[46]\.(save|save-c|restore)$", p.name))


LOADABLE = [n for n in ruleset_fixtures() if n not in REFUSED]
# IPv4 on the nft backend (the kernel's rule-by-rule trace); IPv6 on the legacy backend (rule
# counters: xtables-monitor 1.8.9 dies printing ip6tables rules with port matches, so nft
# traces of IPv6 packets stop half-way).
PARAMS = ([(n, "nft") for n in LOADABLE if ".v4." in n]
          + [(n, "legacy") for n in LOADABLE if n in LEGACY_TOO or ".v6." in n])

REPORTS: list[D.Report] = []
STARTED = time.monotonic()


def run(kernel_labs, name: str, backend: str = "nft", *, cap: Optional[int] = None) -> D.Report:
    """One lab for the ruleset, every flow of its plan through the kernel and the tracer
    (``DIFFERENTIAL_CAP=N`` / ``DIFFERENTIAL_SEED=N`` explore more / other flows)."""
    KL.require_lab(backend)
    if cap is None:
        cap = int(os.environ.get("DIFFERENTIAL_CAP", D.FLOW_CAP))
    text = (FIXTURES / name).read_text()
    plan = D.plan_for(name, text, cap=cap)
    dump = D.ipset_dump(plan)
    # Counters only where they are the judge (legacy): two iptables-save -c per flow cost time.
    lab = kernel_labs(plan.topology(), counters=backend == "legacy", timeout=TIMEOUT)
    try:
        D.setup_lab(lab, plan)
        lab.load(text, backend, plan.family, ipsets=dump)
        rep = D.run_plan(lab, plan, backend, ipsets=parse_ipset_save(dump) if dump else None)
    finally:
        lab.close()
    if cap == D.FLOW_CAP:
        D.RUNS[(name, backend)] = rep
    return rep


def overflowed(rep: D.Report) -> bool:
    """xtables-monitor died of ENOBUFS (thousands of trace events per packet: firewalld's
    chain forest): the trace is lost, not wrong."""
    return any("ENOBUFS" in n for n in rep.notes) or \
        any(r.status == "lab-error" and "No buffer space" in r.detail for r in rep.results)


@pytest.mark.parametrize("name,backend", PARAMS, ids=[f"{n}-{b}" for n, b in PARAMS])
def test_tracer_agrees_with_kernel(kernel_labs, name: str, backend: str) -> None:
    rep = run(kernel_labs, name, backend)
    if backend == "nft" and overflowed(rep):
        # The nft trace overflows the monitor's socket: judge this ruleset by rule counters.
        rep = run(kernel_labs, name, "legacy")
        rep.notes.append("xtables-monitor overflowed (ENOBUFS): judged on the legacy backend by counters")
    REPORTS.append(rep)
    assert rep.results, f"{name}: no flow checked"
    bad = rep.disagreements
    assert not bad, f"{name} [{rep.backend}]: {len(bad)} of {len(rep.results)} flows disagree\n\n" + \
        "\n\n".join(r.detail for r in bad[:6])


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_fixtures_are_still_refused(kernel_labs, name: str) -> None:
    """The fixtures left out above are left out because iptables refuses them, not by choice."""
    KL.require_lab("nft")
    text = (FIXTURES / name).read_text()
    lab = kernel_labs(KL.Topology(ifaces=[KL.HostIface("eth0", "198.51.100.1/24")]), trace=False)
    try:
        with pytest.raises(KL.LabError) as err:
            lab.load(text, "nft")
    finally:
        lab.close()
    why, message = REFUSED[name]
    assert "iptables-nft-restore" in str(err.value) and message in str(err.value), (why, err.value)


# ---------------------------------------------------------------------------------------------
# Named scenarios: one lab per ruleset, chosen flows, the claims the issue makes.


class Scenario:
    """A ruleset's lab with helpers to send one flow and trace it."""

    def __init__(self, kernel_labs, name: str, backend: str = "nft") -> None:
        KL.require_lab(backend)
        self.name = name
        self.text = (FIXTURES / name).read_text()
        self.plan = D.plan_for(name, self.text, cap=1)
        dump = D.ipset_dump(self.plan)
        self.ipsets = parse_ipset_save(dump) if dump else None
        self.lab = kernel_labs(self.plan.topology(), counters=False, timeout=TIMEOUT)
        D.setup_lab(self.lab, self.plan)
        self.lab.load(self.text, backend, ipsets=dump)
        self.index = D.RuleIndex(self.lab.save(family=4))
        self.tables = {t.name for t in self.plan.ruleset.tables_of(4)}
        self.host = self.plan.host_model()
        self.seq = 0

    def case(self, src_ns: str, dst: str, dport: Optional[int], proto: str = "tcp", *,
             listen_port: Optional[int] = None, src: Optional[str] = None) -> D.Case:
        self.seq += 1
        flow = KL.Flow(src_ns, dst, dport, proto, src=src, sport=41000 + self.seq if proto != "icmp" else 0x5000 + self.seq,
                       listen=tuple(p.name for p in self.plan.peers) + (KL.HOST,), listen_port=listen_port,
                       label=f"{self.name} {src_ns}->{dst}:{dport}")
        return D.Case("scenario", flow, D._tracer_flow(self.plan, flow))

    def check(self, case: D.Case) -> tuple[KL.Observation, T.Trace, D.Result]:
        obs = self.lab.send(case.flow)
        tr = trace_flow(self.plan.ruleset, case.tflow, self.host, ipsets=self.ipsets)
        res = D.compare(self.plan, case, obs, tr, self.index, self.tables)
        REPORTS.append(D.Report(f"{self.name} (scenario)", obs.backend or "?", [res]))
        return obs, tr, res

    def container(self, addr: str) -> str:
        owner = self.plan.owner(addr)
        assert owner not in (None, KL.HOST), f"{addr} is no container of the lab: {self.plan.peers}"
        return owner

    def close(self) -> None:
        self.lab.close()


def agreed(res: D.Result) -> None:
    assert res.status in ("agree", "agree-fork"), res.detail


def chains_of(leaf: T.Leaf) -> list[tuple[str, str, str]]:
    """(hook, table, chain) of every rule step that matched."""
    return [(s.hook, s.table, s.chain) for s in leaf.steps if s.kind == T.RULE and s.matched]


def kernel_chains(obs: KL.Observation) -> list[tuple[str, str]]:
    return [(s.table, s.chain) for s in obs.steps or []]


@pytest.fixture(scope="module")
def ufw_docker(kernel_labs):
    s = Scenario(kernel_labs, "ufw-docker-combined.v4.save")
    yield s
    s.close()


def test_ufw_docker_published_port_reachable_through_forward(ufw_docker: Scenario) -> None:
    """ufw denies incoming (INPUT policy DROP, no rule for 8080), yet the published port is
    reachable: nat PREROUTING DNATs it to 192.0.2.2:80 and it goes FORWARD (Docker's rules come
    first there), never through ufw's INPUT chains -- in the kernel and in the tracer."""
    s = ufw_docker
    assert "-A ufw-user-input -p tcp -m tcp --dport 8080" not in s.text
    assert re.search(r"^:INPUT DROP", s.text, re.M)
    ext = s.plan.host_addr()
    obs, tr, res = s.check(s.case(s.plan.client, ext, 8080, listen_port=80))
    agreed(res)
    assert obs.outcome == "delivered" and obs.delivered_to == s.container("192.0.2.2"), obs.describe()
    assert (obs.delivery.dst, obs.delivery.dport) == ("192.0.2.2", 80), obs.describe()
    assert not [c for c in kernel_chains(obs) if c[1] == "INPUT" or c[1].startswith("ufw-")], obs.describe()
    (leaf,) = list(tr.leaves())
    assert leaf.outcome.kind == T.FORWARDED, leaf.outcome.summary
    hooks = [st.hook for st in leaf.steps if st.kind == T.HOOK]
    assert hooks == ["PREROUTING", "FORWARD", "POSTROUTING"], hooks
    dnat = [st for st in leaf.steps if st.kind == T.REWRITE and st.table == "nat" and st.hook == "PREROUTING"]
    assert dnat and dnat[0].detail.get("after", "").startswith("192.0.2.2"), [st.reason for st in dnat]
    matched = chains_of(leaf)
    assert ("FORWARD", "filter", "DOCKER") in matched, matched
    assert not [m for m in matched if m[0] == "INPUT" or m[2].startswith("ufw-")], matched


def test_ufw_docker_host_port_denied(ufw_docker: Scenario) -> None:
    """A port on the host itself that ufw does not allow: dropped by INPUT's policy, in both."""
    s = ufw_docker
    obs, tr, res = s.check(s.case(s.plan.client, s.plan.host_addr(), 3306))
    agreed(res)
    assert obs.outcome == "dropped", obs.describe()
    assert obs.path()[-1] == ("filter", "INPUT", None, "DROP"), obs.describe()
    (leaf,) = list(tr.leaves())
    assert leaf.outcome.kind == T.DROPPED and leaf.outcome.rule is None, leaf.outcome.summary
    assert any(c[2].startswith("ufw-") for c in chains_of(leaf))


def test_ufw_docker_allowed_host_port(ufw_docker: Scenario) -> None:
    """ufw's own allow rules still work for the host (22/tcp)."""
    s = ufw_docker
    obs, tr, res = s.check(s.case(s.plan.client, s.plan.host_addr(), 22))
    agreed(res)
    assert (obs.outcome, obs.delivered_to) == ("delivered", KL.HOST), obs.describe()
    assert ("filter", "ufw-user-input") in kernel_chains(obs)


@pytest.mark.parametrize("name", ["moby28.0-usernet-portmap.v4.save", "moby28.5-usernet-portmap.v4.save",
                                  "moby29.0-usernet-portmap.v4.save"])
def test_docker28_29_direct_access_dropped_in_raw(kernel_labs, name: str) -> None:
    """Docker 28+: a packet from outside straight to a container's address is dropped in raw
    PREROUTING (before conntrack and DNAT); the published port still works, through
    DOCKER-FORWARD / DOCKER-CT / DOCKER-BRIDGE on 28.5 and 29."""
    s = Scenario(kernel_labs, name)
    try:
        c = s.container("192.0.2.2")
        obs, tr, res = s.check(s.case(s.plan.client, "192.0.2.2", 80))
        agreed(res)
        assert obs.outcome == "dropped", obs.describe()
        assert obs.steps[-1].table == "raw" and obs.steps[-1].chain == "PREROUTING" \
            and obs.steps[-1].verdict == "DROP", obs.describe()
        (leaf,) = list(tr.leaves())
        assert leaf.outcome.kind == T.DROPPED and leaf.outcome.rule is not None \
            and leaf.outcome.rule.table == "raw", leaf.outcome.summary
        # The published port from outside: DNAT, then FORWARD.
        obs, tr, res = s.check(s.case(s.plan.client, s.plan.host_addr(), 8080, listen_port=80))
        agreed(res)
        assert obs.delivered_to == c and obs.delivery.dport == 80, obs.describe()
        if not name.startswith("moby28.0"):
            seen = {ch for _, ch in kernel_chains(obs)}
            assert {"DOCKER-FORWARD", "DOCKER-BRIDGE", "DOCKER"} <= seen, seen
        # The client's next packets are accepted by DOCKER-CT (28.5/29: RELATED,ESTABLISHED
        # toward the bridge) or by FORWARD's conntrack rule behind the ipset (28.0).
        ack = D._find_packet(obs, src=obs.delivery.src, sport=obs.sport, dst=s.plan.host_addr(), dport=8080,
                             flags=("ACK",))
        assert ack is not None, obs.describe()
        last = D._own_steps(ack)[-1]
        if name.startswith("moby28.0"):
            assert (last.table, last.chain, last.verdict) == ("filter", "FORWARD", "ACCEPT") \
                and "docker-ext-bridges-v4" in last.rule and "ESTABLISHED" in last.rule, last
        else:
            assert (last.table, last.chain, last.verdict) == ("filter", "DOCKER-CT", "ACCEPT"), last
        # Containers on another bridge are isolated; the same bridge talks freely.
        other = [p for p in s.plan.peers if p.role == "container" and p.iface != s.plan.peer(c).iface]
        if other:
            obs, tr, res = s.check(s.case(other[0].name, "192.0.2.2", 80))
            agreed(res)
            assert obs.outcome == "dropped", obs.describe()
    finally:
        s.close()


def test_kube_proxy_cluster_ip_forks_and_kernel_picks_a_branch(kernel_labs) -> None:
    """ClusterIP 10.96.0.10:53/udp with two endpoints: the tracer forks 1/2 each through
    KUBE-SERVICES → KUBE-SVC → statistic; the kernel picks one endpoint, which is a branch."""
    s = Scenario(kernel_labs, "kube-proxy-k8s-node-flannel.v4.save")
    try:
        pod = next(p for p in s.plan.peers if p.role == "container" and p.addr.startswith("10.244."))
        for _ in range(6):
            obs, tr, res = s.check(s.case(pod.name, "10.96.0.10", 53, "udp"))
            assert res.status == "agree-fork", res.detail
            leaves = list(tr.leaves())
            assert sorted(round(lf.probability, 3) for lf in leaves) == [0.5, 0.5], [lf.conditions for lf in leaves]
            assert {lf.outcome.packet["dst"] for lf in leaves} == {"10.244.0.2", "10.244.0.3"}
            assert obs.delivery.dst in {"10.244.0.2", "10.244.0.3"}, obs.describe()
            assert ("nat", "KUBE-SERVICES") in kernel_chains(obs), obs.describe()
        # The host itself to the API server's ClusterIP: DNAT in nat OUTPUT, one endpoint.
        obs, tr, res = s.check(s.case(KL.HOST, "10.96.0.1", 443, listen_port=6443))
        agreed(res)
        assert (obs.delivery.dst, obs.delivery.dport) == ("172.31.7.91", 6443), obs.describe()
    finally:
        s.close()


def test_kube_proxy_nodeport(kernel_labs) -> None:
    """A k3s node's NodePort 30500 (default/registry -> 10.42.0.10:5000): from outside it is
    DNATed through KUBE-NODEPORTS → KUBE-EXT → KUBE-SVC → KUBE-SEP, marked for masquerade,
    and forwarded to the pod; a port with no NodePort is left to INPUT."""
    s = Scenario(kernel_labs, "k3s-kuberouter-flannel-nodeports.v4.save")
    try:
        obs, tr, res = s.check(s.case(s.plan.client, s.plan.host_addr(), 30500, listen_port=5000))
        agreed(res)
        assert obs.delivered_to == s.container("10.42.0.10"), obs.describe()
        assert obs.delivery.dport == 5000
        nat_chains = [ch for t, ch in kernel_chains(obs) if t == "nat"]
        for prefix in ("KUBE-NODEPORTS", "KUBE-EXT-", "KUBE-SVC-", "KUBE-SEP-", "KUBE-MARK-MASQ"):
            assert any(ch.startswith(prefix) for ch in nat_chains), (prefix, nat_chains)
        # KUBE-POSTROUTING masquerades it: the pod sees the host's bridge address.
        assert obs.delivery.src == s.plan.host_addr(s.plan.peer(obs.delivered_to).iface), obs.describe()
        obs, tr, res = s.check(s.case(s.plan.client, s.plan.host_addr(), 30501))
        agreed(res)
        assert obs.delivered_to == KL.HOST, obs.describe()
    finally:
        s.close()


@pytest.fixture(scope="module")
def seed(kernel_labs):
    s = Scenario(kernel_labs, "seed-docker.v4.save")
    yield s
    s.close()


SEED_FLOWS = {
    # name: (sender, destination, port, proto, listen_port, expected receiver, expected tracer outcome)
    "incoming-published": ("client", "198.51.100.1", 9525, "tcp", None, "172.17.0.6", T.FORWARDED),
    "incoming-closed-port": ("client", "198.51.100.1", 22, "tcp", None, KL.HOST, T.DELIVERED),
    "container-outbound": ("172.17.0.6", "198.51.100.2", 8080, "tcp", None, "198.51.100.2", T.FORWARDED),
    "host-to-published": (KL.HOST, "198.51.100.1", 9525, "tcp", None, "172.17.0.6", T.SENT),
    "container-to-container": ("172.17.0.6", "172.17.0.2", 80, "tcp", None, "172.17.0.2", T.FORWARDED),
    "hairpin": ("172.17.0.6", "198.51.100.1", 9525, "tcp", None, KL.HOST, T.DELIVERED),
}


@pytest.mark.parametrize("flow", list(SEED_FLOWS))
def test_seed_docker_flows(seed: Scenario, flow: str) -> None:
    """The seed's flows, and their established packets (reply and ACK) where a connection was
    made.  The seed's nat DOCKER returns for -i docker0, so its hairpin reaches the host."""
    src, dst, port, proto, lport, receiver, kind = SEED_FLOWS[flow]
    plan = seed.plan
    ns = src if src in (KL.HOST, "client") else seed.container(src)
    case = seed.case(ns, dst, port, proto, listen_port=lport)
    obs, tr, res = seed.check(case)
    agreed(res)
    want_ns = receiver if receiver in (KL.HOST,) else plan.owner(receiver)
    assert obs.delivered_to == want_ns, obs.describe()
    assert {lf.outcome.kind for lf in tr.leaves()} == {kind}
    if flow == "incoming-closed-port":
        # Nothing in the seed closes 22: the host's own socket answers (the lab listens there).
        assert obs.outcome == "delivered"
    est = D.established_checks(plan, case, obs, seed.index, seed.tables)
    if obs.sender.status == "connected" and flow != "hairpin":
        assert est, "no established packet found in the trace"
    for r in est:
        REPORTS.append(D.Report("seed-docker.v4.save (scenario)", "nft", [r]))
        assert r.status in ("agree", "agree-fork"), r.detail


def test_reply_of_masqueraded_connection_goes_forward(seed: Scenario) -> None:
    """A container's outbound connection is MASQUERADEd to 198.51.100.1; its reply arrives for
    198.51.100.1:<port> and conntrack un-NATs the destination back to the container before
    routing: FORWARD, not INPUT -- in the kernel, and in the tracer asked for the flow's reply."""
    s = seed
    case = s.case(s.container("172.17.0.6"), "198.51.100.2", 443)
    obs, _, res = s.check(case)
    agreed(res)
    assert obs.delivery.src == "198.51.100.1", obs.describe()
    (reply,) = [r for r in D.established_checks(s.plan, case, obs, s.index, s.tables)
                if r.case.kind.startswith("established-reply")]
    assert reply.status == "agree", reply.detail
    kernel_reply = D._find_packet(obs, src="198.51.100.2", sport=443, dst="198.51.100.1", dport=obs.delivery.sport,
                                  flags=("SYN", "ACK"))
    assert ("filter", "FORWARD") in [(st.table, st.chain) for st in kernel_reply.steps], kernel_reply.steps
    (leaf,) = list(trace_flow(s.plan.ruleset, reply.case.tflow, s.host).leaves())
    assert leaf.outcome.kind == T.FORWARDED and leaf.outcome.packet["dst"] == "172.17.0.6", leaf.outcome.summary
    assert "INPUT" not in {st.hook for st in leaf.steps if st.kind == T.HOOK}


# ---------------------------------------------------------------------------------------------
# Facts of shared/netfilter-facts.md not covered by tests/test_tracer_kernel.py.

FACT_RULES = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:SVC - [0:0]
:SEP1 - [0:0]
:SEP2 - [0:0]
-A PREROUTING -d 198.51.100.1/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.6:80
-A PREROUTING -d 198.51.100.1/32 -p tcp -m tcp --dport 8081 -j DNAT --to-destination 172.17.0.7:82
-A PREROUTING -d 198.51.100.1/32 -p tcp -m tcp --dport 8082 -j SVC
-A SVC -m statistic --mode random --probability 0.50000000000 -j SEP1
-A SVC -j SEP2
-A SEP1 -p tcp -m tcp -j DNAT --to-destination 172.17.0.6:80
-A SEP2 -p tcp -m tcp -j DNAT --to-destination 172.17.0.7:80
-A POSTROUTING -s 172.17.0.0/16 -o eth0 -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --dport 23 -j REJECT --reject-with icmp-port-unreachable
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -d 172.17.0.6/32 -p tcp -m tcp --dport 80 -j ACCEPT
-A FORWARD -d 172.17.0.7/32 -p tcp -m tcp --dport 80 -j ACCEPT
-A FORWARD -i docker0 -o eth0 -j ACCEPT
-A OUTPUT -p icmp -m icmp --icmp-type 3 -j DROP
COMMIT
"""
"""8080 -> c1:80 is allowed in FORWARD, 8081 -> c2:82 is DNATed but FORWARD's policy drops it;
8082 picks c1:80 or c2:80 at random (both allowed); port 23 is rejected, but OUTPUT drops the
ICMP error."""


@pytest.fixture(scope="module")
def facts(kernel_labs):
    KL.require_lab("nft")
    topo = KL.Topology(ifaces=[
        KL.HostIface("eth0", ["198.51.100.1/24", "198.51.100.9/24"], peers=[KL.Peer("client", "198.51.100.2/24")]),
        KL.HostIface("docker0", "172.17.0.1/16", bridge=True,
                     peers=[KL.Peer("c1", "172.17.0.6/16"), KL.Peer("c2", "172.17.0.7/16")]),
    ])
    lab = kernel_labs(topo)
    lab.run(KL.HOST, "ip", "route", "replace", "default", "via", "198.51.100.2", "dev", "eth0")
    lab.load(FACT_RULES, "nft")
    rs = parse_text(FACT_RULES, "<facts>")
    from iptexplain.host import HostModel, IfAddr, Interface, Route

    host = HostModel(source="kernel lab")
    host.add_interface(Interface("lo", [IfAddr("127.0.0.1", 8)], kind="loopback"))
    host.add_interface(Interface("eth0", [IfAddr("198.51.100.1", 24), IfAddr("198.51.100.9", 24)]))
    host.add_interface(Interface("docker0", [IfAddr("172.17.0.1", 16)], kind="bridge"))
    host.routes.append(Route("default", "eth0", "198.51.100.2"))
    host.sysctls["net.ipv4.ip_forward"] = "1"
    index = D.RuleIndex(lab.save())
    yield lab, rs, host, index
    lab.close()


def _fact_flow(src_ns: str, dst: str, dport: Optional[int], proto: str = "tcp", *, iface: str = "eth0",
               src: str = "198.51.100.2", listen_port: Optional[int] = None, sport: int = 42000):
    flow = KL.Flow(src_ns, dst, dport, proto, sport=sport, listen=("client", "c1", "c2", KL.HOST),
                   listen_port=listen_port)
    tflow = T.Flow(4, proto, src, dst, sport, dport, iniface=iface)
    return flow, tflow


def _events(steps) -> list:
    return [(e[0][0], e[0][1], e[0][3]) for e in D.tracer_events(steps)]


def test_fact_nat_sees_only_the_first_packet_binding_stays(facts) -> None:
    """The nat table sees only a connection's first packet; its later packets (the client's
    ACK) show no nat step, yet keep the DNAT: they go FORWARD to the container."""
    lab, rs, host, index = facts
    flow, tflow = _fact_flow("client", "198.51.100.1", 8080, listen_port=80, sport=42001)
    obs = lab.send(flow)
    assert obs.delivered_to == "c1" and obs.sender.status == "connected", obs.describe()
    ack = D._find_packet(obs, src="198.51.100.2", sport=42001, dst="198.51.100.1", dport=8080, flags=("ACK",))
    assert ack is not None, obs.describe()
    steps = D._own_steps(ack)
    assert [st.table for st in steps] and "nat" not in {st.table for st in steps}, steps
    assert ("filter", "FORWARD") in [(st.table, st.chain) for st in steps], steps
    tr = trace_flow(rs, T.Flow(4, "tcp", "198.51.100.2", "198.51.100.1", 42001, 8080, iniface="eth0",
                               state="ESTABLISHED"), host)
    (leaf,) = list(tr.leaves())
    assert leaf.outcome.kind == T.FORWARDED and leaf.outcome.packet["dst"] == "172.17.0.6", leaf.outcome.summary
    assert D._events_equal(D.kernel_events(steps, index), D.tracer_events(leaf.steps)), (
        D.kernel_events(steps, index), _events(leaf.steps))


def test_fact_dnat_is_not_a_permit(facts) -> None:
    """DNAT changes the destination, not the verdict: 8081 is DNATed to c2, and FORWARD's
    policy drops it (the kernel's trace ends there, the tracer says dropped by the policy)."""
    lab, rs, host, index = facts
    flow, tflow = _fact_flow("client", "198.51.100.1", 8081, listen_port=82, sport=42002)
    obs = lab.send(flow)
    assert obs.outcome == "dropped", obs.describe()
    assert obs.path()[0][1] == "PREROUTING" and obs.path()[-1] == ("filter", "FORWARD", None, "DROP"), obs.describe()
    (leaf,) = list(trace_flow(rs, tflow, host).leaves())
    assert leaf.outcome.kind == T.DROPPED and leaf.outcome.packet["dst"] == "172.17.0.7", leaf.outcome.summary
    assert D._events_equal(D.kernel_events(obs.steps, index), D.tracer_events(leaf.steps))


def test_fact_masquerade_takes_the_primary_address(facts) -> None:
    """eth0 has 198.51.100.1 (primary) and 198.51.100.9 (secondary): MASQUERADE takes the
    primary address, in the kernel and in the tracer."""
    lab, rs, host, index = facts
    flow = KL.Flow("c1", "198.51.100.2", 443, sport=42003, listen=("client",))
    obs = lab.send(flow)
    assert obs.delivered_to == "client" and obs.delivery.src == "198.51.100.1", obs.describe()
    (leaf,) = list(trace_flow(rs, T.Flow(4, "tcp", "172.17.0.6", "198.51.100.2", 42003, 443,
                                         iniface="docker0"), host).leaves())
    assert leaf.outcome.packet["src"] == "198.51.100.1", leaf.outcome.packet
    assert D._events_equal(D.kernel_events(obs.steps, index), D.tracer_events(leaf.steps))


def test_fact_statistic_choice_is_made_once_per_connection(facts) -> None:
    """The random endpoint is chosen for the connection's first packet; its later packets go to
    the same endpoint (conntrack keeps the binding, nat is not consulted again)."""
    lab, rs, host, index = facts
    for i in range(3):
        sport = 42010 + i
        flow, _ = _fact_flow("client", "198.51.100.1", 8082, listen_port=80, sport=sport)
        obs = lab.send(flow)
        assert obs.delivered_to in ("c1", "c2") and obs.sender.status == "connected", obs.describe()
        ack = D._find_packet(obs, src="198.51.100.2", sport=sport, dst="198.51.100.1", dport=8082, flags=("ACK",))
        assert ack is not None, obs.describe()
        steps = D._own_steps(ack)
        assert "nat" not in {st.table for st in steps}, steps
        heads = [h for h in ack.headers if h.oif and h.get("ID") == ack.first.get("ID")]
        assert heads and heads[-1].dst == obs.delivery.dst and heads[-1].oif == "docker0", ack.headers


def test_fact_statistic_established_keeps_a_branch_binding(facts) -> None:
    """The tracer, asked about a later packet of such a connection, should give the kernel's
    path as one of its branches."""
    lab, rs, host, index = facts
    tr = trace_flow(rs, T.Flow(4, "tcp", "198.51.100.2", "198.51.100.1", 42020, 8082, iniface="eth0",
                               state="ESTABLISHED"), host)
    kinds = {(lf.outcome.kind, lf.outcome.packet.get("dst")) for lf in tr.leaves()}
    assert (T.FORWARDED, "172.17.0.6") in kinds, kinds


def test_fact_reject_reply_goes_through_output(facts) -> None:
    """REJECT answers with a new packet (ICMP port unreachable) that traverses OUTPUT, where
    this ruleset drops it: the sender sees nothing.  The kernel's trace shows the REJECT rule
    as DROP and the ICMP error dropped in filter OUTPUT."""
    lab, rs, host, index = facts
    flow, tflow = _fact_flow("client", "198.51.100.1", 23, sport=42030)
    obs = lab.send(flow)
    assert obs.path()[-1][3] == "DROP" and "REJECT" in (obs.path()[-1][2] or ""), obs.describe()
    assert obs.outcome == "dropped" and obs.sender.icmp is None, obs.describe()
    icmp = [p for p in obs.packets or [] if p.first is not None and p.first.src == "198.51.100.1"
            and p.first.dst == "198.51.100.2" and p.first.sport is None]
    assert icmp and ("filter", "OUTPUT", "-A OUTPUT -p icmp -m icmp --icmp-type 3 -j DROP", "DROP") in \
        [st.key for st in icmp[0].steps], obs.describe()
    (leaf,) = list(trace_flow(rs, tflow, host).leaves())
    assert D._events_equal(D.kernel_events(obs.steps, index), D.tracer_events(leaf.steps))


def test_fact_reject_whose_reply_is_dropped_is_a_drop_for_the_sender(facts) -> None:
    lab, rs, host, index = facts
    _, tflow = _fact_flow("client", "198.51.100.1", 23, sport=42031)
    (leaf,) = list(trace_flow(rs, tflow, host).leaves())
    assert leaf.outcome.kind == T.DROPPED, leaf.outcome.summary


def test_fact_hairpin_needs_hairpin_mode_and_masquerade(kernel_labs) -> None:
    """Docker 20 with --userland-proxy=false: a container reaching its own published port
    through the host's address is DNATed back out of the same bridge port (hairpin mode on)
    and MASQUERADEd by Docker's per-container rule, so it arrives from the bridge's address."""
    s = Scenario(kernel_labs, "docker20-containers.v4.save")
    try:
        c = s.container("172.17.0.2")
        obs, tr, res = s.check(s.case(c, s.plan.host_addr(), 9000, listen_port=9000))
        agreed(res)
        assert obs.delivered_to == c and obs.sender.status == "connected", obs.describe()
        assert obs.delivery.src == "172.17.0.1", obs.describe()
        assert ("nat", "POSTROUTING", "-A POSTROUTING -s 172.17.0.2/32 -d 172.17.0.2/32 -p tcp -m tcp --dport 9000 -j MASQUERADE",
                "ACCEPT") in obs.path(), obs.describe()
    finally:
        s.close()


# ---------------------------------------------------------------------------------------------
# The machinery itself (no kernel needed).


def test_plan_derives_the_seed_host_from_its_rules() -> None:
    """The seed's rules say: docker0 carries 172.17.0.0/16 (MASQUERADE), 172.17.0.6 is a DNAT
    destination; the lab host and the tracer's host model are built alike from that."""
    plan = D.plan_for("seed-docker.v4.save", (FIXTURES / "seed-docker.v4.save").read_text())
    assert str(plan.ifaces["docker0"]["net"]) == "172.17.0.0/16" and plan.ifaces["docker0"]["bridge"]
    assert plan.owner("172.17.0.6") not in (None, KL.HOST)
    assert plan.owner(plan.host_addr()) == KL.HOST and plan.external == "eth0"
    topo = plan.topology()
    host = plan.host_model()
    assert {i.name for i in topo.ifaces} == set(host.interfaces) - {"lo"}
    for i in topo.ifaces:
        assert [str(a) for a in host.interfaces[i.name].addrs] == list(i.addrs)
    (default,) = [r for r in host.routes if r.dst == "default"]
    assert (default.dev, default.via) == ("eth0", plan.peer(plan.client).addr)
    kinds = {c.kind for c in plan.cases}
    assert {"incoming-published", "local-to-published", "hairpin", "container-out", "container-to-container",
            "direct-to-container", "random"} <= kinds, kinds
    published = [c for c in plan.cases if c.kind == "incoming-published"]
    assert published[0].flow.dport == 9525 and published[0].tflow.iniface == "eth0"
    assert len(plan.cases) <= D.FLOW_CAP
    assert [c.flow for c in plan.cases] == [c.flow for c in D.plan_for(
        "seed-docker.v4.save", (FIXTURES / "seed-docker.v4.save").read_text()).cases], "flows are seeded"


def test_tracer_events_in_the_kernels_words() -> None:
    """DNAT prints as ACCEPT, REJECT as DROP, jumps as JUMP:X, a policy as a policy event, the
    end of a user chain as nothing; a LOG behind -m limit is optional."""
    rules = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:D - [0:0]
-A PREROUTING -j D
-A D -p tcp -m tcp --dport 8080 -j DNAT --to-destination 198.51.100.1:80
COMMIT
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:U - [0:0]
-A INPUT -j U
-A INPUT -m limit --limit 3/min -j LOG
-A INPUT -p tcp -m tcp --dport 80 -j REJECT --reject-with tcp-reset
-A U -p udp -j ACCEPT
COMMIT
"""
    from iptexplain.host import HostModel, IfAddr, Interface

    rs = parse_text(rules, "<events>")
    host = HostModel(source="test")
    host.add_interface(Interface("eth0", [IfAddr("198.51.100.1", 24)]))
    (leaf,) = list(trace_flow(rs, T.Flow(4, "tcp", "198.51.100.2", "198.51.100.1", 40000, 8080, iniface="eth0"),
                              host).leaves())
    events = [(ev, optional) for ev, _, optional in D.tracer_events(leaf.steps)]
    assert events == [
        (("nat", "PREROUTING", 1, "JUMP:D"), False),
        (("nat", "D", 1, "ACCEPT"), False),
        (("filter", "INPUT", 1, "JUMP:U"), False),
        (("filter", "INPUT", 2, "CONTINUE"), True),
        (("filter", "INPUT", 3, "DROP"), False),
    ], events
    tev = D.tracer_events(leaf.steps)
    kernel = [("nat", "PREROUTING", (1,), "JUMP:D"), ("nat", "D", (1,), "ACCEPT"),
              ("filter", "INPUT", (1,), "JUMP:U"), ("filter", "INPUT", (3,), "DROP")]
    assert D._events_equal(kernel, tev)  # the kernel left the LOG out: its bucket was empty
    assert D._events_equal(kernel[:3] + [("filter", "INPUT", (2,), "CONTINUE")] + kernel[3:], tev)
    assert not D._events_equal(kernel[:3], tev)
    assert not D._events_equal(kernel[:3] + [("filter", "INPUT", None, "DROP")], tev)  # a policy is not a rule


# ---------------------------------------------------------------------------------------------
# The suite's account.


def test_summary_every_flow_kind_was_checked(request) -> None:
    """Runs last: prints the totals and checks that the suite exercised every kind of flow the
    issue asks for (a change in the flow choice that drops one fails here)."""
    reports = [r for r in REPORTS if not r.name.endswith("(scenario)")]
    if not reports:
        pytest.skip("the differential tests did not run in this session (-k / deselected)")
    results = [x for r in reports for x in r.results]
    scenario_checks = sum(len(r.results) for r in REPORTS if r.name.endswith("(scenario)"))
    kinds = {x.case.kind.split(" (")[0] for r in reports for x in r.results}
    count = {s: sum(1 for x in results if x.status == s)
             for s in ("agree", "agree-fork", "undecided", "disagree", "lab-error", "lab-noise")}
    lines = [f"kernel-differential suite: {len({r.name for r in reports})} rulesets "
             f"({len(reports)} ruleset/backend runs), {len(results)} flows and packets checked: "
             f"{count['agree']} agreed, {count['agree-fork']} forked with the kernel on a branch, "
             f"{count['undecided']} undecided, "
             f"{count['disagree']} disagreed, {count['lab-error'] + count['lab-noise']} lab errors/noise; "
             f"plus {scenario_checks} checks in the named scenarios; {time.monotonic() - STARTED:.0f}s"]
    lines += ["  " + r.summary() for r in reports]
    print("\n" + "\n".join(lines))  # with -s / in the captured output of -rA

    class _Summary:
        """Writes the account in pytest's terminal summary (output of tests is captured)."""

        @staticmethod
        def pytest_terminal_summary(terminalreporter) -> None:
            terminalreporter.section("kernel-differential suite")
            for ln in lines:
                terminalreporter.write_line(ln)

    if not request.config.pluginmanager.has_plugin("differential-summary"):
        request.config.pluginmanager.register(_Summary(), "differential-summary")
    if len(reports) >= len(PARAMS):
        missing = REQUIRED_KINDS - kinds
        assert not missing, f"flow kinds never checked: {sorted(missing)}"
