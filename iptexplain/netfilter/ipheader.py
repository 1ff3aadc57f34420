"""The fields every rule has without a module (``struct ipt_ip``): -s -d -i -o -p -f.

``ip_packet_match`` in the kernel tests them before any match module; so does the tracer.
"""

from __future__ import annotations

from typing import Callable

from iptexplain.core.addr import Address, int_to_ip
from iptexplain.core.context import MatchContext
from iptexplain.core.packets import Decision, Packets, fmt_set, masked_set, point, proto_text, single
from iptexplain.core.protocols import proto_number
from iptexplain.graph import IPHeader


def decide_address(pkts: Packets, field: str, addr: Address, invert: bool, what: str) -> Decision:
    have = getattr(pkts, field)
    v = single(have)
    fam = pkts.family
    if v is not None:  # the common, fast case: one address against a prefix
        hit = (v & addr.mask) == addr.value
        shown = int_to_ip(v, fam)
        if hit != invert:
            if not invert and addr.prefixlen == pkts.bits:
                return Decision.all(pkts, f"{what} {shown}")
            return Decision.all(pkts, f"{what} {shown} {'∉' if invert else '∈'} {addr.listing_str()}")
        if not invert and addr.prefixlen == pkts.bits:
            return Decision.none(pkts, f"{what} {shown} ≠ {addr.host_str()}")
        return Decision.none(pkts, f"{what} {shown} {'∈' if invert else '∉'} {addr.listing_str()}")
    accept = masked_set(addr.value, addr.mask, pkts.bits)
    if accept is None:
        return Decision.fork(pkts, f"{what} {addr} (scattered mask)",
                             f"{what} in {addr}", f"{what} not in {addr}")
    return Decision.split(pkts, field, accept, invert, what,
                          show=lambda s: addr.listing_str() if s is accept else fmt_set(s, lambda x: int_to_ip(x, fam), 3))


def decide_iface(pkts: Packets, field: str, pattern: str, invert: bool, what: str) -> Decision:
    name = getattr(pkts, field)
    shown = name if name is not None else "(none)"
    if pattern.endswith("+"):
        hit = (name or "").startswith(pattern[:-1])
    else:
        hit = name == pattern
    if hit != invert:
        if invert:
            return Decision.all(pkts, f"{what} {shown} (not {pattern})")
        return Decision.all(pkts, f"{what} {shown}" + (f" matches {pattern}" if pattern.endswith("+") else ""))
    if invert:
        return Decision.none(pkts, f"{what} {shown} excluded (! {pattern})")
    return Decision.none(pkts, f"{what} {shown} ≠ {pattern}")


def decide_proto(pkts: Packets, proto: str, invert: bool) -> Decision:
    n = proto_number(proto)
    return Decision.split(pkts, "proto", point(n), invert, "proto", show=proto_text)


def header_deciders(h: IPHeader) -> list[Callable[[Packets], Decision]]:
    """The header tests of a rule, in the kernel's order, as functions of the packets."""
    out: list[Callable[[Packets], Decision]] = []
    if h.src is not None and not h.src.is_any:
        out.append(lambda p, a=h.src, i=h.src_inv: decide_address(p, "src", a, i, "source"))
    elif h.src is not None and h.src_inv:
        out.append(lambda p: Decision.none(p, "! -s 0.0.0.0/0 matches nothing"))
    if h.dst is not None and not h.dst.is_any:
        out.append(lambda p, a=h.dst, i=h.dst_inv: decide_address(p, "dst", a, i, "destination"))
    elif h.dst is not None and h.dst_inv:
        out.append(lambda p: Decision.none(p, "! -d 0.0.0.0/0 matches nothing"))
    if h.iniface is not None:
        out.append(lambda p, n=h.iniface, i=h.iniface_inv: decide_iface(p, "iniface", n, i, "in-interface"))
    if h.outiface is not None:
        out.append(lambda p, n=h.outiface, i=h.outiface_inv: decide_iface(p, "outiface", n, i, "out-interface"))
    if h.proto is not None:
        out.append(lambda p, n=h.proto, i=h.proto_inv: decide_proto(p, n, i))
    if h.fragment is not None:
        def frag(p: Packets, want: bool = h.fragment) -> Decision:
            if p.fragment == want:
                return Decision.all(p, "a later fragment" if want else "not a later fragment")
            return Decision.none(p, "not a later fragment" if want else "a later fragment")
        out.append(frag)
    return out


def decide_header(h: IPHeader, pkts: Packets, ctx: MatchContext | None = None) -> Decision:
    """The header of a rule as one decision (the tracer itself runs the tests one by one with
    the rule's matches)."""
    return Decision.conjunction(pkts, header_deciders(h))
