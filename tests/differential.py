"""Kernel-differential checking: the tracer against the real kernel, flow by flow.

For a ruleset this module

1. derives a lab :class:`~kernel_lab.Topology` from the ruleset itself -- the interfaces its
   rules name (``-i``/``-o``), the subnets they carry (Docker's ``-s NET ! -o IF -j
   MASQUERADE``, ``-s NET -i IF``, ``-d NET -o IF``), DNAT destinations as peers (containers,
   pods) behind the interface that carries them, an outside ``client`` on the external
   interface, documentation addresses for the host;
2. builds the :class:`~iptexplain.host.HostModel` *from that topology* (interfaces, addresses,
   default route, forwarding), so the tracer and the kernel judge the same host;
3. chooses flows from the ruleset's own addresses and ports (every DNATed port, every
   ``--dport`` of filter INPUT/FORWARD rules, container subnets, cluster IPs, addresses of
   ``-s``/``-d`` matches) plus seeded random ones;
4. sends each flow through the kernel (:class:`kernel_lab.Lab`) and through
   :func:`iptexplain.netfilter.tracer.trace_flow`, and compares
   (a) the outcome: where the first packet arrived (which namespace) with which addresses
       after NAT, or that it was dropped / rejected;
   (b) the rule-by-rule path: the tracer's matched rules (table, chain, rule position,
       verdict) against the kernel's ``xtables-monitor --trace`` events (nft backend), or
       against the rules whose counters moved (legacy backend: the tracer's rules must be
       among them).
   Established packets of a connection the kernel carried are checked too, from the same
   observation: the reply (SYN-ACK, against the tracer's ``Flow.reply`` trace of the flow, with
   conntrack undoing its NAT) and the sender's ACK (``state=ESTABLISHED``, the NAT kept).

A flow where the tracer forks (``statistic``, an unknown module) is *undecidable*: it agrees
when one of the tracer's branches is what the kernel did; those are counted apart.

Normalisation (what the kernel prints differently, see /work/shared/netfilter-facts.md): NAT
targets show as ACCEPT, REJECT as DROP, a user chain's end prints nothing, policies print as
``policy`` events; the lab already removes its own TRACE rules.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import random
import zlib
from collections import Counter as _Counter
from dataclasses import dataclass, field
from typing import Iterable, Optional

import kernel_lab as KL
from iptexplain.ext.base import extension_name
from iptexplain.graph import Rule, Ruleset
from iptexplain.host import HostModel, IfAddr, Interface, Route
from iptexplain.netfilter import trace as T
from iptexplain.netfilter.tracer import trace_flow
from iptexplain.parse import parse_text

BRIDGE_PREFIXES = ("docker", "br-", "bridge", "cni", "virbr", "lxcbr", "lxdbr", "podman", "cbr",
                   "kube-bridge", "internal", "noicc", "v6net", "weave", "flannel")
"""Interface names that are bridges with containers/VMs behind them (Docker's user networks in
the corpus are named bridge1, internal1, noicc, v6net)."""

# Subnets for interfaces the rules name without saying what they carry, and for the host's
# external side (documentation and shared address space, so no real network is implied).
EXTERNAL_POOL = ("198.51.100.0/24", "203.0.113.0/24") + tuple(f"100.64.{i}.0/24" for i in range(1, 40))
INTERNAL_POOL = tuple(f"10.250.{i}.0/24" for i in range(1, 40))
EXTERNAL_POOL6 = tuple(f"2001:db8:{i:x}::/64" for i in range(0x100, 0x140))
INTERNAL_POOL6 = tuple(f"fd00:250:{i:x}::/64" for i in range(1, 40))
MAX_IFACES = 10
MAX_PEERS_PER_BRIDGE = 4
FLOW_CAP = 30


# ---------------------------------------------------------------------------------------------
# What the ruleset says


IPAddr = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network
BITS = {4: 32, 6: 128}


def _net(addr) -> IPNet:
    return ipaddress.ip_network(str(addr), strict=False)


def _ip(value: int, family: int) -> IPAddr:
    """An address from the rule graph's integer (``ip_address(1)`` would be 0.0.0.1)."""
    return ipaddress.IPv4Address(value) if family == 4 else ipaddress.IPv6Address(value)


def _same_ip(a: Optional[str], b: Optional[str]) -> bool:
    try:
        return a is not None and b is not None and ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a == b


def _concrete(name: Optional[str]) -> bool:
    return bool(name) and not name.endswith("+") and name != "lo"


def _is_bridge(name: str) -> bool:
    return name.startswith(BRIDGE_PREFIXES)


def _ports(rule: Rule) -> list[tuple[str, int]]:
    """(proto, a destination port) of a rule's tcp/udp/multiport match, not inverted."""
    proto = rule.header.proto if not rule.header.proto_inv else None
    out: list[tuple[str, int]] = []
    for m in rule.matches:
        name = extension_name(m)
        if name in ("tcp", "udp"):
            for key in ("dport",):
                for k, v in m.values:
                    if k == key and not v.invert:
                        lo, hi = v.value
                        out.append((name, lo))
                        if hi != lo:
                            out.append((name, hi))
        elif name == "multiport":
            for k, v in m.values:
                if k in ("dports", "ports") and not v.invert and proto in ("tcp", "udp"):
                    for lo, hi in v.value[:3]:
                        out.append((proto, lo))
    return out


def _dnat_to(rule: Rule, family: int) -> list[tuple[IPAddr, Optional[int]]]:
    if rule.target is None or extension_name(rule.target) != "DNAT":
        return []
    out = []
    for r in getattr(rule.target, "ranges", ()):
        if r.addr_min is not None:
            out.append((_ip(r.addr_min, family), r.port_min))
    return out


def _interesting_addr(a: IPAddr) -> bool:
    return not (a.is_loopback or a.is_multicast or a.is_unspecified or a.is_link_local
                or a == ipaddress.IPv4Address("255.255.255.255"))


@dataclass
class Facts:
    """What a reading engineer takes from a ruleset to set up a host for it."""

    ifaces: list[str] = field(default_factory=list)  # concrete names, in order of appearance
    wildcards: list[str] = field(default_factory=list)
    carried: dict[str, IPNet] = field(default_factory=dict)
    dnats: list[tuple[Rule, IPAddr, Optional[int]]] = field(default_factory=list)
    input_ports: list[tuple[str, int, Optional[str], Optional[str]]] = field(default_factory=list)  # proto, port, src, iface
    forward_ports: list[tuple[str, int, Optional[str]]] = field(default_factory=list)  # proto, port, dst
    host_addrs: list[IPAddr] = field(default_factory=list)
    remote_addrs: list[IPAddr] = field(default_factory=list)
    sources: list[IPAddr] = field(default_factory=list)
    service_ips: list[tuple[IPAddr, str, int]] = field(default_factory=list)  # cluster IPs
    direct_drops: list[IPAddr] = field(default_factory=list)  # raw PREROUTING -d X -j DROP
    nat_ports: list[tuple[str, int]] = field(default_factory=list)  # NodePorts: nat --dport -> jump/DNAT, any -d
    all_addrs: list[IPNet] = field(default_factory=list)


def read_facts(rs: Ruleset, family: int = 4) -> Facts:
    f = Facts()
    bits = BITS[family]
    lo_plen, hi_plen = (8, 31) if family == 4 else (16, 127)  # a subnet, not a host or the world

    def ip(v: int) -> IPAddr:
        return _ip(v, family)

    seen_if: dict[str, None] = {}
    for t in rs.tables_of(family):
        for r in t.rules():
            h = r.header
            for n in (h.iniface, h.outiface):
                if n and n != "lo":
                    if n.endswith("+"):
                        if n not in f.wildcards:
                            f.wildcards.append(n)
                    else:
                        seen_if.setdefault(n, None)
            for a in (h.src, h.dst):
                if a is not None and not a.is_any:
                    f.all_addrs.append(_net(a))
            tgt = r.target_name
            # Subnets interfaces carry.
            if t.name == "nat" and tgt == "MASQUERADE" and h.src is not None and not h.src_inv \
                    and _concrete(h.outiface) and h.outiface_inv and (h.src.prefixlen or bits) < bits:
                f.carried.setdefault(h.outiface, _net(h.src))
            elif h.dst is not None and not h.dst_inv and _concrete(h.outiface) and not h.outiface_inv \
                    and lo_plen <= (h.dst.prefixlen or bits) < hi_plen:
                f.carried.setdefault(h.outiface, _net(h.dst))
            elif h.src is not None and not h.src_inv and _concrete(h.iniface) and not h.iniface_inv \
                    and lo_plen <= (h.src.prefixlen or bits) < hi_plen:
                f.carried.setdefault(h.iniface, _net(h.src))
            for addr, port in _dnat_to(r, family):
                f.dnats.append((r, addr, port))
            if t.name == "nat" and r.jump and h.dst is not None and not h.dst_inv and h.dst.prefixlen == bits:
                for proto, port in _ports(r):
                    f.service_ips.append((ip(h.dst.value), proto, port))
            if t.name == "nat" and (r.jump or tgt in ("DNAT", "REDIRECT")) and (h.dst is None or h.dst.is_any):
                for pp in _ports(r):
                    if pp not in f.nat_ports:
                        f.nat_ports.append(pp)
            if t.name == "raw" and r.chain == "PREROUTING" and tgt == "DROP" and h.dst is not None \
                    and h.dst.prefixlen == bits and not h.dst_inv:
                f.direct_drops.append(ip(h.dst.value))
            if t.name == "filter":
                src = (str(ip(h.src.value)) if h.src is not None and not h.src_inv
                       and h.src.prefixlen == bits else
                       (str(ip(h.src.value + 7)) if h.src is not None and not h.src_inv
                        and lo_plen <= (h.src.prefixlen or 0) <= bits - 3 else None))
                if src and _interesting_addr(ipaddress.ip_address(src)):
                    f.sources.append(ipaddress.ip_address(src))
                ports = _ports(r)
                if r.chain in ("INPUT",) or r.chain.startswith(("ufw-user-input", "ufw-before-input", "ufw-after-input")) \
                        or "INPUT" in r.chain.upper() or "IN" == r.chain[-2:]:
                    for proto, port in ports:
                        f.input_ports.append((proto, port, src, h.iniface if _concrete(h.iniface) and not h.iniface_inv else None))
                    if h.dst is not None and h.dst.prefixlen == bits and not h.dst_inv:
                        a = ip(h.dst.value)
                        if _interesting_addr(a) and a not in f.host_addrs:
                            f.host_addrs.append(a)
                elif "FORWARD" in r.chain.upper() or r.chain.startswith(("DOCKER", "ufw-user-forward", "KUBE")):
                    for proto, port in ports:
                        f.forward_ports.append((proto, port, str(ip(h.dst.value))
                                                if h.dst is not None and h.dst.prefixlen == bits and not h.dst_inv else None))
                else:
                    for proto, port in ports:
                        f.input_ports.append((proto, port, src, None))
                if r.chain == "OUTPUT" or "OUTPUT" in r.chain.upper():
                    if h.dst is not None and h.dst.prefixlen == bits and not h.dst_inv:
                        a = ip(h.dst.value)
                        if _interesting_addr(a) and a not in f.remote_addrs:
                            f.remote_addrs.append(a)
    f.ifaces = list(seen_if)
    return f


# ---------------------------------------------------------------------------------------------
# The lab's host, derived from the ruleset


@dataclass
class Peer:
    name: str
    iface: str
    addr: str  # primary address
    prefixlen: int
    extra: list[str] = field(default_factory=list)
    role: str = "client"  # client, container, endpoint


@dataclass
class Plan:
    """A ruleset, the lab host derived from it, the host model, and the flows to check."""

    name: str
    text: str
    ruleset: Ruleset
    facts: Facts
    ifaces: dict[str, dict]  # name -> {"net": IPNet, "host": addr, "bridge": bool, "extra": [...]}
    peers: list[Peer]
    external: str
    client: str
    cases: list["Case"] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    family: int = 4

    @property
    def host_plen(self) -> int:
        return BITS[self.family]

    # -- the two views of the same host ------------------------------------------------------

    def topology(self) -> KL.Topology:
        out = []
        for name, info in self.ifaces.items():
            hp = self.host_plen
            ps = [KL.Peer(p.name, [f"{p.addr}/{p.prefixlen}"] + [f"{a}/{hp}" for a in p.extra], iface="eth0")
                  for p in self.peers if p.iface == name]
            addrs = [f"{info['host']}/{info['net'].prefixlen}"] + [f"{a}/{hp}" for a in info.get("extra", [])]
            bridge = info["bridge"] or len(ps) > 1
            out.append(KL.HostIface(name, addrs, peers=ps, bridge=bridge, hairpin=bridge))
        # The kernel rate-limits ICMP errors per destination (a burst of 6, then one a second):
        # a run of REJECTs to one client would see its later errors vanish.  Off in the lab
        # host, so every REJECT answers as it would for a single packet.
        sysctls = {"net.ipv4.icmp_ratelimit": "0"}
        if self.family == 6:
            sysctls["net.ipv6.icmp.ratelimit"] = "0"
        return KL.Topology(ifaces=out, sysctls=sysctls)

    def host_model(self) -> HostModel:
        fam, hp = self.family, self.host_plen
        h = HostModel(source="kernel lab topology")
        h.add_interface(Interface("lo", [IfAddr("127.0.0.1", 8, 4), IfAddr("::1", 128, 6)], kind="loopback"))
        for name, info in self.ifaces.items():
            addrs = [IfAddr(str(info["host"]), info["net"].prefixlen, fam)]
            addrs += [IfAddr(str(a), hp, fam) for a in info.get("extra", [])]
            h.add_interface(Interface(name, addrs, kind="bridge" if info["bridge"] else "veth"))
        client = self.peer(self.client)
        h.routes.append(Route("default", self.external, client.addr, family=fam))
        for p in self.peers:
            for a in p.extra:
                h.routes.append(Route(f"{a}/{hp}", p.iface, p.addr, family=fam))
        h.sysctls.update({"net.ipv4.ip_forward": "1", "net.ipv4.conf.all.rp_filter": "0",
                          "net.ipv6.conf.all.forwarding": "1",
                          "net.bridge.bridge-nf-call-iptables": "1", "net.bridge.bridge-nf-call-ip6tables": "1"})
        return h

    def peer(self, name: str) -> Peer:
        return next(p for p in self.peers if p.name == name)

    def owner(self, addr: str) -> Optional[str]:
        """The namespace that has this address (``host`` for the host's own)."""
        try:
            a = ipaddress.ip_address(addr)
        except ValueError:
            return None
        if a.is_loopback:
            return KL.HOST
        for info in self.ifaces.values():
            if a == info["host"] or a in info.get("extra", []):
                return KL.HOST
        for p in self.peers:
            if a == ipaddress.ip_address(p.addr) or a in map(ipaddress.ip_address, p.extra):
                return p.name
        return None

    def host_addr(self, iface: Optional[str] = None) -> str:
        return str(self.ifaces[iface or self.external]["host"])


def _free_net(pool: Iterable[str], used: list[IPNet],
              ours: Iterable[IPNet] = ()) -> IPNet:
    """A subnet of the pool that none of ``ours`` takes and no rule names; failing that, one
    only broad rules cover (an anti-spoofing ``-s 10.0.0.0/8`` must not leave the lab without
    addresses)."""
    pool = list(pool)
    ours = list(ours)
    for minlen in (0, 12, 17, 25, 33):
        for text in pool:
            n = ipaddress.ip_network(text)
            if any(n.overlaps(o) for o in ours):
                continue
            if not any(n.overlaps(u) for u in used if u.prefixlen >= minlen):
                return n
    raise RuntimeError("no free subnet left")


def plan_for(name: str, text: str, *, seed: Optional[int] = None, cap: int = FLOW_CAP,
             family: Optional[int] = None) -> Plan:
    """Derive the lab host, the host model and the flows for one ruleset (of one family:
    the ruleset's own unless given)."""
    rs = parse_text(text, name)
    if family is None:
        family = 6 if rs.families() == [6] else 4
    f = read_facts(rs, family)
    ext_pool, int_pool = (EXTERNAL_POOL, INTERNAL_POOL) if family == 4 else (EXTERNAL_POOL6, INTERNAL_POOL6)
    min_plen, wide = (16, 24) if family == 4 else (64, 64)
    used: list[IPNet] = [n for n in f.all_addrs if n.prefixlen >= 8]
    ifaces: dict[str, dict] = {}
    notes: list[str] = []

    def add_iface(ifname: str, net: IPNet, bridge: bool) -> None:
        ifaces[ifname] = {"net": net, "host": next(_first_hosts(net)), "bridge": bridge, "extra": []}

    # External side: the first interface the rules name that is not a bridge (else eth0).
    physical = [n for n in f.ifaces if not _is_bridge(n)]
    external = physical[0] if physical else "eth0"
    ext_net = _free_net(ext_pool, used)
    used.append(ext_net)
    add_iface(external, ext_net, False)
    # Interfaces the rules name: the subnets they carry, else one from the pools.
    names = [n for n in f.ifaces if n != external]
    for w in f.wildcards:
        stem = w[:-1]
        if stem and not any(n.startswith(stem) for n in names + [external]) and len(stem) <= 13:
            names.append(stem + "0")
    for n in names[: MAX_IFACES - 1]:
        net = f.carried.get(n)
        if net is None or any(net.overlaps(i["net"]) for i in ifaces.values()):
            net = _free_net(int_pool if _is_bridge(n) else ext_pool, used,
                            [i["net"] for i in ifaces.values()])
            notes.append(f"{n}: no subnet in the rules, {net} assumed")
        if net.prefixlen < min_plen:
            net = ipaddress.ip_network(f"{net.network_address}/{min_plen}")
        used.append(net)
        add_iface(n, net, _is_bridge(n))
    if len(names) > MAX_IFACES - 1:
        notes.append(f"interfaces left out: {names[MAX_IFACES - 1:]}")
    # The host's own addresses that rules name (filter INPUT -d X/32).
    for a in f.host_addrs[:3]:
        if not any(a in i["net"] for i in ifaces.values()) and not any(a == s for s, _, _ in f.service_ips) \
                and not any(a == d for _, d, _ in f.dnats):
            ifaces[external]["extra"].append(a)

    peers: list[Peer] = []
    taken: set[str] = {str(i["host"]) for i in ifaces.values()}

    def add_peer(pname: str, iface: str, addr: IPAddr, role: str) -> Optional[Peer]:
        if str(addr) in taken:
            return None
        if sum(1 for p in peers if p.iface == iface) >= MAX_PEERS_PER_BRIDGE:
            return None
        p = Peer(pname, iface, str(addr), ifaces[iface]["net"].prefixlen, role=role)
        peers.append(p)
        taken.add(str(addr))
        return p

    ext_hosts = _first_hosts(ext_net)
    next(ext_hosts)
    client = add_peer("client", external, next(ext_hosts), "client")
    assert client is not None
    # DNAT destinations: containers/pods/endpoints behind the interface carrying them.
    n_ep = 0
    for r, addr, port in f.dnats:
        if str(addr) in taken or addr.is_loopback:
            continue
        home = next((n for n, i in ifaces.items() if addr in i["net"]), None)
        if home is None:
            if len(ifaces) >= MAX_IFACES:
                continue
            net = ipaddress.ip_network(f"{addr}/{wide}", strict=False)
            if any(net.overlaps(i["net"]) for i in ifaces.values()):
                continue
            home = f"ep{len(ifaces)}"
            gw = next(h for h in _first_hosts(net) if h != addr)
            ifaces[home] = {"net": net, "host": gw, "bridge": True, "extra": []}
            taken.add(str(gw))
            notes.append(f"{home}: a bridge for DNAT destination {addr} ({net} assumed)")
        n_ep += 1
        add_peer(f"ep{n_ep}", home, addr, "container")
    # A container on every bridge that has none yet, and a second one for traffic between them.
    for n, info in ifaces.items():
        if not info["bridge"]:
            if n != external and not any(p.iface == n for p in peers):
                h = next(a for a in _first_hosts(info["net"]) if str(a) not in taken)
                add_peer(f"p{n}"[:15].replace("-", ""), n, h, "client")
            continue
        have = [p for p in peers if p.iface == n]
        for k in range(max(0, 2 - len(have))):
            h = next(a for a in _first_hosts(info["net"]) if str(a) not in taken)
            add_peer(f"c{len(peers)}", n, h, "container")
    # Remote addresses the rules name go on the client (routed there by the host).
    cl = peers[0]
    for a in f.remote_addrs[:3]:
        if str(a) not in taken and not any(a in i["net"] for i in ifaces.values()):
            cl.extra.append(str(a))
            taken.add(str(a))
    plan = Plan(name, text, rs, f, ifaces, peers, external, cl.name, notes=notes, family=family)
    if seed is None:
        # DIFFERENTIAL_SEED=N explores other random flows (the default is fixed per ruleset).
        import os

        seed = zlib.crc32(name.encode()) + int(os.environ.get("DIFFERENTIAL_SEED", "0"))
    plan.cases = choose_flows(plan, seed=seed, cap=cap)
    return plan


def _first_hosts(net: IPNet):
    """Usable addresses, the conventional gateway (.1) first."""
    for a in net.hosts():
        yield a


# ---------------------------------------------------------------------------------------------
# Flows


@dataclass
class Case:
    kind: str
    flow: KL.Flow  # what the lab sends (sport always given, so the tracer sees the same one)
    tflow: T.Flow  # the same flow for the tracer

    @property
    def label(self) -> str:
        return f"{self.kind}: {self.flow}"


def _tracer_flow(plan: Plan, flow: KL.Flow) -> T.Flow:
    proto = flow.proto
    fam = plan.family
    if flow.src_ns == KL.HOST:
        return T.Flow(fam, proto, flow.src, flow.dst, flow.sport if proto != "icmp" else None,
                      flow.dport, from_host=True)
    p = plan.peer(flow.src_ns)
    return T.Flow(fam, proto, flow.src or p.addr, flow.dst, flow.sport if proto != "icmp" else None,
                  flow.dport, iniface=p.iface)


def choose_flows(plan: Plan, *, seed: int, cap: int = FLOW_CAP) -> list[Case]:
    f = plan.facts
    rnd = random.Random(seed)
    everyone = tuple(p.name for p in plan.peers) + (KL.HOST,)
    ext_ip = plan.host_addr()
    client = plan.client
    containers = [p for p in plan.peers if p.role == "container"]
    by_iface: dict[str, list[Peer]] = {}
    for p in containers:
        by_iface.setdefault(p.iface, []).append(p)
    want: list[tuple[str, str, str, Optional[int], str, Optional[str], Optional[int]]] = []

    def add(kind: str, src_ns: str, dst: str, dport: Optional[int], proto: str = "tcp",
            src: Optional[str] = None, listen_port: Optional[int] = None) -> None:
        if proto == "icmp":
            dport = None
        elif dport is None or not 0 < dport < 65536:
            return
        key = (kind, src_ns, dst, dport, proto, src, listen_port)
        if key not in want and src_ns != dst:
            want.append(key)

    # Ports the nat table DNATs for any local address (NodePorts, CNI hostports).
    for proto, dport in f.nat_ports[:4]:
        add("incoming-published", client, ext_ip, dport, proto)
        add("local-to-published", KL.HOST, ext_ip, dport, proto)
        if containers:
            add("hairpin", containers[0].name, ext_ip, dport, proto)
    # Published / DNATed ports: from outside, from the host, hairpin, from a neighbour.
    for r, addr, port in f.dnats[:6]:
        if not _ports(r):
            # kube-proxy's KUBE-SEP-*: reached only through a service; the endpoint itself
            # is a destination of its own.
            if plan.owner(str(addr)) not in (None, KL.HOST):
                add("direct-to-container", client, str(addr), port or 80)
            continue
        for proto, dport in _ports(r)[:1]:
            h = r.header
            dst = str(_ip(h.dst.value, plan.family)) if h.dst is not None and h.dst.prefixlen == plan.host_plen \
                and not h.dst_inv else ext_ip
            if ipaddress.ip_address(dst).is_loopback:
                continue
            add("incoming-published", client, dst, dport, proto, listen_port=port)
            add("local-to-published", KL.HOST, dst, dport, proto, listen_port=port)
            owner = plan.owner(str(addr))
            if owner and owner != KL.HOST:
                add("hairpin", owner, dst, dport, proto, listen_port=port)
                o = plan.peer(owner)
                add("direct-to-container", client, str(addr), port or dport, proto)
                for nb in by_iface.get(o.iface, []):
                    if nb.name != owner:
                        add("neighbour-to-published", nb.name, dst, dport, proto, listen_port=port)
                        break
    # Cluster IPs (kube-proxy): from a pod, from the host, from outside.
    for ip, proto, port in f.service_ips[:4]:
        pod = containers[0].name if containers else client
        add("cluster-ip", pod, str(ip), port, proto)
        add("cluster-ip-local", KL.HOST, str(ip), port, proto)
    # Direct access to container addresses the raw table protects.
    for a in f.direct_drops[:2]:
        add("direct-to-container", client, str(a), 80)
    # The host's own ports the filter rules name.
    for proto, port, src, iface in f.input_ports[:10]:
        ns = client
        if iface and iface in plan.ifaces:
            ns = next((p.name for p in plan.peers if p.iface == iface), client)
        dst = plan.host_addr(plan.peer(ns).iface) if ns != KL.HOST else ext_ip
        add("incoming-host", ns, dst, port, proto, src=src if ns == client else None)
    for a in f.host_addrs[:2]:
        if plan.owner(str(a)) == KL.HOST:
            add("incoming-host", client, str(a), 22)
    # Forwarded ports (to containers / other interfaces).
    for proto, port, dst in f.forward_ports[:6]:
        if dst and plan.owner(dst) not in (None, KL.HOST):
            add("forward-direct", client, dst, port, proto)
        elif containers:
            add("container-out", containers[0].name, plan.peer(client).addr, port, proto)
    # Containers outward, container to container.
    for n, cs in list(by_iface.items())[:4]:
        c = cs[0]
        add("container-out", c.name, plan.peer(client).addr, 443)
        add("container-out", c.name, plan.peer(client).addr, 53, "udp")
        if len(cs) > 1:
            add("container-to-container", c.name, cs[1].addr, 80)
        others = [o for m, os_ in by_iface.items() if m != n for o in os_]
        if others:
            add("across-bridges", c.name, others[0].addr, 80)
        add("container-to-host", c.name, plan.host_addr(n), 22)
    for p in [p for p in plan.peers if p.role == "client" and p.name != client][:3]:
        add("other-side-out", p.name, plan.peer(client).addr, 80)
    add("ping-host", client, ext_ip, None, "icmp")
    add("local-out", KL.HOST, plan.peer(client).addr, 80)
    add("local-to-self", KL.HOST, ext_ip, 22)
    lab_nets = [i["net"] for i in plan.ifaces.values()]
    for a in [a for a in f.sources if not any(a in n for n in lab_nets)][:4]:
        add("incoming-from-source", client, ext_ip, 22, src=str(a))
    # Seeded random flows: ports, protocols, sources, destinations among the lab's addresses.
    dests = [ext_ip] + [p.addr for p in plan.peers if p.name != client]
    senders = [client] + [p.name for p in containers] + [KL.HOST]
    randoms = []
    for _ in range(8 if cap <= FLOW_CAP else cap):
        ns = rnd.choice(senders)
        proto = rnd.choice(("tcp", "tcp", "udp"))
        dst = rnd.choice([d for d in dests + [plan.peer(client).addr] if plan.owner(d) != ns] or [ext_ip])
        src = None
        if ns == client and rnd.random() < 0.5:
            if plan.family == 4:
                src = str(ipaddress.IPv4Address(rnd.choice((0x08000000, 0x5DB80000, 0xC6336400)) + rnd.randrange(1, 250)))
            else:
                src = f"2001:db8:{rnd.choice(('77', 'abc', 'f00'))}::{rnd.randrange(1, 250):x}"
            if plan.owner(src) is not None:
                src = None
        randoms.append(("random", ns, dst, rnd.choice((22, 25, 53, 80, 443, 3306, 8080, rnd.randrange(1024, 65000))),
                        proto, src, None))
    # Keep every kind represented under the cap: round-robin over kinds.
    kinds: dict[str, list] = {}
    for w in want:
        kinds.setdefault(w[0], []).append(w)
    chosen = []
    budget = max(cap - 6, 1)
    while len(chosen) < budget and any(kinds.values()):
        for k in list(kinds):
            if kinds[k] and len(chosen) < budget:
                chosen.append(kinds[k].pop(0))
    chosen += randoms[: cap - len(chosen)]
    cases = []
    host = plan.host_model()
    for i, (kind, ns, dst, dport, proto, src, lport) in enumerate(chosen):
        sport = 31000 + i if proto != "icmp" else 0x4000 + i
        flow = KL.Flow(ns, dst, dport, proto, src=src, sport=sport, listen=everyone,
                       listen_port=lport if lport is not None else dport, label=f"{kind} #{i}")
        tflow = _tracer_flow(plan, flow)
        if lport is None and proto != "icmp":
            # Listen on the port the packet is DNATed to (the tracer's guess only places the
            # listeners: the judge is where the kernel's packet arrives, with which port).
            flow = KL.Flow(ns, dst, dport, proto, src=src, sport=sport, listen=everyone,
                           listen_port=_final_dport(plan, tflow, host) or dport, label=flow.label)
        cases.append(Case(kind, flow, tflow))
    return cases


def _final_dport(plan: Plan, tflow: T.Flow, host: HostModel) -> Optional[int]:
    try:
        ports = {lf.outcome.packet.get("dport") for lf in trace_flow(plan.ruleset, tflow, host, verbose=False).leaves()
                 if lf.outcome.kind in T.PASSED}
    except Exception:
        return None
    ports = {int(p) for p in ports if p and str(p).isdigit()}
    return ports.pop() if len(ports) == 1 else None


# ---------------------------------------------------------------------------------------------
# The tracer's path in the kernel's vocabulary

Event = tuple[str, str, Optional[int], str]  # table, chain, rule number (None: policy), verdict


TEvent = tuple[Event, Optional[Rule], bool]  # the event, its rule, optional


def tracer_events(steps: Iterable[T.Step], tables: Optional[set[str]] = None) -> list[TEvent]:
    """What ``xtables-monitor --trace`` prints for a leaf's steps: one event per matched rule
    (CONTINUE, JUMP:X, GOTO:X, RETURN, ACCEPT, DROP -- NAT as ACCEPT, REJECT as DROP) and one per
    base-chain policy; nothing for the end of a user chain.

    A rule the tracer says matches only *some* of the packets and changes nothing (a ``LOG``
    behind ``-m limit``: the bucket's state decides, ``detail["partial"]``) is optional: the
    kernel prints it or not, depending on the tokens earlier packets left."""
    out: list[TEvent] = []
    pending: Optional[tuple[str, str, Rule, bool]] = None

    def flush(verdict: str = "CONTINUE") -> None:
        nonlocal pending
        if pending is not None:
            t, c, r, opt = pending
            out.append(((t, c, r.number, verdict), r, opt and verdict == "CONTINUE"))
            pending = None

    for s in steps:
        if s.kind == T.RULE and s.matched:
            flush()
            pending = (s.table, s.chain, s.rule, bool(s.detail.get("partial")))
        elif s.kind in (T.JUMP, T.GOTO):
            flush(f"{'JUMP' if s.kind == T.JUMP else 'GOTO'}:{s.detail['to']}")
        elif s.kind == T.VERDICT:
            flush({"REJECT": "DROP"}.get(s.verdict or "", s.verdict or ""))
        elif s.kind == T.RETURN and s.rule is not None:
            flush("RETURN")
        elif s.kind == T.POLICY:
            flush()
            out.append(((s.table, s.chain, None, s.verdict or "ACCEPT"), None, False))
        elif s.kind in (T.TABLE, T.HOOK, T.ROUTE, T.CONNTRACK):
            flush()
    flush()
    if tables is not None:
        out = [e for e in out if e[0][0] in tables]
    return out


class RuleIndex:
    """The loaded ruleset as the kernel saves it: rule text <-> position in its chain."""

    def __init__(self, save_text: str) -> None:
        dump = KL.parse_save(save_text, drop_lab_trace=True)
        self.by_pos: dict[tuple[str, str, int], str] = {}
        self.by_text: dict[tuple[str, str, str], list[int]] = {}
        for t, c, i, rule, _, _ in dump.rules:
            self.by_pos[(t, c, i)] = rule
            self.by_text.setdefault((t, c, rule), []).append(i)

    def positions(self, table: str, chain: str, text: Optional[str]) -> list[int]:
        if text is None:
            return []
        return self.by_text.get((table, chain, text), [])

    def text(self, table: str, chain: str, number: Optional[int]) -> Optional[str]:
        return None if number is None else self.by_pos.get((table, chain, number))


def kernel_events(steps: Iterable[KL.Step], index: RuleIndex) -> list[tuple[str, str, object, str]]:
    """The kernel's trace as (table, chain, rule position(s) or None, verdict)."""
    out = []
    for s in steps:
        if s.kind == "return":
            continue
        if s.kind == "policy":
            out.append((s.table, s.chain, None, s.verdict))
            continue
        pos = index.positions(s.table, s.chain, s.rule)
        out.append((s.table, s.chain, tuple(pos) if pos else ("?", s.rule), s.verdict))
    return out


def _same_event(k, t: Event) -> bool:
    if k[0] != t[0] or k[1] != t[1] or k[3] != t[3]:
        return False
    if t[2] is None or k[2] is None:
        return t[2] == k[2]
    return t[2] in k[2]


def _align(kernel: list, tracer: list[TEvent], *, prefix: bool = False) -> bool:
    """The kernel's events are the tracer's, optional ones taken or left (``prefix``: the
    tracer's events are a beginning of the kernel's)."""
    i = j = 0
    while j < len(tracer):
        ev, _, optional = tracer[j]
        if i < len(kernel) and _same_event(kernel[i], ev):
            # An optional event the kernel printed; but if leaving it out also aligns, the
            # next tracer event is the same rule -- no ambiguity in practice (rules differ).
            i += 1
            j += 1
        elif optional:
            j += 1
        else:
            return False
    return prefix or i == len(kernel)


def _events_equal(kernel: list, tracer: list[TEvent]) -> bool:
    return _align(kernel, tracer)


def _is_prefix(tracer: list[TEvent], kernel: list) -> bool:
    return _align(kernel, tracer, prefix=True)


# ---------------------------------------------------------------------------------------------
# Comparing one flow


@dataclass
class Result:
    case: Case
    status: str  # agree, agree-fork, undecided, disagree, lab-error, lab-noise
    checks: list[str] = field(default_factory=list)  # what was compared: outcome, path, counters, reply, ack
    detail: str = ""
    leaves: int = 1

    @property
    def ok(self) -> bool:
        return self.status in ("agree", "agree-fork", "undecided")


def _fmt_tracer(events: list[TEvent]) -> str:
    return "\n".join(f"      {t}:{c} {v}{' (optional)' if opt else ''}  {r.spec() if r is not None else '(policy)'}"
                     for (t, c, _, v), r, opt in events)


def _fmt_kernel(events: list, index: RuleIndex) -> str:
    lines = []
    for t, c, pos, v in events:
        if pos is None:
            text = "(policy)"
        elif pos and pos[0] == "?":
            text = f"(not in the loaded ruleset) {pos[1]}"
        else:
            text = index.text(t, c, pos[0]) or "?"
        lines.append(f"      {t}:{c} {v}  {text}")
    return "\n".join(lines)


def kernel_where(plan: Plan, obs: KL.Observation) -> tuple[str, Optional[KL.Arrival]]:
    """("passed", arrival) when the first packet reached a namespace, else ("dropped" /
    "rejected", None)."""
    d = obs.delivery
    if d is not None:
        # Sniffers see only packets entering a namespace: an arrival in the sender's own
        # namespace came back to it (hairpin through the bridge, or the host's own address).
        return "passed", d
    if obs.outcome == "rejected":
        return "rejected", None
    return "dropped", None


def tracer_where(plan: Plan, leaf: T.Leaf) -> tuple[str, Optional[str]]:
    k = leaf.outcome.kind
    if k in (T.DELIVERED,):
        return "passed", KL.HOST
    if k in (T.FORWARDED, T.SENT):
        dst = leaf.outcome.packet.get("dst")
        try:
            owner = plan.owner(dst) if dst else None
        except ValueError:
            owner = None
        return "passed", owner  # None: an address no lab namespace has (the kernel shows a drop)
    if k == T.REJECTED:
        return "rejected", None
    if k == T.DROPPED:
        return "dropped", None
    return "undecided", None


def _same_tuple(pkt: dict, arrival: KL.Arrival) -> Optional[str]:
    """Why the tracer's final packet differs from the kernel's arrival (None: the same)."""
    diffs = []
    for key, got in (("src", arrival.src), ("dst", arrival.dst), ("sport", arrival.sport),
                     ("dport", arrival.dport)):
        want = pkt.get(key)
        if got is None or want is None:
            continue
        if key in ("sport", "dport"):
            try:
                w = int(want)
            except ValueError:
                # A range (MASQUERADE --random-fully): the kernel's port must be in it.
                lo, _, hi = str(want).partition("-")
                if lo.isdigit() and hi.isdigit() and int(lo) <= got <= int(hi):
                    continue
                if lo.isdigit() and hi.isdigit():
                    diffs.append(f"{key} {got} not in {want}")
                continue
            if w != got:
                diffs.append(f"{key} kernel {got} tracer {w}")
        elif not _same_ip(str(want), str(got)):
            diffs.append(f"{key} kernel {got} tracer {want}")
    return "; ".join(diffs) or None


def leaf_agrees(plan: Plan, leaf: T.Leaf, obs: KL.Observation, index: RuleIndex,
                tables: set[str], *, check_tuple: bool = True) -> Optional[str]:
    """None when this way through the tracer's tree is what the kernel did, else why not."""
    kwhere, arrival = kernel_where(plan, obs)
    twhere, towner = tracer_where(plan, leaf)
    events = tracer_events(leaf.steps, tables)
    if twhere == "undecided":
        if obs.steps is not None:
            kev = kernel_events(obs.steps, index)
            if not _is_prefix(events, kev):
                return "undecided branch: the tracer's path so far is not the kernel's"
        return None
    if twhere == "passed" and towner is None:
        # Forwarded to an address no namespace has: the kernel routes it out and it is lost.
        if kwhere != "dropped":
            return f"outcome: tracer forwards to an address outside the lab, kernel {kwhere}"
    elif kwhere != twhere:
        return f"outcome: kernel {kwhere}{' in ' + arrival.ns if arrival else ''}, tracer {leaf.outcome.kind} ({leaf.outcome.summary})"
    elif twhere == "passed":
        if arrival.ns != towner:
            return f"outcome: kernel delivered in {arrival.ns}, tracer in {towner} ({leaf.outcome.summary})"
        if check_tuple:
            why = _same_tuple(leaf.outcome.packet, arrival)
            if why:
                return f"addresses after NAT: {why}"
    if obs.steps is not None:
        kev = kernel_events(obs.steps, index)
        if not _events_equal(kev, events):
            return ("path differs:\n    kernel:\n" + _fmt_kernel(kev, index) + "\n    tracer:\n" + _fmt_tracer(events))
    elif obs.counters:
        hits = obs.hits()
        missing = []
        for (t, c, num, v), r, opt in events:
            if opt:
                continue
            key = (t, c, index.text(t, c, num) if num is not None else None)
            if key not in hits:
                missing.append(f"{t}:{c} {key[2] or 'policy ' + v}")
        if missing:
            return "counters: the tracer's rules did not count the packet: " + "; ".join(missing)
    return None


def compare(plan: Plan, case: Case, obs: KL.Observation, trace: T.Trace, index: RuleIndex,
            tables: set[str]) -> Result:
    leaves = list(trace.leaves())
    checks = ["outcome", "path" if obs.steps is not None else "counters"]
    if obs.outcome == "error":
        return Result(case, "lab-error", checks, obs.describe())
    if obs.steps is not None and any("not appear" in n or "incomplete" in n for n in obs.notes):
        return Result(case, "lab-error", checks, "the kernel trace is incomplete: " + "; ".join(obs.notes))
    whys = [leaf_agrees(plan, lf, obs, index, tables) for lf in leaves]
    n = len(leaves)
    if any(w is None for w in whys):
        undecided = all(lf.outcome.kind == T.UNDECIDED for lf, w in zip(leaves, whys) if w is None)
        status = "undecided" if undecided else ("agree" if n == 1 else "agree-fork")
        return Result(case, status, checks, leaves=n)
    detail = [f"flow {case.label}", f"  tracer flow: {case.tflow.describe()}", obs.describe()]
    for i, (lf, w) in enumerate(zip(leaves, whys)):
        conds = "; ".join(c.text for c in lf.conditions) or "(no fork)"
        detail.append(f"  tracer leaf {i + 1}/{n} [{conds}] {lf.outcome.kind}: {lf.outcome.summary}\n    {w}")
    return Result(case, "disagree", checks, "\n".join(detail), leaves=n)


# ---------------------------------------------------------------------------------------------
# Established packets of a connection the kernel carried


def _find_packet(obs: KL.Observation, *, src: str, sport: int, dst: str, dport: int,
                 flags: tuple[str, ...]) -> Optional[KL.TracedPacket]:
    for p in obs.packets or []:
        h = p.first
        if h is None:
            continue
        if (h.src, h.sport, h.dst, h.dport) == (src, sport, dst, dport) and all(f in h.flags for f in flags) \
                and ("SYN" in flags or "SYN" not in h.flags):
            return p
    return None


def established_checks(plan: Plan, case: Case, obs: KL.Observation, index: RuleIndex,
                       tables: set[str], ipsets=None) -> list[Result]:
    """The reply (TCP SYN-ACK, the UDP echo, the ICMP echo reply) of a connection the kernel
    carried, and the sender's ACK (TCP): their paths must be the tracer's for the same packets."""
    out: list[Result] = []
    if obs.steps is None or obs.sender.status not in ("connected", "replied"):
        return out
    arr = obs.delivery
    if arr is None:
        return out
    # The reply leaves the receiver with the addresses it saw (after NAT); the tracer is asked
    # for the answer to the flow (Flow.reply), with conntrack undoing the connection's NAT.
    flags = ("SYN", "ACK") if case.flow.proto == "tcp" else ()
    reply = _find_packet(obs, src=arr.dst, sport=arr.dport, dst=arr.src, dport=arr.sport, flags=flags)
    sender_src = obs.sender.local[0] if obs.sender.local else case.flow.src
    if reply is not None:
        tf = dataclasses.replace(case.tflow, reply=True)
        out.append(_check_packet(plan, case, "reply", tf, reply, index, tables, ipsets))
    # The sender's ACK: the original direction, state ESTABLISHED, the connection's NAT kept.
    if sender_src and case.flow.proto == "tcp":
        ack = _find_packet(obs, src=sender_src, sport=obs.sport, dst=case.flow.dst, dport=case.flow.dport, flags=("ACK",))
        if ack is not None:
            base = case.tflow
            tf = T.Flow(plan.family, "tcp", sender_src, base.dst, base.sport, base.dport, iniface=base.iniface,
                        state="ESTABLISHED", from_host=base.from_host)
            out.append(_check_packet(plan, case, "ack", tf, ack, index, tables, ipsets))
    return out


def _own_steps(pkt: KL.TracedPacket) -> Optional[list[KL.Step]]:
    """The steps of the packet's first IP datagram.  The lab groups trace events by the
    kernel's trace id, which a next packet of the same socket (the ACK, then the RST) can
    reuse; the PACKET headers' IP id tells them apart."""
    first = pkt.first
    if first is None:
        return None
    want = first.get("ID")
    out = []
    for st in pkt.steps:
        if st.packet is not None and st.packet.get("ID") != want:
            break
        out.append(st)
    return out


def _check_packet(plan: Plan, case: Case, what: str, tf: T.Flow, pkt: KL.TracedPacket,
                  index: RuleIndex, tables: set[str], ipsets) -> Result:
    c = Case(f"established-{what} ({case.kind})", case.flow, tf)
    try:
        tr = trace_flow(plan.ruleset, tf, plan.host_model(), ipsets=ipsets)
    except Exception as e:  # a tracer crash is a disagreement, with its reason
        return Result(c, "disagree", ["path"], f"tracer raised {type(e).__name__}: {e} for {tf.describe()}")
    steps = _own_steps(pkt)
    if steps is None:
        return Result(c, "lab-noise", ["path"], "the lab grouped several packets as one and their steps "
                      "cannot be told apart")
    kev = kernel_events(steps, index)
    whys = []
    leaves = list(tr.leaves())
    for lf in leaves:
        ev = tracer_events(lf.steps, tables)
        if lf.outcome.kind == T.UNDECIDED:
            whys.append(None if _is_prefix(ev, kev) else "undecided branch differs")
            continue
        if lf.outcome.kind not in T.PASSED:
            whys.append(f"tracer: {lf.outcome.kind} ({lf.outcome.summary}), but the kernel carried the connection")
            continue
        if not _events_equal(kev, ev):
            whys.append("path differs:\n    kernel:\n" + _fmt_kernel(kev, index) + "\n    tracer:\n" + _fmt_tracer(ev))
            continue
        whys.append(None)
    if any(w is None for w in whys):
        return Result(c, "agree" if len(leaves) == 1 else "agree-fork", ["path"], leaves=len(leaves))
    detail = [f"{what} packet of {case.label}", f"  tracer flow: {tf.describe()}",
              "  kernel packet: " + (pkt.first.raw if pkt.first else "?")]
    for lf, w in zip(leaves, whys):
        detail.append(f"  tracer {lf.outcome.kind}: {lf.outcome.summary}\n    {w}")
    return Result(c, "disagree", ["path"], "\n".join(detail), leaves=len(leaves))


# ---------------------------------------------------------------------------------------------
# Running a plan

RUNS: dict[tuple[str, str], "Report"] = {}
"""Reports of the suite's own runs, by (ruleset, backend): a later judge of the same ruleset in
another form (its listings) reuses the kernel's observations instead of sending every flow again."""


@dataclass
class Report:
    name: str
    backend: str
    results: list[Result] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # What the kernel did with each flow of the plan (kept for judges of other inputs of the
    # same ruleset: tests/test_partial_kernel.py traces its listings against them).
    observations: list[tuple[Case, KL.Observation]] = field(default_factory=list)
    index: Optional["RuleIndex"] = None

    def count(self, *statuses: str) -> int:
        return sum(1 for r in self.results if r.status in statuses)

    @property
    def disagreements(self) -> list[Result]:
        return [r for r in self.results if r.status in ("disagree", "lab-error")]

    def summary(self) -> str:
        kinds = _Counter(r.case.kind.split(" (")[0] for r in self.results)
        return (f"{self.name} [{self.backend}]: {len(self.results)} checked, {self.count('agree')} agreed, "
                f"{self.count('agree-fork')} forked (kernel among the branches), {self.count('undecided')} undecided, "
                f"{len(self.disagreements)} disagreed, "
                f"{self.count('lab-noise')} lab noise; "
                f"kinds {dict(sorted(kinds.items()))}")


def run_plan(lab: KL.Lab, plan: Plan, backend: str, *, ipsets=None, established: bool = True) -> Report:
    """Send every case of the plan through the lab (the ruleset already loaded) and the tracer."""
    rep = Report(plan.name, backend, notes=list(plan.notes))
    index = RuleIndex(lab.save(family=plan.family))
    tables = {t.name for t in plan.ruleset.tables_of(plan.family)}
    host = plan.host_model()
    observations = []
    for c in plan.cases:
        try:
            obs = lab.send(c.flow)
        except KL.LabError as e:
            # A lab hiccup (an agent's listener could not bind for a moment): once more, and
            # if it persists the ruleset's report carries it as a lab error.
            rep.notes.append(f"{c.label}: {e}; sent again")
            import time

            time.sleep(0.3)
            obs = lab.send(c.flow)
        observations.append(obs)
        if any("No buffer space" in n for n in obs.notes):
            # xtables-monitor died of ENOBUFS (a chain forest prints thousands of events per
            # packet): the rest of the traces would be lost too.
            rep.notes.append("xtables-monitor overflowed (ENOBUFS): stopped sending")
            break
    rep.observations = list(zip(plan.cases, observations))
    rep.index = index
    for case, obs in zip(plan.cases, observations):
        try:
            tr = trace_flow(plan.ruleset, case.tflow, host, ipsets=ipsets)
        except Exception as e:
            rep.results.append(Result(case, "disagree", ["outcome"],
                                      f"tracer raised {type(e).__name__}: {e} for {case.tflow.describe()}"))
            continue
        rep.results.append(compare(plan, case, obs, tr, index, tables))
        if established:
            rep.results += established_checks(plan, case, obs, index, tables, ipsets)
    return rep


def ipset_dump(plan: Plan) -> Optional[str]:
    """``ipset save`` text for the sets the ruleset names (both the lab and the tracer get it).

    ``docker-ext-bridges-v4`` (Docker 28.0) holds the bridge networks' subnets, as dockerd
    fills it; other sets are created empty with a type of the right dimension (what the corpus
    calls "placeholder" sets: the host's real members are unknown)."""
    import re

    names: dict[str, int] = {}
    for m in re.finditer(r"--match-set\s+(\S+)\s+(\S+)", plan.text):
        names.setdefault(m.group(1), len(m.group(2).split(",")))
    for m in re.finditer(r"--(?:add|del)-set\s+(\S+)\s+(\S+)", plan.text):
        names.setdefault(m.group(1), len(m.group(2).split(",")))
    if not names:
        return None
    types = {1: "hash:net", 2: "hash:ip,port", 3: "hash:ip,port,ip"}
    lines = []
    for name, dim in names.items():
        lines.append(f"create {name} {types.get(dim, 'hash:net')} family {'inet' if plan.family == 4 else 'inet6'} hashsize 1024 maxelem 65536")
        if name.startswith("docker-ext-bridges"):
            lines += [f"add {name} {info['net']}" for info in plan.ifaces.values() if info["bridge"]]
    return "\n".join(lines) + "\n"


def setup_lab(lab: KL.Lab, plan: Plan) -> None:
    """What the topology cannot say: the host's default route through the outside client (the
    host model has the same route)."""
    lab.run(KL.HOST, "ip", f"-{plan.family}", "route", "replace", "default", "via", plan.peer(plan.client).addr,
            "dev", plan.external)
    if plan.family == 6:
        _static_neighbours(lab, plan)


def _static_neighbours(lab: KL.Lab, plan: Plan) -> None:
    """Permanent neighbour entries between the host and its peers and between peers on one
    bridge.  IPv6 neighbour discovery is ICMPv6 that ip6tables filters (bridged NS/NA go
    through FORWARD with bridge-nf), so a ruleset's FORWARD DROP would keep two containers from
    ever finding each other and the flow's first packet would never be sent -- a lab artefact,
    not the ruleset's verdict on the flow (the tracer, like the question, is about the packet).
    IPv4's ARP is not seen by iptables."""
    import json

    def link_macs(*ns_args: str) -> dict[str, str]:
        # netlink, not /sys: the lab shares the machine's sysfs mount
        out = lab.run(KL.HOST, "ip", *ns_args, "-j", "link", "show").stdout
        return {i["ifname"]: i.get("address", "") for i in json.loads(out)}

    mac = {p.name: link_macs("-n", p.name)["eth0"] for p in plan.peers}
    host_mac = link_macs()
    host_cmds = []
    for p in plan.peers:
        host_cmds.append(f"neigh replace {p.addr} lladdr {mac[p.name]} dev {p.iface} nud permanent")
        peer_cmds = [f"neigh replace {plan.ifaces[p.iface]['host']} lladdr {host_mac[p.iface]} dev eth0 nud permanent"]
        for q in plan.peers:
            if q.iface == p.iface and q.name != p.name:
                peer_cmds.append(f"neigh replace {q.addr} lladdr {mac[q.name]} dev eth0 nud permanent")
        lab.run(KL.HOST, "ip", "-n", p.name, "-batch", "-", input="\n".join(peer_cmds) + "\n")
    lab.run(KL.HOST, "ip", "-batch", "-", input="\n".join(host_cmds) + "\n")
