"""Lab plans for the nft fixtures: the host each ruleset was written for, and flows through it.

A plan is a :class:`kernel_lab.Topology` built from what the ruleset itself says (its
interfaces, its zones' and bridges' subnets, the addresses of its DNAT targets as peers) and
the flows that exercise it: each published or forwarded port, each zone, each verdict-map
entry, and the paths that are refused.  The same plans drive the kernel's side
(``tests/test_nft_lab.py``) and the tracer's comparison with it.

A flow is *decidable* when the ruleset decides it from the flow alone; flows whose path rests
on a random choice (``numgen random mod 2``), on a set packets fill at run time (kube-proxy's
affinity sets) or on a rate limit's state are not, and the tracer agrees when one of its
branches is what the kernel did.

Addresses are documentation and private ranges only (RFC 5737, RFC 1918): the rulesets name
real addresses too (kube-proxy's test LoadBalancer IPs 1.2.3.4, 5.6.7.8), and no flow goes there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kernel_lab import HOST, Flow, HostIface, Peer, Topology


@dataclass(frozen=True)
class Case:
    flow: Flow
    decidable: bool = True


@dataclass(frozen=True)
class NftPlan:
    fixture: str
    topology: Topology
    cases: tuple[Case, ...] = field(default_factory=tuple)
    json_alone: bool = False
    """The tracer reads the fixture's ``nft -j list ruleset`` alone, iptables-nft's tables
    included (for a mixed host: as nft lists them, their xt extensions without options)."""

    @property
    def name(self) -> str:
        return self.fixture + (" (nft -j alone)" if self.json_alone else "")

    @property
    def flows(self) -> list[Flow]:
        return [c.flow for c in self.cases]


def _case(src_ns: str, dst: str, dport: int | None = None, *, label: str, proto: str = "tcp",
          src: str | None = None, listen: tuple[str, ...] | None = None, to_port: int | None = None,
          decidable: bool = True) -> Case:
    """``to_port``: the port after DNAT, where the peers listen."""
    return Case(Flow(src_ns, dst, dport, proto=proto, src=src, listen=listen, listen_port=to_port,
                     label=label), decidable)


INET_SERVER = NftPlan("inet-server-sets", Topology(ifaces=[
    HostIface("eth0", "198.51.100.1/24", peers=[Peer("client", "198.51.100.2/24")]),
]), (
    _case("client", "198.51.100.1", 22, listen=(HOST,), label="admin to ssh: vmap jump ssh, rate limit, accept",
          decidable=False),
    _case("client", "198.51.100.1", 22, src="203.0.113.9", listen=(HOST,),
          label="non-admin to ssh: reject with tcp reset"),
    _case("client", "198.51.100.1", 443, listen=(HOST,), label="web port in a named set"),
    _case("client", "198.51.100.1", 25, listen=(HOST,), label="smtp: vmap drop"),
    _case("client", "198.51.100.1", 9999, listen=(HOST,), label="closed port: reject icmpx"),
    _case("client", "198.51.100.1", 53, proto="udp", listen=(HOST,), label="dns over udp"),
    _case("client", "198.51.100.1", 80, src="192.0.2.7", listen=(HOST,), label="blocked interval set"),
    _case("client", "198.51.100.1", proto="icmp", label="ping: limit rate 5/second", decidable=False),
))

# Every flow passes `ip saddr @blocked drop`, a set the rate limit fills at run time: all fork.
INET_RATELIMIT = NftPlan("inet-server-ratelimit", Topology(ifaces=[
    HostIface("eth0", "198.51.100.1/24", peers=[Peer("client", ("198.51.100.2/24", "198.51.100.7/24"))]),
]), (
    _case("client", "198.51.100.1", 22, src="198.51.100.7", listen=(HOST,), decidable=False,
          label="ssh from an admin address (interval set)"),
    _case("client", "198.51.100.1", 22, listen=(HOST,), decidable=False,
          label="ssh from elsewhere: the rate limit that fills @blocked"),
    _case("client", "198.51.100.1", 443, listen=(HOST,), decidable=False, label="https (a named set)"),
    _case("client", "198.51.100.1", 53, proto="udp", src="10.0.0.5", listen=(HOST,), decidable=False,
          label="dns from 10.0.0.0/8"),
    _case("client", "198.51.100.1", 53, proto="udp", listen=(HOST,), decidable=False,
          label="dns from elsewhere: logged, policy drop"),
    _case("client", "198.51.100.1", proto="icmp", decidable=False, label="ping: limit rate 10/second"),
))

FIREWALLD = NftPlan("firewalld-nftables-backend", Topology(ifaces=[
    HostIface("eth0", ("198.51.100.1/24", "2001:db8:1::1/64"),
              peers=[Peer("client", ("198.51.100.2/24", "2001:db8:1::2/64"))]),
    HostIface("eth1", "192.168.1.1/24", peers=[Peer("lan", "192.168.1.10/24")]),
]), (
    _case("client", "198.51.100.1", 22, listen=(HOST,), label="public zone: ssh service"),
    _case("client", "198.51.100.1", 22, src="203.0.113.5", listen=(HOST,),
          label="public zone: rich rule rejects ssh from 203.0.113.0/24"),
    _case("client", "198.51.100.1", 5432, listen=(HOST,), label="rich rule: postgres from 198.51.100.0/24"),
    _case("client", "198.51.100.1", 5432, src="203.0.113.5", listen=(HOST,),
          label="postgres from elsewhere: zone's reject"),
    _case("client", "198.51.100.1", 8080, listen=(HOST,), label="public zone: port 8080/tcp"),
    _case("client", "198.51.100.1", 2222, to_port=22, label="forward-port 2222 -> 192.168.1.10:22"),
    _case("client", "198.51.100.1", 22, src="192.0.2.5", listen=(HOST,), label="drop zone by source"),
    _case("client", "198.51.100.1", 53, proto="udp", listen=(HOST,), label="public zone: udp 53 refused"),
    _case("lan", "192.168.1.1", 445, listen=(HOST,), label="internal zone: samba"),
    _case("lan", "198.51.100.2", 80, label="internal to public: forwarded?"),
    _case("client", "2001:db8:1::1", 22, listen=(HOST,), label="IPv6: public zone's ssh service"),
    _case("client", "2001:db8:1::1", 8080, listen=(HOST,), label="IPv6: port 8080/tcp"),
    _case("client", "2001:db8:1::1", 2222, listen=(HOST,), label="IPv6: the forward-port is IPv4 only"),
    _case("client", "2001:db8:1::1", 5432, listen=(HOST,), label="IPv6: the IPv4 rich rule does not match"),
))

DOCKER29 = NftPlan("docker29-nftables", Topology(ifaces=[
    HostIface("eth0", "198.51.100.1/24", peers=[Peer("client", "198.51.100.2/24")]),
    HostIface("bridge1", "192.0.2.1/24", bridge=True, peers=[Peer("c1", "192.0.2.2/24")]),
    HostIface("docker0", "172.17.0.1/16"),
]), (
    _case("client", "198.51.100.1", 8080, to_port=80, label="published port 8080 -> 192.0.2.2:80"),
    _case("client", "192.0.2.2", 80, label="direct access to the container: raw drop"),
    _case("client", "192.0.2.2", 22, label="direct access, unpublished port"),
    _case("client", "198.51.100.1", 9999, listen=(HOST,), label="host port, not published"),
    _case("c1", "198.51.100.2", 80, label="container to the outside: masquerade"),
    _case("c1", "198.51.100.1", 8080, listen=(HOST,), label="container to the host's published port"),
    _case(HOST, "198.51.100.1", 8080, to_port=80, label="the host to its own published port: nat-OUTPUT"),
))

DOCKER29_V6 = NftPlan("docker29-nftables-ipv6", Topology(ifaces=[
    HostIface("eth0", "2001:db8:1::1/64", peers=[Peer("client", "2001:db8:1::2/64")]),
    HostIface("br-dummy", "fd49:efd7:54aa::ff/64", bridge=True, peers=[Peer("c1", "fd49:efd7:54aa::1/64")]),
]), (
    _case("client", "2001:db8:1::1", 8080, to_port=80, label="IPv6 published port 8080 -> [fd49:efd7:54aa::1]:80"),
    _case("client", "fd49:efd7:54aa::1", 80, label="IPv6 direct access to the container: raw drop"),
    _case("c1", "2001:db8:1::2", 80, label="IPv6 container to the outside: masquerade"),
    _case("c1", "2001:db8:1::1", 8080, listen=(HOST,), label="IPv6 container to the host's published port"),
    _case(HOST, "2001:db8:1::1", 8080, to_port=80, label="IPv6 host to its own published port: nat-OUTPUT"),
))

MIXED_DOCKER_LXD = NftPlan("mixed-docker-lxd", Topology(ifaces=[
    HostIface("eth0", "198.51.100.1/24", peers=[Peer("client", "198.51.100.2/24")]),
    HostIface("docker0", "172.17.0.1/16", bridge=True, peers=[Peer("c1", "172.17.0.6/16")]),
    HostIface("lxdbr0", "10.161.38.1/24", bridge=True, peers=[Peer("lxc1", "10.161.38.10/24")]),
]), (
    _case("client", "198.51.100.1", 9525, label="Docker's published port 9525"),
    _case("lxc1", "198.51.100.2", 80, label="LXD container out: LXD accepts, Docker's FORWARD policy drops"),
    _case("client", "10.161.38.10", 80, label="to the LXD container: dropped by Docker's policy"),
    _case("lxc1", "10.161.38.1", 53, proto="udp", listen=(HOST,), label="LXD container to the host's DNS"),
    _case("c1", "198.51.100.2", 80, label="Docker container out: accepted and masqueraded"),
))

KUBE_PROXY = NftPlan("kube-proxy-nftables", Topology(ifaces=[
    HostIface("eth0", "192.168.0.2/24", peers=[Peer("ext", "192.168.0.10/24")]),
    HostIface("cni0", "10.180.0.254/16", bridge=True, hairpin=True, peers=[
        Peer("p1", "10.180.0.1/16"), Peer("p2", "10.180.0.2/16"), Peer("p3", "10.180.0.3/16"),
        Peer("p4", "10.180.0.4/16"), Peer("p5", "10.180.0.5/16")]),
    HostIface("svc0", "172.30.255.254/16"),
]), (
    _case("ext", "172.30.0.41", 80, label="ClusterIP from outside: DNAT to 10.180.0.1, masquerade"),
    _case("ext", "192.168.0.2", 3003, to_port=80, label="NodePort 3003 -> 10.180.0.3"),
    _case("ext", "192.168.0.2", 3001, label="NodePort of a Local service without local endpoints: drop"),
    _case("ext", "172.30.0.46", 80, label="ClusterIP without endpoints: reject"),
    _case("ext", "172.30.0.41", 443, label="ClusterIP, wrong port: reject"),
    _case("ext", "172.30.0.50", 80, label="unallocated ClusterIP: drop"),
    _case("ext", "192.168.99.33", 80, label="ExternalIP, two endpoints: numgen random mod 2",
          decidable=False),
    _case("p1", "172.30.0.41", 80, label="hairpin: the endpoint to its own service"),
    _case("p1", "192.168.99.22", 80, label="pod to a Local service's ExternalIP: short-circuit"),
    _case("p2", "172.30.0.45", 80, label="ClusterIP with session affinity (a dynamic set)",
          decidable=False),
    _case(HOST, "172.30.0.43", 80, label="the node to a ClusterIP: nat-output, masquerade"),
    _case(HOST, "172.30.0.46", 80, label="the node to a ClusterIP without endpoints: filter-output reject"),
))

# The mixed host as `nft -j list ruleset` alone shows it: Docker's rules in iptables-nft's tables,
# `-m conntrack` and `-m addrtype` as `{"xt": …}` without options (they fork).
MIXED_DOCKER_LXD_JSON = NftPlan(MIXED_DOCKER_LXD.fixture, MIXED_DOCKER_LXD.topology, tuple(
    Case(c.flow, decidable=False) for c in MIXED_DOCKER_LXD.cases), json_alone=True)

# An iptables-nft host (firewalld's iptables backend) as `nft -j list ruleset` alone shows it:
# REJECT, LOG, CT, conntrack, rpfilter… as `{"xt": …}` without options (they fork or stay undecided).
IPTABLES_NFT_FIREWALLD_JSON = NftPlan("iptables-nft-firewalld", FIREWALLD.topology, tuple(
    Case(c.flow, decidable=False) for c in FIREWALLD.cases if ":" not in c.flow.dst), json_alone=True)

PLANS: tuple[NftPlan, ...] = (INET_SERVER, INET_RATELIMIT, FIREWALLD, DOCKER29, DOCKER29_V6, MIXED_DOCKER_LXD, KUBE_PROXY,
                              MIXED_DOCKER_LXD_JSON, IPTABLES_NFT_FIREWALLD_JSON)
KERNEL_PLANS: tuple[NftPlan, ...] = tuple(p for p in PLANS if not p.json_alone)
"""One plan per fixture (what the kernel does does not depend on what the tracer reads)."""
