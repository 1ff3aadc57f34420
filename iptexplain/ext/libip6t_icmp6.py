"""icmp6: ICMPv6 type and code (libip6t_icmp6).  iptables-save prints numbers: ``--icmpv6-type 1/4``."""

from __future__ import annotations

from iptexplain.core.packets import Decision, fmt_icmp, span
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, OptType
from iptexplain.ext.libxt_icmp import listing_icmp_type, parse_icmp_type, read_listing_icmp_type

# name -> (type, code_min, code_max), from iptables' icmpv6_codes table.
ICMPV6_TYPES: dict[str, tuple[int, int, int]] = {
    "destination-unreachable": (1, 0, 0xFF), "no-route": (1, 0, 0),
    "communication-prohibited": (1, 1, 1), "beyond-scope": (1, 2, 2),
    "address-unreachable": (1, 3, 3), "port-unreachable": (1, 4, 4),
    "failed-policy": (1, 5, 5), "reject-route": (1, 6, 6),
    "packet-too-big": (2, 0, 0xFF),
    "time-exceeded": (3, 0, 0xFF), "ttl-exceeded": (3, 0, 0xFF),
    "ttl-zero-during-transit": (3, 0, 0), "ttl-zero-during-reassembly": (3, 1, 1),
    "parameter-problem": (4, 0, 0xFF), "bad-header": (4, 0, 0),
    "unknown-header-type": (4, 1, 1), "unknown-option": (4, 2, 2),
    "echo-request": (128, 0, 0xFF), "ping": (128, 0, 0xFF),
    "echo-reply": (129, 0, 0xFF), "pong": (129, 0, 0xFF),
    "mld-listener-query": (130, 0, 0xFF), "mld-listener-report": (131, 0, 0xFF),
    "mld-listener-done": (132, 0, 0xFF), "mld-listener-reduction": (132, 0, 0xFF),
    "router-solicitation": (133, 0, 0xFF), "router-advertisement": (134, 0, 0xFF),
    "neighbour-solicitation": (135, 0, 0xFF), "neighbor-solicitation": (135, 0, 0xFF),
    "neighbour-advertisement": (136, 0, 0xFF), "neighbor-advertisement": (136, 0, 0xFF),
    "redirect": (137, 0, 0xFF),
}


def fmt_icmpv6_type(v: tuple[int, int, int]) -> str:
    typ, lo, hi = v
    return str(typ) if (lo, hi) == (0, 0xFF) else f"{typ}/{lo}"


icmpv6type = OptType("icmpv6type", lambda a: parse_icmp_type(a[0], ICMPV6_TYPES), lambda v: [fmt_icmpv6_type(v)])


@register
class Icmp6(Match):
    name = "icmp6"
    family = 6
    options = (Opt("type", "--icmpv6-type", icmpv6type),)

    @property
    def icmp_type(self) -> tuple[int, int, int] | None:
        """(type, code_min, code_max)."""
        return self.value("type")

    def decide(self, pkts, ctx):
        """ICMPv6 type and code (icmp6_type_code_match)."""
        v = self.get("type")
        if v is None:
            return Decision.all(pkts, "icmpv6")
        typ, lo, hi = v.value
        accept = span(typ << 8 | lo, typ << 8 | hi)
        return Decision.split(pkts, "icmp", accept, v.invert, "icmpv6 type",
                              show=lambda s: fmt_icmpv6_type(v.value) if s is accept else fmt_icmp(s))

    # -- the -L face (icmp6_print: " ipv6-icmp" then "type 128", hence "ipv6-icmptype 128") ----
    listing_keywords = ("ipv6-icmp", "ipv6-icmptype")

    def listing(self, numeric: bool = True, *, family: int = 6, proto: str | None = None) -> str:
        v = self.get("type")
        return "ipv6-icmp" + listing_icmp_type(v.value, v.invert, numeric, ICMPV6_TYPES)

    @classmethod
    def from_listing(cls, tail) -> "Icmp6":
        spec, inv = read_listing_icmp_type(tail, "ipv6-icmp", ICMPV6_TYPES)
        return cls.build([("--icmpv6-type", inv, [spec])], spelled="icmp6")  # type: ignore[return-value]
