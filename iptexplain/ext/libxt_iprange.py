"""iprange: source/destination address within an arbitrary range (libxt_iprange)."""

from __future__ import annotations

from dataclasses import dataclass

from iptexplain.core.addr import int_to_ip, parse_ip
from iptexplain.core.errors import OptionError
from iptexplain.core.packets import Decision, span
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
        tests = []
        for key, field, what in (("src_range", "src", "source"), ("dst_range", "dst", "destination")):
            v = self.get(key)
            if v is not None:
                r = v.value
                accept = span(r.low, r.high)
                tests.append(lambda p, accept=accept, v=v, field=field, what=what, r=r: Decision.split(
                    p, field, accept, v.invert, what, show=lambda s: str(r) if s is accept else p.addr_text(field)))
        return Decision.conjunction(pkts, tests)

    # -- the -L face (iprange_mt4_print: " source IP range [!] A-B destination IP range ...") --
    listing_keywords = ("source", "destination")

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        out: list[str] = []
        for key, word in (("src_range", "source"), ("dst_range", "destination")):
            v = self.get(key)
            if v is not None:
                out += [word, "IP", "range"] + (["!"] if v.invert else []) + [str(v.value)]
        return " ".join(out)

    @classmethod
    def from_listing(cls, tail) -> "IPRangeMatch":
        opts: list = []
        for word, flag in (("source", "--src-range"), ("destination", "--dst-range")):
            if tail.peek() == word and tail.peek(1) == "IP" and tail.peek(2) == "range":
                tail.pos += 3
                inv = tail.invert()
                opts.append((flag, inv, [tail.take()]))
        if not opts:
            raise OptionError("not an iprange match")
        return cls.build(opts, spelled="iprange")  # type: ignore[return-value]
