"""From the user's flow to the first set of packets: where they enter netfilter (PREROUTING on
an interface, or a local socket), and every field the flow leaves open as the range the host
allows (reverse-path sources, the host's own address, the ephemeral ports)."""

from __future__ import annotations

from typing import Any

from iptexplain.core.addr import int_to_ip, parse_address, parse_ip
from iptexplain.core.context import Connection
from iptexplain.core.errors import InputError, OptionError
from iptexplain.core.packets import (U8, U16, IntSet, Packets, masked_set, normalize, point, single, span, subtract,
                                     union)
from iptexplain.core.protocols import canonical_proto, proto_number
from iptexplain.ext.libip6t_icmp6 import ICMPV6_TYPES
from iptexplain.ext.libxt_icmp import parse_icmp_type
from iptexplain.host.model import HostModel
from iptexplain.netfilter import hooks as H
from iptexplain.netfilter.branch import State
from iptexplain.netfilter.routing import BITS, Router
from iptexplain.netfilter.trace import Flow

PROTO_ALIASES = {"icmpv6": "ipv6-icmp", "icmp6": "ipv6-icmp"}
TCP_SYN = 0x02
EPHEMERAL = span(32768, 60999)  # net.ipv4.ip_local_port_range's default
TCP_ACK = 0x10


def _port_set(v: int | tuple[tuple[int, int], ...]) -> IntSet:
    return point(v) if isinstance(v, int) else normalize(v)


def tcp_flags_set(v: tuple[int, int, bool]) -> IntSet:
    """The segments ``--tcp-flags MASK COMP`` describes (``!``: every other one)."""
    mask, comp, inv = v
    s = masked_set(comp, mask, 8) or U8
    return subtract(U8, s) if inv else s


def _addr_set(text: str, family: int) -> IntSet:
    try:
        a = parse_address(text, family)
    except OptionError as e:
        raise InputError(f"{text}: {e} (an IPv{family} address was expected)", "<flow>") from None
    s = masked_set(a.value, a.mask, BITS[family])
    assert s is not None
    return s


def initial_state(flow: Flow, host: HostModel, router: Router, notes: list[str]) -> State:
    """The packets of the flow where they enter netfilter, and where that is."""
    fam = flow.family
    full = ((0, (1 << BITS[fam]) - 1),)
    proto_name = flow.proto
    if proto_name is None and (flow.dport is not None or flow.sport is not None):
        proto_name = "tcp"
        notes.append("protocol not given: a port was, so the flow is TCP")
    if proto_name is not None:
        pn = canonical_proto(PROTO_ALIASES.get(proto_name.lower(), proto_name))
        if pn == "icmp" and fam == 6:
            pn = "ipv6-icmp"
        proto = point(proto_number(pn)) if pn is not None else span(0, 255)
    else:
        proto = span(0, 255)
    pnum = single(proto)
    sport = _port_set(flow.sport) if flow.sport is not None else U16
    if flow.sport is None and flow.from_host and single(proto) in (6, 17, 132):
        sport = EPHEMERAL  # a local socket binds a port of ip_local_port_range
    dport = _port_set(flow.dport) if flow.dport is not None else U16
    icmp = U16
    if pnum in (1, 58):
        if flow.icmp_type:
            if fam == 6:
                t, lo, hi = parse_icmp_type(flow.icmp_type, ICMPV6_TYPES)
            else:
                t, lo, hi = parse_icmp_type(flow.icmp_type)
            icmp = span(t << 8 | lo, t << 8 | hi)
        elif "NEW" in flow.state.upper().split(","):
            icmp = point((8 if fam == 4 else 128) << 8)
            notes.append("ICMP type not given: an echo request (ping)")
    states = frozenset(s.strip().upper() for s in flow.state.split(",") if s.strip()) or frozenset({"NEW"})
    tcpflags = U8
    if pnum == 6:
        if flow.tcp_flags is not None and not flow.reply:
            tcpflags = tcp_flags_set(flow.tcp_flags)  # the user knows the segment
        elif states == {"NEW"}:
            tcpflags = point(TCP_SYN)  # a connection's first packet: SYN
        elif "NEW" not in states:
            tcpflags = masked_set(TCP_ACK, TCP_ACK | TCP_SYN, 8)  # ACK set, SYN clear
    extra: dict[str, Any] = {}
    local_out = bool(flow.from_host)
    src: IntSet
    iniface: str | None = flow.iniface
    if flow.from_container:
        caddr = _container_address(flow.from_container, host, fam)
        if caddr is None:
            raise InputError(f"no container {flow.from_container!r} in the host model", "<flow>")
        src = point(caddr)
        iniface = iniface or router.iface_of(caddr)
        notes.append(f"from container {flow.from_container}: {int_to_ip(caddr, fam)} on {iniface}")
    if local_out:
        if flow.src:
            src = _addr_set(flow.src, fam)
        else:
            src = full
            extra["src_open"] = True
        iniface = None
    elif not flow.from_container:
        if iniface is None and flow.src:
            # A source in one of the host's directly connected subnets comes from there
            # (-s 172.17.0.6: a container on docker0).
            one = single(_addr_set(flow.src, fam))
            res = router.lookup(one) if one is not None else None
            if res is not None and res.type == "unicast" and res.via is None and res.prefix != "default":
                iniface = res.dev
                notes.append(f"arriving on {iniface}, where {flow.src} is ({res.prefix}; use -i to change)")
        if iniface is None:
            iniface = external_iface(host, fam)
            notes.append(f"arriving on {iniface}, the external interface (use -i to change)")
        if flow.src:
            src = _addr_set(flow.src, fam)
        elif iniface == "lo":
            # what arrives on lo was sent by this host: its source is one of the host's addresses
            # (no address is reverse-routed through lo, so the rule below would leave none)
            src = router.local_addrs
            extra.setdefault("labels", {})["src"] = (src, "an address of this host")
            notes.append("source: an address of this host (a packet arriving on lo was sent by it)")
        else:
            src = reverse_path_sources(router, iniface)
            extra.setdefault("labels", {})["src"] = (src, f"any address via {iniface}")
            notes.append(f"source: any address reached through {iniface} "
                         f"(reverse path; not the host's own nor a martian)")
        if not src:  # no route leads back through iniface: an empty set would trace nothing
            src = subtract(full, router.local_addrs)
            extra.setdefault("labels", {})["src"] = (src, "any address not the host's own")
            notes.append(f"source: no route of the host model leads back through {iniface}: any address "
                         "not the host's own assumed (give -s)")
    if flow.dst:
        dst = _addr_set(flow.dst, fam)
    elif local_out:
        dst = subtract(full, router.local_addrs)
        notes.append("destination: any address not the host's own")
    else:
        own = router.addresses(iniface) if iniface else []
        if not own:
            raise _no_address(iniface)
        dst = point(own[0][0])
        notes.append(f"destination: {int_to_ip(own[0][0], fam)}, this host's address on {iniface}")
    pk = Packets(fam, src, dst, proto, sport, dport, icmp, tcpflags, ctstate=frozenset({"INVALID"}),
                 iniface=None if local_out else iniface, mark=flow.mark or 0, from_host=local_out,
                 extra=extra)
    if flow.outiface and not local_out:
        notes.append(f"out-interface {flow.outiface} is decided by routing; the flow's value is ignored")
    st = State(pk, Connection(), "LOCAL_ROUTE" if local_out else "PREROUTING", local_out=local_out,
               flow_state=states)
    if not local_out and iniface is not None and (
            iniface == "lo" or getattr(host.interfaces.get(iniface), "kind", "") == "loopback"):
        # Only this host sends on lo: the packet is the second half of a local connection, whose
        # NAT was decided on its way out (nat PREROUTING/INPUT are not consulted again).
        st.looped = True
        st.pkts = st.pkts.copy(ctstate=states)
        st.nat_init = frozenset(H.NAT_MANIP.values())
        notes.append("a packet arriving on lo was sent by this host: its connection's NAT was decided "
                     "on the way out, so the nat table is not consulted here (--from-host traces the "
                     "whole journey)")
    return st


def _no_address(iface: str | None):
    return InputError(f"no address known on {iface}: give --dst or --iface {iface}=ADDR/PREFIX", "<flow>")


def _container_address(name: str, host: HostModel, family: int) -> int | None:
    try:
        fam, v = parse_ip(name)
        if fam == family:
            return v
    except OptionError:
        pass
    for addr, info in host.containers.items():
        if info.get("name") == name or info.get("id", "").startswith(name):
            try:
                fam, v = parse_ip(addr)
            except OptionError:
                continue
            if fam == family:
                return v
    return None


def external_iface(host: HostModel, family: int) -> str:
    """The interface of the default route (else the first non-loopback, non-bridge one)."""
    for r in host.routes:
        if r.family == family and r.dst == "default" and r.dev:
            return r.dev
    for name, i in host.interfaces.items():
        if name != "lo" and i.kind not in ("bridge", "loopback"):
            return name
    return next((n for n in host.interfaces if n != "lo"), "eth0")


def reverse_path_sources(router: Router, iface: str) -> IntSet:
    """The source addresses a packet arriving on ``iface`` can have: those routed back
    through ``iface`` (what rp_filter accepts), without the host's own and the martians."""
    out: IntSet = ()
    full = ((0, (1 << router.bits) - 1),)
    for part, res in router.split(full):
        if res.type == "unicast" and res.dev == iface:
            out = union(out, part)
    if router.family == 4:
        for bad in ("0.0.0.0/8", "127.0.0.0/8", "224.0.0.0/3"):
            out = subtract(out, _addr_set(bad, 4))
    else:
        for bad in ("::1/128", "ff00::/8", "::/128"):
            out = subtract(out, _addr_set(bad, 6))
    return subtract(out, router.local_addrs)

