"""The host's routing, as netfilter needs it: local or forward, out-interface, addrtype, source.

Built once per trace over the :class:`~iptexplain.host.HostModel`.  Like the kernel it looks in
the *local* table first (the host's own addresses, all of 127.0.0.0/8, broadcast addresses),
then in the main table by longest prefix.  Everything works on sets of destinations: a routing
decision over an open destination splits it into the parts that go different ways.
"""

from __future__ import annotations

from dataclasses import dataclass

from iptexplain.addr import int_to_ip, parse_address, parse_ip
from iptexplain.host import HostModel
from iptexplain.netfilter.packets import EMPTY, IntSet, intersect, prefix_set, subtract

BITS = {4: 32, 6: 128}
V4_LOOPBACK = parse_address("127.0.0.0/8")
V4_MULTICAST = parse_address("224.0.0.0/4")
V4_ZERONET = parse_address("0.0.0.0/8")
V4_LBCAST = (1 << 32) - 1
V6_MULTICAST = parse_address("ff00::/8")
V6_LOOPBACK = parse_ip("::1")[1]
V6_LINKLOCAL = parse_address("fe80::/10")


def _set(addr) -> IntSet:
    return prefix_set(addr.value, addr.mask, BITS[addr.family])


_V4_LOOPBACK_SET = _set(V4_LOOPBACK)  # host scope: inet_select_addr never picks these


@dataclass(frozen=True, slots=True)
class RouteResult:
    """One routing decision: ``type`` local / broadcast / multicast / unicast / blackhole /
    unreachable / prohibit, the device, the gateway and the preferred source."""

    type: str
    dev: str | None = None
    via: int | None = None
    src: int | None = None
    prefix: str = ""  # the route that decided ("172.17.0.0/16", "default", "local")
    inferred: bool = False

    @property
    def local(self) -> bool:
        return self.type in ("local", "broadcast", "multicast")

    def describe(self, family: int) -> str:
        if self.type == "local":
            return "local delivery"
        if self.type in ("broadcast", "multicast"):
            return f"{self.type}, delivered locally"
        if self.type != "unicast":
            return f"{self.type} route {self.prefix}"
        via = f" via {int_to_ip(self.via, family)}" if self.via is not None else ""
        return f"{self.prefix}{via} dev {self.dev}"


class Router:
    """Route lookups over one host model and family (built once per trace)."""

    def __init__(self, host: HostModel, family: int) -> None:
        self.host = host
        self.family = family
        bits = BITS[family]
        self.bits = bits
        # (set, prefixlen, result), most specific first, for the local and the main table.
        local: list[tuple[IntSet, int, RouteResult]] = []
        main: list[tuple[IntSet, int, RouteResult]] = []
        self.addr_dev: dict[int, str] = {}  # local address -> its interface
        self.primary: dict[str, list[tuple[int, int]]] = {}  # dev -> [(address, prefixlen)]
        for iface in host.interfaces.values():
            for a in iface.addrs:
                if a.family != family:
                    continue
                fam, v = parse_ip(a.address, family)
                self.addr_dev.setdefault(v, iface.name)
                self.primary.setdefault(iface.name, []).append((v, a.prefixlen))
                local.append((((v, v),), bits, RouteResult("local", iface.name, None, v, "local")))
                net = parse_address(f"{a.address}/{a.prefixlen}", family)
                if family == 4 and a.prefixlen < 31:
                    bc = net.last()
                    local.append((((bc, bc),), bits, RouteResult("broadcast", iface.name, None, v, "broadcast")))
                if a.prefixlen < bits and not (family == 4 and iface.name == "lo"):
                    # The kernel's "proto kernel scope link" route of the subnet.
                    main.append((_set(net), a.prefixlen,
                                 RouteResult("unicast", iface.name, None, v, str(net), iface.inferred)))
        if family == 4:
            local.append((_set(V4_LOOPBACK), 8, RouteResult("local", "lo", None, parse_ip("127.0.0.1")[1], "local 127.0.0.0/8")))
        else:
            local.append((((V6_LOOPBACK, V6_LOOPBACK),), 128, RouteResult("local", "lo", None, V6_LOOPBACK, "local ::1")))
            local.append((_set(V6_MULTICAST), 8, RouteResult("multicast", None, None, None, "ff00::/8")))
        for r in host.routes:
            if r.family != family or r.table not in ("main", "254"):
                continue
            net = parse_address("0.0.0.0/0" if family == 4 else "::/0") if r.dst == "default" else parse_address(r.dst, family)
            via = parse_ip(r.via, family)[1] if r.via else None
            src = parse_ip(r.src, family)[1] if r.src else None
            res = RouteResult(r.type if r.type != "local" else "local", r.dev, via, src,
                              r.dst, r.inferred)
            (local if r.type == "local" else main).append((_set(net), net.prefixlen or 0, res))
        local.sort(key=lambda e: -e[1])
        main.sort(key=lambda e: -e[1])
        self.local_table = local
        self.main_table = main
        self.local_addrs: IntSet = EMPTY
        from iptexplain.netfilter.packets import normalize

        self.local_addrs = normalize(iv for s, _, res in local if res.type == "local" for iv in s)

    # -- lookups ----------------------------------------------------------------------------

    def split(self, dst: IntSet) -> list[tuple[IntSet, RouteResult]]:
        """The routing decisions over a set of destinations, each with the part it takes."""
        out: list[tuple[IntSet, RouteResult]] = []
        rest = dst
        for table in (self.local_table, self.main_table):
            for s, _, res in table:
                if not rest:
                    return out
                part = intersect(rest, s)
                if part:
                    out.append((part, res))
                    rest = subtract(rest, part)
        if rest:
            out.append((rest, RouteResult("unreachable", None, None, None, "no route")))
        return out

    def lookup(self, dst: int) -> RouteResult:
        return self.split(((dst, dst),))[0][1]

    def is_local(self, addr: int) -> bool:
        return self.lookup(addr).type == "local"

    def addresses(self, dev: str) -> list[tuple[int, int]]:
        return self.primary.get(dev, [])

    def select_source(self, dev: str | None, toward: int | None) -> int | None:
        """``inet_select_addr(dev, toward, RT_SCOPE_UNIVERSE)``: the device's primary address
        of global scope in the subnet of ``toward`` (the gateway or destination), else its
        first one of global scope.

        IPv4: an address of 127.0.0.0/8 has host scope and is never taken.  A device without
        a global address (``lo``, whose only address is 127.0.0.1; a known device without
        IPv4) gives the first global address of the first interface that has one, in
        interface order (ifindex), whatever ``toward`` -- measured in the kernel lab
        (tests/test_tracer_kernel.py, masquerade-through-lo).  An interface the host model
        does not know gives None: the tracer cannot tell."""
        addrs = self.primary.get(dev or "", [])
        if self.family == 4:
            addrs = [(v, plen) for v, plen in addrs if not _V4_LOOPBACK_SET[0][0] <= v <= _V4_LOOPBACK_SET[0][1]]
            if not addrs:
                if dev != "lo" and dev not in self.host.interfaces:
                    return None
                return next((v for name in self.host.interfaces for v, _ in self.primary.get(name, [])
                             if not _V4_LOOPBACK_SET[0][0] <= v <= _V4_LOOPBACK_SET[0][1]), None)
        if not addrs:
            return None
        if toward is not None:
            for v, plen in addrs:
                shift = self.bits - plen
                if v >> shift == toward >> shift:
                    return v
        for v, plen in addrs:
            if not (self.family == 6 and V6_LINKLOCAL.contains(v)):
                return v
        return addrs[0][0]

    def source_for(self, route: RouteResult, dst: int | None) -> int | None:
        """The source address a locally generated packet gets on this route."""
        if route.type == "local":
            return dst
        if route.src is not None:
            return route.src
        return self.select_source(route.dev, route.via if route.via is not None else dst)

    def addr_types(self, addrs: IntSet, dev: str | None = None) -> dict[str, IntSet]:
        """``addrtype``'s view of a set of addresses: type -> the addresses of that type.

        IPv4 asks only the local table (as ``inet_dev_addr_type`` does: what is not local,
        broadcast or multicast is UNICAST); with ``dev`` (``--limit-iface-in/out``) an address
        is LOCAL only when it is on that device.  IPv6 asks the full routing table.
        """
        out: dict[str, IntSet] = {}
        rest = addrs

        def put(kind: str, part: IntSet) -> None:
            from iptexplain.netfilter.packets import union

            out[kind] = union(out.get(kind, EMPTY), part)

        if self.family == 4:
            for special, kind in ((_set(V4_MULTICAST), "MULTICAST"),
                                  (((V4_LBCAST, V4_LBCAST),), "BROADCAST"),
                                  (_set(V4_ZERONET), "BROADCAST")):
                part = intersect(rest, special)
                if part:
                    put(kind, part)
                    rest = subtract(rest, part)
            for s, _, res in self.local_table:
                part = intersect(rest, s)
                if not part:
                    continue
                kind = res.type.upper()
                if dev is not None and res.dev != dev and kind in ("LOCAL", "BROADCAST"):
                    kind = "UNICAST"
                put(kind, part)
                rest = subtract(rest, part)
            if rest:
                put("UNICAST", rest)
            return out
        for part, res in self.split(rest):
            kind = {"local": "LOCAL", "multicast": "MULTICAST", "unicast": "UNICAST",
                    "blackhole": "BLACKHOLE", "unreachable": "UNREACHABLE",
                    "prohibit": "PROHIBIT", "broadcast": "BROADCAST"}.get(res.type, "UNICAST")
            if kind == "LOCAL" and dev is not None and res.dev not in (dev, "lo"):
                kind = "UNICAST"
            put(kind, part)
        return out

    # -- martians ------------------------------------------------------------------------------

    def martian(self, src: int | None, dst: int | None, iniface: str | None) -> str | None:
        """Why ``ip_route_input`` would drop a packet from outside, or None.

        A packet received on the loopback device already carries the route it was sent with
        (``ip_route_input`` is not consulted for it), so nothing on ``lo`` is a martian."""
        if iniface is not None and (iniface == "lo" or getattr(self.host.interfaces.get(iniface), "kind", "") == "loopback"):
            return None
        if self.family == 6:
            if dst == V6_LOOPBACK or src == V6_LOOPBACK:
                return "martian: ::1 from outside the host"
            return None
        localnet = self.sysctl_on("route_localnet", iniface)
        if src is not None:
            if V4_MULTICAST.contains(src) or src == V4_LBCAST:
                return "martian source (multicast/broadcast)"
            if V4_ZERONET.contains(src) and dst != V4_LBCAST:
                return "martian source 0.0.0.0/8"
            if V4_LOOPBACK.contains(src) and not localnet:
                return "martian source 127.0.0.0/8 (route_localnet=0)"
        if dst is not None:
            if V4_ZERONET.contains(dst):
                return "martian destination 0.0.0.0/8"
            if V4_LOOPBACK.contains(dst) and not localnet:
                return "martian destination 127.0.0.0/8 from outside (route_localnet=0)"
        return None

    def sysctl_on(self, name: str, iface: str | None) -> bool:
        s = self.host.sysctls
        fam = "ipv4" if self.family == 4 else "ipv6"
        vals = [s.get(f"net.{fam}.conf.all.{name}")]
        if iface:
            vals.append(s.get(f"net.{fam}.conf.{iface}.{name}"))
        return any(v not in (None, "0") for v in vals)

    def forwarding(self) -> bool | None:
        key = "net.ipv4.ip_forward" if self.family == 4 else "net.ipv6.conf.all.forwarding"
        v = self.host.sysctls.get(key)
        return None if v is None else v != "0"

    def text(self, v: int) -> str:
        return int_to_ip(v, self.family)

    def iface_of(self, addr: int) -> str | None:
        """The interface whose subnet holds ``addr`` (the main-table route's device)."""
        res = self.lookup(addr)
        return res.dev if res.type == "unicast" else self.addr_dev.get(addr)

