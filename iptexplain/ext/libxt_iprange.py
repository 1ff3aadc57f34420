"""iprange: source/destination address within an arbitrary range (libxt_iprange)."""

from __future__ import annotations

from dataclasses import dataclass

from iptexplain.addr import int_to_ip, parse_ip
from iptexplain.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, OptType


@dataclass(frozen=True, slots=True)
class IPRange:
    family: int
    low: int
    high: int

    def __str__(self) -> str:
        return f"{int_to_ip(self.low, self.family)}-{int_to_ip(self.high, self.family)}"

    def contains(self, addr: int) -> bool:
        return self.low <= addr <= self.high


def parse_iprange(text: str) -> IPRange:
    lo, sep, hi = text.partition("-")
    try:
        family, a = parse_ip(lo)
        b = parse_ip(hi, family)[1] if sep else a
    except OptionError:
        raise OptionError(f"iprange: bad IP address range `{text}'") from None
    return IPRange(family, a, b)


iprange = OptType("iprange", lambda a: parse_iprange(a[0]), lambda v: [str(v)])


@register
class IPRangeMatch(Match):
    name = "iprange"
    options = (
        Opt("src_range", "--src-range", iprange),
        Opt("dst_range", "--dst-range", iprange),
    )

    def check(self) -> None:
        if not self.values:
            raise OptionError("iprange match: You must specify `--src-range' or `--dst-range'")

    def decide(self, pkts, ctx):
        """Source/destination within an inclusive address range."""
        from iptexplain.netfilter.packets import Decision, span

        tests = []
        for key, field, what in (("src_range", "src", "source"), ("dst_range", "dst", "destination")):
            v = self.get(key)
            if v is not None:
                r = v.value
                accept = span(r.low, r.high)
                tests.append(lambda p, accept=accept, v=v, field=field, what=what, r=r: Decision.split(
                    p, field, accept, v.invert, what, show=lambda s: str(r) if s is accept else p.addr_text(field)))
        return Decision.conjunction(pkts, tests)
