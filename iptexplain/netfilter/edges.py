"""Edge packets: the part of a fork no ordinary packet of the described flow falls in.

A field the user leaves open stays open, and a ruleset that guards against malformed traffic
(Shorewall's ``tcpflags`` chain drops ``--sport 0``; ``-m addrtype --dst-type BROADCAST -j DROP``)
then forks the trace into the ordinary packets and the odd ones.  Both ways are real, but they are
not equally the answer: the question "is SSH from 192.168.1.10 let in?" is about the packets a
TCP stack sends, and the trace should answer it and show the odd packets as the exception they
are (and the exit status should be the ordinary packets').

The principle: a branch is an *edge* when every one of its packets is invalid or exceptional on
the wire -- something no ordinary stack sends for a flow of this kind, or that the kernel itself
treats as malformed:

* port 0, source or destination (TCP, UDP, SCTP, DCCP, UDP-Lite): reserved (IANA, RFC 6335);
  Linux never sends from it nor connects to it;
* TCP flag combinations conntrack calls INVALID (``tcp_valid_flags`` in
  nf_conntrack_proto_tcp.c: only SYN, SYN+ACK, RST, RST+ACK, FIN+ACK, ACK, each with or without
  URG, PSH, ECE and CWR, are valid): SYN+FIN, a NULL segment, FIN without ACK…;
* a martian source -- 0.0.0.0/8, 127.0.0.0/8, multicast and class E, 255.255.255.255 (IPv4,
  RFC 1812 5.3.7), or ::, ::1, ff00::/8 (IPv6) -- or the broadcast address of one of the host's
  subnets as a source;
* a broadcast or multicast destination (255.255.255.255, a subnet's broadcast address,
  224.0.0.0/4, ff00::/8) -- not the unicast flow described.

A branch is an edge only when the user left that field open: ask about ``--sport 0`` and there
is no fork, the answer is that packet's.
"""

from __future__ import annotations

from iptexplain.core.nat import PORT_PROTOS
from iptexplain.core.packets import IntSet, Packets, normalize, prefix_set, single, subtract
from iptexplain.netfilter.routing import (BITS, V4_LBCAST, V4_LOOPBACK, V4_MULTICAST, V4_ZERONET, V6_MULTICAST,
                                          Router)

TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK, TCP_URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
# tcp_valid_flags: the combinations of FIN, SYN, RST, ACK (URG, PSH, ECE, CWR aside) conntrack
# accepts; every other one makes the packet INVALID.
_VALID_CORE = (TCP_SYN, TCP_SYN | TCP_ACK, TCP_RST, TCP_RST | TCP_ACK, TCP_FIN | TCP_ACK, TCP_ACK)
_OTHER_BITS = (TCP_URG, TCP_PSH, 0x40, 0x80)


def _set(addr) -> IntSet:  # noqa: ANN001 - an iptexplain.core.addr.Address
    return prefix_set(addr.value, addr.mask, BITS[addr.family])


def _valid_flags() -> IntSet:
    vals = set()
    for core in _VALID_CORE:
        for extra in range(16):
            v = core
            for i, bit in enumerate(_OTHER_BITS):
                if extra >> i & 1:
                    v |= bit
            vals.add(v)
    return normalize((v, v) for v in vals)


VALID_TCP_FLAGS = _valid_flags()
INVALID_TCP_FLAGS = subtract(((0, 255),), VALID_TCP_FLAGS)
_V4_CLASS_E_AND_BCAST = ((0xF0000000, 0xFFFFFFFF),)
V4_MARTIAN_SRC = normalize(_set(V4_ZERONET) + _set(V4_LOOPBACK) + _set(V4_MULTICAST) + _V4_CLASS_E_AND_BCAST)
V6_MARTIAN_SRC = normalize(((0, 1),) + _set(V6_MULTICAST))  # ::, ::1, ff00::/8


def _within(part: IntSet, region: IntSet) -> bool:
    """Every value of ``part`` (non-empty) lies in ``region``."""
    return bool(part) and not subtract(part, region)


def _broadcasts(router: Router) -> IntSet:
    return normalize(iv for s, _, res in router.local_table if res.type == "broadcast" for iv in s)


def edge_of(parent: Packets, part: Packets, router: Router) -> str | None:
    """Why the packets ``part`` of ``parent`` are an edge case (see the module docstring), or None.

    Only a field ``part`` narrowed into an odd region counts: ``parent`` must not lie there too
    (the user asked about those packets)."""
    fam = part.family
    proto = single(part.proto)
    if proto in PORT_PROTOS:
        for f, what in (("sport", "source port 0"), ("dport", "destination port 0")):
            if _within(getattr(part, f), ((0, 0),)) and not _within(getattr(parent, f), ((0, 0),)):
                return f"{what}: reserved, no stack sends it"
    if proto == 6 and _within(part.tcpflags, INVALID_TCP_FLAGS) and not _within(parent.tcpflags, INVALID_TCP_FLAGS):
        return "TCP flags conntrack calls INVALID (SYN with FIN, no flags, FIN without ACK…)"
    bcast = _broadcasts(router)
    if fam == 4:
        odd_src = normalize(V4_MARTIAN_SRC + bcast)
        odd_dst = normalize(_set(V4_MULTICAST) + ((V4_LBCAST, V4_LBCAST),) + bcast)
    else:
        odd_src = V6_MARTIAN_SRC
        odd_dst = _set(V6_MULTICAST)
    if _within(part.src, odd_src) and not _within(parent.src, odd_src):
        return "a martian source (broadcast, multicast, loopback or zero): no stack sends from it"
    if _within(part.dst, odd_dst) and not _within(parent.dst, odd_dst):
        return "a broadcast or multicast destination, not the unicast flow described"
    return None

