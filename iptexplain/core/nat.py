"""The kernel's NAT logic shared by DNAT, SNAT, MASQUERADE, REDIRECT and NETMAP.

A NAT target only chooses the new tuple of a *new* connection (the nat table sees nothing else);
conntrack then applies the binding to every packet of the connection, in both directions.  The
choice inside a range (``--to-destination 10.0.0.1-10.0.0.3:8000-8010``) is made by a hash the
ruleset cannot predict, so the tracer keeps the whole range as the packets' new set.
"""

from __future__ import annotations

from iptexplain.core.addr import int_to_ip, parse_ip
from iptexplain.core.context import ACCEPT, DROP, Effect, MatchContext
from iptexplain.core.packets import IntSet, Packets, fmt_set, single, span, union

PORT_PROTOS = frozenset({6, 17, 132, 33, 136})  # tcp udp sctp dccp udplite: ports are rewritten


def _addr_text(s: IntSet, family: int) -> str:
    return fmt_set(s, lambda v: int_to_ip(v, family), 3)


def _has_ports(pkts: Packets) -> bool:
    p = single(pkts.proto)
    return p in PORT_PROTOS


def rewrite(pkts: Packets, kind: str, addrs: IntSet | None, ports: IntSet | None, note: str = "") -> Effect:
    """Set the destination (DNAT) or source (SNAT) to the given sets; ACCEPT for this table."""
    afield, pfield = ("dst", "dport") if kind == "DNAT" else ("src", "sport")
    out = pkts.copy()
    rewrites: list[tuple[str, str, str]] = []
    binding: dict[str, IntSet] = {}
    if addrs is not None:
        if addrs != getattr(pkts, afield):
            rewrites.append((afield, _addr_text(getattr(pkts, afield), pkts.family), _addr_text(addrs, pkts.family)))
        setattr(out, afield, addrs)
        binding[afield] = addrs
    if ports is not None and _has_ports(pkts):
        if ports != getattr(pkts, pfield):
            rewrites.append((pfield, fmt_set(getattr(pkts, pfield)), fmt_set(ports)))
        setattr(out, pfield, ports)
        binding[pfield] = ports
    return Effect(ACCEPT, out, rewrites, nat=(kind, binding), note=note)


def ranges_sets(ranges, family: int) -> tuple[IntSet | None, IntSet | None]:
    """The union of ``--to-*`` ranges as (address set, port set); None keeps the field."""
    addrs: IntSet | None = None
    ports: IntSet | None = None
    for r in ranges:
        if r.addr_min is not None:
            addrs = union(addrs or (), span(r.addr_min, r.addr_max))
        if r.port_min is not None:
            ports = union(ports or (), span(r.port_min, r.port_max))
    return addrs, ports


def dnat(pkts: Packets, ranges, ctx: MatchContext) -> Effect:
    addrs, ports = ranges_sets(ranges, pkts.family)
    return rewrite(pkts, "DNAT", addrs, ports)


def snat(pkts: Packets, ranges, ctx: MatchContext, random_fully: bool = False) -> Effect:
    addrs, ports = ranges_sets(ranges, pkts.family)
    if ports is None and random_fully:
        ports = random_ports(pkts.sport)
    return rewrite(pkts, "SNAT", addrs, ports)


def random_ports(sport: IntSet) -> IntSet:
    """The range ``--random-fully`` picks the source port from (nf_nat_l4proto_unique_tuple):
    ports below 1024 stay privileged, the others go anywhere in 1024-65535."""
    v = single(sport)
    if v is not None and v < 1024:
        return span(1, 511) if v < 512 else span(600, 1023)
    return span(1024, 65535)


def masquerade(pkts: Packets, ctx: MatchContext, to_ports: tuple[int, int] | None,
               random_fully: bool) -> Effect:
    """SNAT to the out-interface's primary address toward the next hop (inet_select_addr)."""
    router = ctx.router
    dev = pkts.outiface
    nexthop = None
    d = single(pkts.dst)
    if router is not None and d is not None:
        res = router.lookup(d)
        nexthop = res.via if res.via is not None else d
    src = router.select_source(dev, nexthop) if router is not None else None
    if src is None:
        return Effect(DROP, None, note=f"MASQUERADE: {dev or 'the out-interface'} has no address: the packet is dropped")
    ports = span(*to_ports) if to_ports else (random_ports(pkts.sport) if random_fully else None)
    if any(v == src for v, _ in router.addresses(dev or "")):
        note = f"{dev}'s primary address {int_to_ip(src, pkts.family)}"
    else:  # inet_select_addr's fallback: lo's 127.0.0.1 has host scope
        owner = router.addr_dev.get(src, "")
        note = (f"{dev} has no global address: the host's first one, {int_to_ip(src, pkts.family)}"
                + (f" ({owner})" if owner else ""))
    eff = rewrite(pkts, "SNAT", ((src, src),), ports, note=note)
    return eff


def redirect(pkts: Packets, ctx: MatchContext, to_ports: tuple[int, int] | None) -> Effect:
    """DNAT to the host: the in-interface's primary address (PREROUTING) or loopback (OUTPUT)."""
    fam = pkts.family
    if ctx.hook == "OUTPUT" or pkts.iniface is None:
        addr = parse_ip("127.0.0.1" if fam == 4 else "::1")[1]
    else:
        addrs = ctx.router.addresses(pkts.iniface) if ctx.router is not None else []
        if not addrs:
            return Effect(DROP, None, note=f"REDIRECT: {pkts.iniface} has no address: the packet is dropped")
        addr = addrs[0][0]
    return rewrite(pkts, "DNAT", ((addr, addr),), span(*to_ports) if to_ports else None)


def netmap(pkts: Packets, ctx: MatchContext, prefix_value: int, prefix_mask: int) -> Effect:
    """NETMAP: keep the host part, replace the network part (DNAT before routing, SNAT after)."""
    kind = "DNAT" if ctx.hook in ("PREROUTING", "OUTPUT") else "SNAT"
    field = "dst" if kind == "DNAT" else "src"
    have = getattr(pkts, field)
    v = single(have)
    if v is None:
        full = (1 << pkts.bits) - 1
        lo = prefix_value & prefix_mask
        return rewrite(pkts, kind, span(lo, lo | (full ^ prefix_mask)), None)
    new = (prefix_value & prefix_mask) | (v & ~prefix_mask & ((1 << pkts.bits) - 1))
    return rewrite(pkts, kind, ((new, new),), None)
