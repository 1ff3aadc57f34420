"""IP protocol numbers and names, as iptables spells them (``-p``), for every layer: the parsers
read them, the packet sets print them, the tracer and the extensions decide on them."""

from __future__ import annotations

from iptexplain.core.errors import OptionError
from iptexplain.numbers import decimal, is_decimal, shown

PROTO_NUMBERS: dict[str, int] = {
    "icmp": 1, "igmp": 2, "ipencap": 4, "tcp": 6, "egp": 8, "udp": 17, "ipv6": 41, "rsvp": 46,
    "gre": 47, "esp": 50, "ah": 51, "ipv6-icmp": 58, "eigrp": 88, "ospf": 89, "pim": 103,
    "vrrp": 112, "l2tp": 115, "sctp": 132, "udplite": 136, "dccp": 33, "mobility-header": 135,
    "ipv6-route": 43, "ipv6-frag": 44, "ipv6-nonxt": 59, "ipv6-opts": 60, "encap": 98, "ipcomp": 108,
}  # names as iptables-save prints them (getprotobynumber with Debian's /etc/protocols)
PROTO_NAMES: dict[int, str] = {v: k for k, v in PROTO_NUMBERS.items()}
PROTO_ALIASES = {"icmpv6": "ipv6-icmp", "ospfigp": "ospf", "ipip": "ipencap", "ipv6-icmpv6": "ipv6-icmp",
                 "mh": "mobility-header", "ipv6-mh": "mobility-header"}


def canonical_proto(text: str) -> str | None:
    """``tcp``/``TCP``/``6`` -> ``tcp``; ``all``/``0`` -> None (no protocol restriction)."""
    t = text.lower()
    t = PROTO_ALIASES.get(t, t)
    if t in ("all", "0"):
        return None
    if is_decimal(t):
        try:
            n = decimal(t, "protocol", 255)
        except OptionError:
            raise OptionError(f"unknown protocol \"{shown(text)}\" specified") from None
        return PROTO_NAMES.get(n, str(n)) if n else None
    if t not in PROTO_NUMBERS:
        raise OptionError(f"unknown protocol \"{shown(text)}\" specified")
    return t


def proto_number(name: str) -> int:
    """``tcp`` -> 6; a number stays itself."""
    return PROTO_NUMBERS[name] if name in PROTO_NUMBERS else int(name)
