"""Complete a host model from the ruleset itself, and read the CLI's host options.

A saved ruleset rarely comes with the host's addresses and routes, yet ``addrtype``, the choice
between INPUT and FORWARD and MASQUERADE's address depend on them.  What the rules say about
the host is taken from them, as an engineer reading the dump would:

* ``-s 172.17.0.0/16 ! -o docker0 -j MASQUERADE`` (Docker, libvirt): docker0 carries
  172.17.0.0/16, its gateway address being the subnet's first (Docker's convention);
* ``-d NET -o IF`` / ``-s NET -i IF``: IF carries NET;
* a connected route in saved ``ip -j route`` output (``192.0.2.0/24 dev eth0 src 192.0.2.10``):
  eth0 has 192.0.2.10/24;
* with no external interface known: ``eth0`` with a documentation address, and the default
  route through it.  A flow arriving on a bridge (``-i docker0``) does not make the bridge the
  external interface, and an interface the host data lists is never given an invented address.

Every inference becomes a note the user sees (``Trace.notes``); nothing is assumed silently.
"""

from __future__ import annotations

import copy
from collections import Counter

from iptexplain.core.addr import int_to_ip, parse_address, parse_ip
from iptexplain.core.errors import InputError, OptionError
from iptexplain.graph import Ruleset
from iptexplain.host.evidence import iface_facts
from iptexplain.host.model import HostModel, IfAddr, Interface, Route
from iptexplain.numbers import decimal, shown

# Documentation addresses (RFC 5737 / RFC 3849) for an external interface nobody described.
ASSUMED_EXTERNAL = {4: ("198.51.100.1", 24, "198.51.100.254"), 6: ("2001:db8::1", 64, "2001:db8::fffe")}
VIRTUAL_PREFIXES = ("docker", "br-", "veth", "cni", "cali", "flannel", "virbr", "lxc", "lxd", "kube",
                    "weave", "vxlan", "tun", "tap", "wg", "cilium", "podman", "lo")


def parse_host_options(local: list[str] | tuple[str, ...] = (), ifaces: list[str] | tuple[str, ...] = (),
                       routes: list[str] | tuple[str, ...] = ()) -> HostModel:
    """``--iface NAME=ADDR/PREFIX``, ``--route PREFIX=IFACE[,GATEWAY]``, ``--local ADDR``.

    ``--local`` addresses go on the first ``--iface`` named (else on ``eth0``).  Bad values raise
    InputError with the option in the message.
    """
    host = HostModel(source="options")
    for spec in ifaces:
        name, sep, addr = spec.partition("=")
        if not sep or not name:
            raise InputError(f"--iface {spec}: expected NAME=ADDR/PREFIX", "<options>")
        iface = host.add_interface(Interface(name, kind="loopback" if name == "lo" else ""))
        for a in filter(None, addr.split(",")):
            iface.addrs.append(_ifaddr(a, f"--iface {spec}"))
    for a in local:
        target = next(iter(host.interfaces.values()), None) or host.add_interface(Interface("eth0"))
        target.addrs.append(_ifaddr(a, f"--local {a}"))
        host.notes.append(f"--local {a}: put on {target.name}")
    for spec in routes:
        prefix, sep, rest = spec.partition("=")
        dev, _, via = rest.partition(",")
        if not sep or not dev:
            raise InputError(f"--route {spec}: expected PREFIX=IFACE[,GATEWAY]", "<options>")
        try:
            fam = parse_address(prefix).family if prefix != "default" else (6 if ":" in via else 4)
            if via:
                parse_ip(via, fam)
        except OptionError as e:
            raise InputError(f"--route {spec}: {e}", "<options>") from None
        host.routes.append(Route(prefix, dev, via or None, family=fam))
        if dev not in host.interfaces:
            host.add_interface(Interface(dev))
    return host


def _ifaddr(text: str, what: str) -> IfAddr:
    addr, sep, plen = text.partition("/")
    try:
        fam, _ = parse_ip(addr)
    except OptionError as e:
        raise InputError(f"{what}: {e}", "<options>") from None
    bits = 32 if fam == 4 else 128
    try:
        length = decimal(plen, "prefix length", bits) if sep else bits
    except OptionError:
        raise InputError(f"{what}: bad prefix length `{shown(plen)}'", "<options>") from None
    return IfAddr(addr, length, fam)


def _has_family(host: HostModel, name: str, family: int) -> bool:
    i = host.interfaces.get(name)
    return i is not None and any(a.family == family for a in i.addrs)


def _covered(host: HostModel, net, family: int) -> bool:
    for i in host.interfaces.values():
        for a in i.addrs:
            if a.family == family and a.network.contains(net.value) and (a.prefixlen <= (net.prefixlen or 0)):
                return True
    return False


_CACHE: dict[tuple[int, int], tuple[Ruleset, list, Counter]] = {}


def _ruleset_facts(ruleset: Ruleset, family: int) -> tuple[list, Counter]:
    """What the rules say about interfaces, computed once per parsed ruleset (a kube-proxy
    dump has 100,000 rules; the second question must not scan them again)."""
    key = (id(ruleset), family)
    hit = _CACHE.get(key)
    if hit is None or hit[0] is not ruleset:
        if len(_CACHE) >= 8:
            _CACHE.pop(next(iter(_CACHE)))
        hit = (ruleset, _carried_subnets(ruleset, family), _named_ifaces(ruleset, family))
        _CACHE[key] = hit
    return hit[1], hit[2]


def _carried_subnets(ruleset: Ruleset, family: int) -> list[tuple[str, object, str]]:
    """(interface, network, evidence) the rules show an interface carries."""
    out: list[tuple[str, object, str]] = []
    host_bits = 32 if family == 4 else 128
    for f in iface_facts(ruleset, family):
        if f.iniface is None and f.outiface is None:
            continue
        if f.masquerade and f.src is not None and not f.src_inv \
                and f.outiface and f.outiface_inv and not _wildcard(f.outiface):
            out.append((f.outiface, f.src, f.evidence))
        elif f.dst is not None and not f.dst_inv and f.outiface and not f.outiface_inv \
                and not _wildcard(f.outiface) and (f.dst.prefixlen or host_bits) < host_bits \
                and not f.dst.is_any:
            out.append((f.outiface, f.dst, f.evidence))
        elif f.src is not None and not f.src_inv and f.iniface and not f.iniface_inv \
                and not _wildcard(f.iniface) and (f.src.prefixlen or host_bits) < host_bits \
                and not f.src.is_any:
            out.append((f.iniface, f.src, f.evidence))
    return out


def _named_ifaces(ruleset: Ruleset, family: int) -> Counter:
    """How often each interface that may be the way out is named where rules speak of
    interfaces (not wildcards).  An interface a rule forwards back into itself (``-i
    internal1 -o internal1 -j ACCEPT``: Docker's inter-container traffic, a bridge's) is a
    bridge, not the external interface, and is left out."""
    c: Counter = Counter()
    hairpin: set[str] = set()
    for f in iface_facts(ruleset, family):
        if f.iniface and f.iniface == f.outiface and not f.iniface_inv and not f.outiface_inv:
            hairpin.add(f.iniface)
        for n in (f.iniface, f.outiface):
            if n and not _wildcard(n):
                c[n] += 1
    for n in hairpin:
        del c[n]
    return c


def _wildcard(name: str) -> bool:
    """``docker+`` (iptables) and ``"veth*"`` (nft) name every interface they begin."""
    return name.endswith("+") or (name.endswith("*") and not name.endswith("\\*"))


def complete_host(host: HostModel | None, ruleset: Ruleset, flow) -> HostModel:
    """A copy of ``host`` with what is missing for ``flow``'s family inferred (and noted)."""
    family = getattr(flow, "family", 4)
    h = copy.deepcopy(host) if host is not None else HostModel(source="inferred")
    notes = h.notes
    lo = h.interfaces.get("lo")
    if lo is None:
        lo = h.add_interface(Interface("lo", kind="loopback"))
    if family == 4 and not _has_family(h, "lo", 4):
        lo.addrs.append(IfAddr("127.0.0.1", 8, 4))
    if family == 6 and not _has_family(h, "lo", 6):
        lo.addrs.append(IfAddr("::1", 128, 6))
    if h.source in ("", "inferred") and host is None:
        notes.append("no host model given: interfaces and routes are inferred from the ruleset")
    _addresses_from_routes(h, family)
    # Subnets the rules say an interface carries (Docker bridges, libvirt networks, …).
    carried, named = _ruleset_facts(ruleset, family)
    for name, net, evidence in carried:
        if _covered(h, net, family):
            continue
        iface = h.interfaces.get(name)
        if iface is not None and any(a.family == family for a in iface.addrs):
            continue
        gw = int_to_ip(net.value + 1, family)
        iface = h.add_interface(Interface(name, kind="bridge" if _virtual(name) else "", inferred=True))
        iface.addrs.append(IfAddr(gw, net.prefixlen or 0, family))
        notes.append(f"inferred: {name} carries {net} (address {gw}/{net.prefixlen} assumed), from {evidence}")
    # The external interface: the flow's (unless it is a bridge or another virtual interface,
    # where containers sit, not the outside world, or one the rules say a subnet sits behind),
    # the default route's, or the most named physical one.
    ext = None
    behind = {name for name, _, _ in carried}
    if getattr(flow, "iniface", None) and not getattr(flow, "from_container", None) \
            and not getattr(flow, "from_host", False) and not _virtual(flow.iniface) \
            and flow.iniface not in behind:
        ext = flow.iniface
    if ext is None:
        ext = next((r.dev for r in h.routes if r.family == family and r.dst == "default"), None)
    if ext is None:
        physical = [n for n, _ in named.most_common() if not _virtual(n)
                    and n not in h.interfaces]
        known = [n for n, i in h.interfaces.items() if n != "lo" and not _virtual(n) and not i.inferred]
        known.sort(key=lambda n: not _has_family(h, n, family))  # one with an address first
        ext = (known or physical or ["eth0"])[0]
        if not known:
            why = "named in the rules" if physical else "nothing else known"
            notes.append(f"assumed: {ext} is the external interface ({why})")
    given = h.interfaces.get(ext)
    if given is not None and not given.inferred and not _has_family(h, ext, family):
        # The host data lists this interface without such an address: inventing one would
        # contradict it.
        notes.append(f"{ext} has no IPv{family} address in the host data: none assumed")
    elif not _has_family(h, ext, family):
        addr, plen, _ = ASSUMED_EXTERNAL[family]
        used = {a.address for i in h.interfaces.values() for a in i.addrs}
        if addr in used:
            addr = "203.0.113.1" if family == 4 else "2001:db8:1::1"
        iface = h.add_interface(Interface(ext, inferred=True))
        iface.addrs.append(IfAddr(addr, plen, family))
        notes.append(f"assumed: {ext} has address {addr}/{plen} (a documentation address; give --iface "
                     f"{ext}=ADDR/PREFIX for the real one)")
    if not any(r.family == family and r.dst == "default" for r in h.routes):
        out = ext if _has_family(h, ext, family) else next(
            (n for n, i in h.interfaces.items() if n != "lo" and not _virtual(n) and _has_family(h, n, family)),
            None)
        if out is None:
            notes.append(f"no IPv{family} default route known and no interface to assume one on: "
                         "destinations outside the host's subnets are unreachable")
            return _forwarding_note(h, family)
        ext = out
        iface = h.interfaces[ext]
        a = next(x for x in iface.addrs if x.family == family)
        net = a.network
        gw = int_to_ip(net.last() - 1 if family == 4 else net.value + 0xFFFE, family) if (a.prefixlen < (31 if family == 4 else 127)) else None
        if gw == a.address:
            gw = int_to_ip(net.value + 1, family)
        h.routes.append(Route("default", ext, gw, family=family, inferred=True))
        notes.append(f"assumed: default route via {gw} dev {ext}")
    return _forwarding_note(h, family)


def _forwarding_note(h: HostModel, family: int) -> HostModel:
    fwd_key = "net.ipv4.ip_forward" if family == 4 else "net.ipv6.conf.all.forwarding"
    if fwd_key not in h.sysctls:
        h.notes.append(f"{fwd_key} not known: forwarding assumed enabled")
    return h


def _addresses_from_routes(h: HostModel, family: int) -> None:
    """An interface the host data names only in routes (``ip -j route`` saved without ``ip -j
    addr``) has the address its connected route prefers: the kernel adds ``192.0.2.0/24 dev
    eth0 proto kernel scope link src 192.0.2.10`` for the address 192.0.2.10/24 on eth0."""
    for r in h.routes:
        if r.family != family or not r.src or r.dst == "default" or r.via or r.type != "unicast" \
                or _has_family(h, r.dev, family):
            continue
        try:
            net = parse_address(r.dst)
            fam, value = parse_ip(r.src)
        except OptionError:
            continue
        if fam != family or net.family != family or not net.contains(value):
            continue
        plen = net.prefixlen if net.prefixlen is not None else (32 if family == 4 else 128)
        iface = h.interfaces.get(r.dev) or h.add_interface(Interface(r.dev, inferred=True))
        iface.addrs.append(IfAddr(r.src, plen, family))
        h.notes.append(f"inferred: {r.dev} has address {r.src}/{plen} (the route {r.dst} dev {r.dev} src {r.src})")


def _virtual(name: str) -> bool:
    return name.startswith(VIRTUAL_PREFIXES)
