"""The tracer against the kernel: the same ruleset, the same flow, the same path.

Each case loads a small ruleset into a kernel lab (private network namespaces, the nft
backend so that ``xtables-monitor --trace`` gives the kernel's rule-by-rule account), sends a
real connection, and compares with the tracer's trace of the same flow on the same host:

* the first packet's events, rule by rule: (table, chain, rule, verdict) -- see
  :func:`trace_paths.kernel_path` for how the tracer's steps are put in the kernel's words;
* the outcome: where the packet arrived (after NAT, with its addresses) or that it was
  dropped or rejected.

One case per fact of shared/netfilter-facts.md, plus the seed's Docker flows.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pytest

import kernel_lab
from kernel_lab import HOST, Topology, docker_topology, require_lab
from iptexplain.host import HostModel, IfAddr, Interface, Route
from iptexplain.netfilter import trace as T
from iptexplain.netfilter.trace import Flow as TFlow
from iptexplain.netfilter.tracer import trace_flow
from iptexplain.parse import parse_text

from trace_paths import kernel_path

SEED = (Path(__file__).resolve().parent.parent / "fixtures" / "seed-docker.v4.save").read_text()
LF = kernel_lab.Flow


# ---------------------------------------------------------------------------------------------
# The lab's topology as the tracer's host model, the lab's flow as the tracer's flow.


def host_model(topo: Topology) -> HostModel:
    h = HostModel(source="kernel lab")
    h.add_interface(Interface("lo", [IfAddr("127.0.0.1", 8, 4), IfAddr("::1", 128, 6)], kind="loopback"))
    for i in topo.ifaces:
        iface = h.add_interface(Interface(i.name, kind="bridge" if i.bridge else "veth"))
        for a in i.addrs:
            ip = ipaddress.ip_interface(a)
            iface.addrs.append(IfAddr(str(ip.ip), ip.network.prefixlen, ip.version))
    # A peer's address outside the host's subnets has a host route (as the lab adds it).
    for i in topo.ifaces:
        for p in i.peers:
            for fam in (4, 6):
                mine, gws = p.addresses(fam), i.addresses(fam)
                for a in mine:
                    if not any(a.ip in g.network for g in gws):
                        via = str(mine[0].ip) if a != mine[0] else None
                        h.routes.append(Route(f"{a.ip}/{a.max_prefixlen}", i.name, via, family=fam))
    h.sysctls.update(kernel_lab.DEFAULT_HOST_SYSCTLS)
    h.sysctls.update(topo.sysctls)
    return h


def tracer_flow(topo: Topology, f: kernel_lab.Flow) -> TFlow:
    fam = f.family
    proto = f.proto if f.proto != "icmp" or fam == 4 else "ipv6-icmp"
    if f.src_ns == HOST:
        return TFlow(fam, proto, src=f.src, dst=f.dst, dport=f.dport, from_host=True)
    peer = topo.peer(f.src_ns)
    src = f.src or str(peer.addresses(fam)[0].ip)
    return TFlow(fam, proto, src=src, dst=f.dst, dport=f.dport, iniface=topo.iface_of(f.src_ns).name)


def owner_of(topo: Topology, addr: str) -> Optional[str]:
    ip = ipaddress.ip_address(addr)
    for p in topo.peers:
        if any(a.ip == ip for a in map(ipaddress.ip_interface, p.addrs)):
            return p.name
    for i in topo.ifaces:
        if any(a.ip == ip for a in map(ipaddress.ip_interface, i.addrs)):
            return HOST
    return None


# ---------------------------------------------------------------------------------------------
# Cases.


@dataclass(frozen=True)
class Case:
    ruleset: str
    flows: tuple[kernel_lab.Flow, ...]
    topology: Topology = field(default_factory=docker_topology)
    family: int = 4
    needs_bridge_nf: bool = False
    # For rulesets with random choices: the kernel's path must be one of the tracer's leaves.
    forks: bool = False


def save(*tables: str) -> str:
    return "\n".join(t.strip() + "\nCOMMIT" for t in tables) + "\n"


def markers(conntrack: bool = True) -> str:
    """A rule in every chain of every table that matches everything and does nothing: the
    kernel's trace then shows the order in which the tables and chains are traversed.
    ``conntrack``: add a rule that turns connection tracking on (as any NAT rule would)."""
    chains = {
        "raw": ("PREROUTING", "OUTPUT"),
        "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
        "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
        "filter": ("INPUT", "FORWARD", "OUTPUT"),
        "security": ("INPUT", "FORWARD", "OUTPUT"),
    }
    out = []
    for table, cs in chains.items():
        lines = [f"*{table}"] + [f":{c} ACCEPT [0:0]" for c in cs]
        lines += [f"-A {c} -m comment --comment {table}-{c}" for c in cs]
        if conntrack and table == "filter":
            lines.append("-A FORWARD -m conntrack --ctstate INVALID -j DROP")
        out.append("\n".join(lines))
    return save(*out)


NAT_HEAD = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]"""
FILTER_OPEN = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]"""
DNAT_9525 = NAT_HEAD + "\n-A PREROUTING -d 198.51.100.1/32 -p tcp -m tcp --dport 9525 -j DNAT --to-destination 172.17.0.6:9525"

THREE = docker_topology(("172.17.0.6", "172.17.0.7", "172.17.0.8"))
TO_HOST_22 = LF("client", "198.51.100.1", 22, listen=(HOST,))
# The outside client also answers for a service address (10.96.0.1), routed to it by the host.
SERVICE_ROUTE = Topology(ifaces=[
    kernel_lab.HostIface("eth0", ["198.51.100.1/24"],
                         peers=[kernel_lab.Peer("client", ["198.51.100.2/24", "10.96.0.1/32"])]),
    docker_topology().ifaces[1]])
MASQ_LO_FLOWS = (LF(HOST, "10.96.0.1", 443, listen=(HOST,), listen_port=6443),
                 LF(HOST, "127.0.0.1", 6443, listen=(HOST,)),
                 LF(HOST, "198.51.100.1", 6443, listen=(HOST,)),
                 LF(HOST, "172.17.0.1", 6443, listen=(HOST,)))

CASES: dict[str, Case] = {
    # The seed's Docker host (Docker 19/20 rules).
    "seed": Case(SEED, (
        LF("client", "198.51.100.1", 9525),  # published port: nat DNAT, FORWARD, never INPUT
        TO_HOST_22,  # the host's own port: INPUT
        LF("c1", "198.51.100.2", 8080),  # container out: MASQUERADE to eth0's address
        LF(HOST, "198.51.100.1", 9525),  # host to its published port: DNAT in OUTPUT, re-route
        LF("client", "172.17.0.6", 80),  # straight to the container, not published: FORWARD policy
        LF("c1", "198.51.100.1", 9525, listen=(HOST,)),  # container to its published port: DOCKER RETURNs
    )),
    "seed-bridge": Case(SEED, (LF("c1", "172.17.0.7", 80),), needs_bridge_nf=True),
    # Without br_netfilter's bridge-nf-call-iptables the same packet meets no iptables hook.
    "seed-bridge-nf-off": Case(SEED, (LF("c1", "172.17.0.7", 80),),
                               topology=Topology(docker_topology().ifaces, bridge_nf=False,
                                                 sysctls={"net.bridge.bridge-nf-call-iptables": "0"})),
    # Order: raw → (conntrack) → mangle → nat PREROUTING → mangle/filter/security INPUT → nat INPUT
    # last; forward; locally generated; and back in through lo without nat.
    "order": Case(markers(), (
        TO_HOST_22,
        LF("client", "172.17.0.6", 80),
        LF(HOST, "198.51.100.2", 80),
        LF(HOST, "198.51.100.1", 22, listen=(HOST,)),
        LF(HOST, "127.0.0.1", 22, listen=(HOST,)),
    )),
    # Without a rule that needs conntrack the namespace tracks nothing: nat chains never run.
    "nat-needs-conntrack": Case(markers(conntrack=False), (TO_HOST_22, LF(HOST, "198.51.100.2", 80))),
    # raw PREROUTING runs before DNAT: it sees the original destination.
    "raw-sees-original-destination": Case(save("""*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -d 172.17.0.6/32 -j DROP
-A PREROUTING -d 198.51.100.1/32 -m comment --comment original""", DNAT_9525, FILTER_OPEN),
        (LF("client", "198.51.100.1", 9525),)),
    # NOTRACK: no connection, no NAT -- the host's own port 9525 answers.
    "notrack-skips-nat": Case(save("""*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p tcp -m tcp --dport 9525 -j CT --notrack""", DNAT_9525, FILTER_OPEN),
        (LF("client", "198.51.100.1", 9525, listen=(HOST,)),)),
    # DNAT to 127.0.0.1 from outside: a martian at routing…
    "dnat-to-loopback-martian": Case(save(
        NAT_HEAD + "\n-A PREROUTING -p tcp -m tcp --dport 2222 -j DNAT --to-destination 127.0.0.1:22",
        FILTER_OPEN), (LF("client", "198.51.100.1", 2222, listen=(HOST,), listen_port=22),)),
    # … unless route_localnet=1.
    "dnat-to-loopback-route-localnet": Case(save(
        NAT_HEAD + "\n-A PREROUTING -p tcp -m tcp --dport 2222 -j DNAT --to-destination 127.0.0.1:22",
        FILTER_OPEN), (LF("client", "198.51.100.1", 2222, listen=(HOST,), listen_port=22),),
        topology=Topology(docker_topology().ifaces, sysctls={"net.ipv4.conf.all.route_localnet": "1"})),
    # REDIRECT in OUTPUT: re-routed to lo, back in without nat (a transparent proxy on the host).
    "redirect-in-output": Case(save(
        NAT_HEAD + "\n-A OUTPUT -d 198.51.100.2/32 -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 3128",
        FILTER_OPEN), (LF(HOST, "198.51.100.2", 80, listen=(HOST,), listen_port=3128),)),
    # SNAT in nat INPUT (the last hook function of INPUT): the host's socket sees the new source
    # (a routable one: its answer is routed before OUTPUT undoes the NAT and re-routes it).
    "snat-in-nat-input": Case(save(
        NAT_HEAD + "\n-A INPUT -p tcp -m tcp --dport 22 -j SNAT --to-source 172.17.0.99", FILTER_OPEN), (TO_HOST_22,)),
    # MARK in mangle OUTPUT: a changed mark re-routes (same route here), the journey goes on.
    "mark-in-output": Case(save("""*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A OUTPUT -p tcp -m tcp --dport 80 -j MARK --set-xmark 0x7/0xffffffff
-A POSTROUTING -m mark --mark 0x7 -m comment --comment marked""", FILTER_OPEN),
        (LF(HOST, "198.51.100.2", 80),)),
    # MASQUERADE --random-fully: the eth0 address (the source port is the kernel's choice).
    "masquerade-random-fully": Case(save(
        NAT_HEAD + "\n-A POSTROUTING -s 172.17.0.0/16 -o eth0 -j MASQUERADE --random-fully", FILTER_OPEN),
        (LF("c1", "198.51.100.2", 8080),)),
    # kube-proxy's cascade: the kernel picks one endpoint; the tracer forks into all three.
    "statistic-cascade": Case(save(NAT_HEAD + """
:SVC - [0:0]
:SEP1 - [0:0]
:SEP2 - [0:0]
:SEP3 - [0:0]
-A PREROUTING -d 198.51.100.1/32 -p tcp -m tcp --dport 80 -j SVC
-A SVC -m statistic --mode random --probability 0.33333333349 -j SEP1
-A SVC -m statistic --mode random --probability 0.50000000000 -j SEP2
-A SVC -j SEP3
-A SEP1 -p tcp -m tcp -j DNAT --to-destination 172.17.0.6:80
-A SEP2 -p tcp -m tcp -j DNAT --to-destination 172.17.0.7:80
-A SEP3 -p tcp -m tcp -j DNAT --to-destination 172.17.0.8:80""", FILTER_OPEN),
        tuple(LF("client", "198.51.100.1", 80) for _ in range(6)), topology=THREE, forks=True),
    # ACCEPT ends the mangle table's traversal; filter still drops.
    "accept-ends-one-table": Case(save("""*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A INPUT -j ACCEPT""", FILTER_OPEN + "\n-A INPUT -p tcp -m tcp --dport 22 -j DROP"), (TO_HOST_22,)),
    # goto does not come back; falling off a user chain returns; RETURN in a built-in chain
    # and the end of a chain reached by -g from it apply the policy; an unused chain is never seen.
    "chains": Case(save("""*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:A - [0:0]
:B - [0:0]
:C - [0:0]
:UNUSED - [0:0]
-A INPUT -j A
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
-A INPUT -p tcp -m tcp --dport 2323 -j RETURN
-A INPUT -p tcp -m tcp --dport 2323 -j ACCEPT
-A A -g B
-A A -p tcp -m tcp --dport 22 -j DROP
-A B -j C
-A B -j RETURN
-A C -p tcp -m tcp --dport 80 -j ACCEPT
-A UNUSED -j ACCEPT"""), (TO_HOST_22, LF("client", "198.51.100.1", 80, listen=(HOST,)),
                           LF("client", "198.51.100.1", 2323, listen=(HOST,)))),
    # REJECT: the kernel's trace says DROP, the sender gets the reset.
    "reject": Case(save(FILTER_OPEN + "\n-A INPUT -p tcp -m tcp --dport 22 -j REJECT --reject-with tcp-reset"),
                   (TO_HOST_22,)),
    # … and the reset is a new packet through OUTPUT, where the host's policy drops it: for the
    # sender a drop (the tracer says DROPPED, by the REJECT rule, its reply never leaving).
    "reject-reply-dropped-in-output": Case(save("""*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT DROP [0:0]
-A INPUT -p tcp -m tcp --dport 22 -j REJECT --reject-with tcp-reset"""), (TO_HOST_22,)),
    # The reset is attached to the connection it answers as RELATED (nf_ct_attach), not
    # ESTABLISHED: an OUTPUT rule for RELATED lets it out, one for ESTABLISHED does not see it.
    "reject-reset-is-related": Case(save(FILTER_OPEN + """
-A INPUT -p tcp -m tcp --dport 113 -j REJECT --reject-with tcp-reset
-A OUTPUT -p tcp -m conntrack --ctstate RELATED -j ACCEPT
-A OUTPUT -p tcp -m conntrack --ctstate ESTABLISHED -j DROP"""), (LF("client", "198.51.100.1", 113),)),
    # MASQUERADE of a packet leaving through lo: inet_select_addr skips lo's 127.0.0.1 (host
    # scope) and takes the first global address of the first interface that has one (by
    # ifindex), whatever the destination -- a kube-proxy node's own traffic to the apiserver
    # service, DNATed to its own address; the host to 127.0.0.1 and to its own addresses.
    "masquerade-through-lo": Case(save(NAT_HEAD + """
-A OUTPUT -d 10.96.0.1/32 -p tcp -m tcp --dport 443 -j DNAT --to-destination 198.51.100.1:6443
-A POSTROUTING -o lo -j MASQUERADE""", FILTER_OPEN), MASQ_LO_FLOWS, topology=SERVICE_ROUTE),
    "masquerade-through-lo-docker0-first": Case(save(NAT_HEAD + """
-A OUTPUT -d 10.96.0.1/32 -p tcp -m tcp --dport 443 -j DNAT --to-destination 198.51.100.1:6443
-A POSTROUTING -o lo -j MASQUERADE""", FILTER_OPEN), MASQ_LO_FLOWS,
        topology=Topology(tuple(reversed(SERVICE_ROUTE.ifaces)))),
    # Two addresses on eth0: through lo the first global one, even to the host's other address;
    # out of eth0 the one in the next hop's subnet.
    "masquerade-two-addresses": Case(save(NAT_HEAD + """
-A POSTROUTING -o lo -j MASQUERADE
-A POSTROUTING -s 172.17.0.0/16 -o eth0 -j MASQUERADE""", FILTER_OPEN),
        (LF(HOST, "203.0.113.1", 6443, listen=(HOST,)), LF("c1", "198.51.100.2", 8080),
         LF("c1", "203.0.113.2", 8080)),
        topology=Topology(ifaces=[
            kernel_lab.HostIface("eth0", ["198.51.100.1/24", "203.0.113.1/24"],
                                 peers=[kernel_lab.Peer("client", ["198.51.100.2/24", "203.0.113.2/24"])]),
            docker_topology().ifaces[1]])),
    # SNAT of the host's own traffic through lo takes the address it is given, whatever it is.
    "snat-through-lo": Case(save(NAT_HEAD + """
-A POSTROUTING -o lo -j SNAT --to-source 172.17.0.1""", FILTER_OPEN), MASQ_LO_FLOWS[1:], topology=SERVICE_ROUTE),
    # LOG, MARK and CONNMARK continue; later rules see the marks.
    "log-mark-connmark-continue": Case(save("""*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -j LOG --log-prefix "iptexplain-lab "
-A PREROUTING -p tcp -m tcp --dport 22 -j MARK --set-xmark 0x10/0xff
-A PREROUTING -m mark --mark 0x10/0xf0 -j CONNMARK --save-mark --nfmask 0xffffffff --ctmask 0xffffffff""",
        """*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m connmark --mark 0x10 -j ACCEPT"""), (TO_HOST_22,)),
    # limit: a first packet finds the bucket full and matches (the tracer's first branch).
    "limit-first-packet": Case(save("""*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --dport 22 -m limit --limit 3/min -j ACCEPT"""), (TO_HOST_22,), forks=True),
    # IPv6: ip6tables, ICMPv6 kept open for neighbour discovery, prefixes, DNAT to a container.
    "ipv6": Case(save("""*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p ipv6-icmp -j ACCEPT
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -s 2001:db8:1::/64 -p tcp -m tcp --dport 23 -j REJECT --reject-with tcp-reset
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
-A FORWARD -d fd00:17::2/128 -p tcp -m tcp --dport 8080 -j ACCEPT
-A FORWARD -p ipv6-icmp -j ACCEPT""", NAT_HEAD + """
-A PREROUTING -d 2001:db8:1::1/128 -p tcp -m tcp --dport 80 -j DNAT --to-destination [fd00:17::2]:8080"""),
        (LF("client", "2001:db8:1::1", 22, listen=(HOST,)), LF("client", "2001:db8:1::1", 23, listen=(HOST,)),
         LF("client", "2001:db8:1::1", 80, listen=("c1",), listen_port=8080)),
        topology=docker_topology(ipv6=True), family=6),
}


# ---------------------------------------------------------------------------------------------
# The comparison.


def check(lab: kernel_lab.Lab, case: Case, flow: kernel_lab.Flow) -> None:
    topo = case.topology
    ruleset = parse_text(case.ruleset, "<case>", family=case.family)
    tr = trace_flow(ruleset, tracer_flow(topo, flow), host_model(topo))
    leaves = list(tr.leaves())
    obs = lab.send(flow)
    why = obs.describe() + "\n  tracer:\n" + "\n".join(
        f"    {[c.text for c in l.conditions]} {l.outcome.kind}: {l.outcome.summary}\n      "
        + "\n      ".join(map(str, kernel_path(l.steps))) for l in leaves)
    complete = obs.steps is not None and not [n for n in obs.notes if "incomplete" in n or "not appear" in n]
    if obs.steps == [] and len(leaves) == 1 and kernel_path(leaves[0].steps) == []:
        leaf = leaves[0]  # neither saw a single iptables hook (a bridged packet without br_netfilter)
    elif complete:
        kpath = obs.path()
        if case.forks:
            same = [l for l in leaves if kernel_path(l.steps) == kpath]
            assert same, why
            leaf = same[0]
        else:
            assert len(leaves) == 1, why
            leaf = leaves[0]
            assert kernel_path(leaf.steps) == kpath, why
    else:
        # xtables-monitor 1.8.9 dies printing some ip6tables rules; then the counters judge:
        # every rule and policy of the tracer's path moved.
        assert case.family == 6 and not case.forks and len(leaves) == 1, why
        leaf = leaves[0]
        assert {(t, c, r) for t, c, r, _ in kernel_path(leaf.steps)} <= obs.hits(), why
    out = leaf.outcome
    if out.kind in (T.FORWARDED, T.SENT):
        assert obs.outcome == "delivered", why
        assert obs.delivered_to == owner_of(topo, out.packet["dst"]), why
    elif out.kind == T.DELIVERED:
        assert (obs.outcome, obs.delivered_to) == ("delivered", HOST), why
    elif out.kind == T.DROPPED:
        assert obs.outcome == "dropped", why
    elif out.kind == T.REJECTED:
        assert obs.outcome == "rejected", why
    else:
        pytest.fail(f"tracer outcome {out.kind}\n{why}")
    # (a host's packet to itself arrives on lo after its NAT: its source is MASQUERADE's choice)
    if obs.delivery is not None and out.kind in T.PASSED and (obs.delivered_to != flow.src_ns
                                                             or flow.src_ns == HOST):
        assert obs.delivery.dst == out.packet["dst"], why
        if "," not in out.packet["src"] and "-" not in out.packet["src"] and " " not in out.packet["src"]:
            assert obs.delivery.src == out.packet["src"], why


@pytest.fixture(scope="module")
def labs(kernel_labs):
    require_lab("nft")
    started: dict[str, kernel_lab.Lab] = {}

    def get(name: str) -> kernel_lab.Lab:
        if name not in started:
            case = CASES[name]
            lab = kernel_labs(case.topology)
            lab.load(case.ruleset, "nft", case.family)
            started[name] = lab
        return started[name]

    yield get
    for lab in started.values():
        lab.close()


PARAMS = [(name, i) for name, case in CASES.items() for i in range(len(case.flows))]


@pytest.mark.parametrize("name,i", PARAMS, ids=[f"{n}-{i}" for n, i in PARAMS])
def test_tracer_matches_kernel(labs, name: str, i: int) -> None:
    case = CASES[name]
    if any(k.startswith("net.bridge.") for k in case.topology.sysctls) and not os.path.isdir("/proc/sys/net/bridge"):
        pytest.skip("br_netfilter is not loaded: no bridge-nf sysctls to set")
    lab = labs(name)
    if case.needs_bridge_nf and not lab.bridge_nf:
        pytest.skip(lab.bridge_nf_reason)
    check(lab, case, case.flows[i])


def test_statistic_cascade_reaches_more_than_one_endpoint(labs) -> None:
    """The kernel chooses among the tracer's branches: over several connections it takes
    more than one of them (each has probability 1/3)."""
    case = CASES["statistic-cascade"]
    lab = labs("statistic-cascade")
    # 18 connections (each with its own source port, so a new conntrack entry and a new
    # choice): all reach the same endpoint with probability 3 * (1/3)**18 = 3**-17 ~ 7.7e-9.
    seen = {lab.send(f).delivered_to for f in case.flows * 3}
    assert len(seen - {None}) >= 2, seen


# The answer: the tracer's reply path (ESTABLISHED, reply direction, NAT undone by conntrack)
# against the rules whose counters moved over the whole connection.
REPLY_FLOWS = [("seed", LF("client", "198.51.100.1", 9525)), ("seed", LF("c1", "198.51.100.2", 8080)),
               ("seed", LF(HOST, "198.51.100.1", 9525)),
               # the host's answer is routed to the SNATed source, then re-routed once OUTPUT undoes it
               ("snat-in-nat-input", TO_HOST_22)]


@pytest.mark.parametrize("i", range(len(REPLY_FLOWS)))
def test_reply_path_matches_kernel_counters(labs, i: int) -> None:
    import dataclasses

    name, flow = REPLY_FLOWS[i]
    case = CASES[name]
    lab = labs(name)
    obs = lab.send(flow)
    assert obs.outcome == "delivered", obs.describe()
    tflow = dataclasses.replace(tracer_flow(case.topology, flow), sport=obs.sport, reply=True)
    tr = trace_flow(parse_text(case.ruleset, "<case>"), tflow, host_model(case.topology))
    leaf, = list(tr.leaves())
    if flow.src_ns != HOST:
        assert leaf.outcome.iface == case.topology.iface_of(flow.src_ns).name, leaf.outcome.summary
    assert leaf.outcome.kind in T.PASSED
    rules = {(t, c, r) for t, c, r, _ in kernel_path(leaf.steps)}
    assert rules <= obs.hits(), obs.describe() + "\n" + "\n".join(map(str, kernel_path(leaf.steps)))
    # The reply reaches the sender with the addresses it expects (the NAT undone).
    assert leaf.outcome.packet["dst"] == (tflow.src or leaf.outcome.packet["dst"])
    assert leaf.outcome.packet["src"] == flow.dst


# The reply's TCP flags: a NEW connection's first answer is the SYN,ACK; once the connection is
# ESTABLISHED its answers are plain segments (ACK, PSH…, never SYN).  The lab's listener greets
# (one byte after accept), so the kernel's trace has both; each is compared with the tracer's
# --reply of the flow in that state.  The FORWARD rules tell the two apart: the SYN,ACK is let
# through by the first, any other SYN is dropped by the second, data falls to the policy.
SYN_FILTER = save(NAT_HEAD + "\n-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE", FILTER_OPEN + """
-A FORWARD -i eth0 -p tcp -m tcp --tcp-flags SYN,ACK SYN,ACK -m conntrack --ctstate ESTABLISHED -j ACCEPT
-A FORWARD -i eth0 -p tcp -m tcp --tcp-flags SYN,RST SYN -j DROP""")


@pytest.mark.parametrize("state", ["NEW", "ESTABLISHED"])
def test_reply_flags_match_kernel(kernel_labs, state: str) -> None:
    import dataclasses

    require_lab("nft")
    topo = docker_topology()
    lab = kernel_labs(topo)
    lab.load(SYN_FILTER, "nft")
    flow = LF("c1", "198.51.100.2", 443, greet=True)
    obs = lab.send(flow)
    assert obs.outcome == "delivered", obs.describe()

    def answer(p: kernel_lab.TracedPacket) -> bool:
        h = p.first
        return h is not None and h.src == "198.51.100.2" and h.sport == 443 and "RST" not in h.flags

    if state == "NEW":
        kernel = [p for p in obs.packets if answer(p) and "SYN" in p.first.flags]
    else:
        kernel = [p for p in obs.packets if answer(p) and "SYN" not in p.first.flags and "PSH" in p.first.flags]
    assert len(kernel) == 1, obs.describe()
    kpath = [s.key for s in kernel[0].steps]
    tflow = dataclasses.replace(tracer_flow(topo, flow), sport=obs.sport, reply=True, state=state)
    tr = trace_flow(parse_text(SYN_FILTER, "<case>"), tflow, host_model(topo))
    leaf, = list(tr.leaves())
    assert kernel_path(leaf.steps) == kpath, (state, kpath, kernel_path(leaf.steps))
    assert leaf.outcome.kind == T.FORWARDED and leaf.outcome.iface == "docker0", leaf.outcome.summary
