"""udp: source and destination ports (libxt_udp)."""

from __future__ import annotations

from iptexplain.core.errors import OptionError
from iptexplain.core.packets import Decision
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, types
from iptexplain.ext.libxt_tcp import listing_ports, port_tests, read_listing_ports


@register
class Udp(Match):
    name = "udp"
    options = (
        Opt("sport", "--sport", types.portrange, aliases=("--source-port",)),
        Opt("dport", "--dport", types.portrange, aliases=("--destination-port",)),
    )

    # -- the -L face (udp_print) ---------------------------------------------------------------
    listing_keywords = ("udp",)

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        out = ["udp"]
        for key, word in (("sport", "spt"), ("dport", "dpt")):
            v = self.get(key)
            if v is not None and (v.value != (0, 65535) or v.invert):
                out.append(listing_ports(word, v.value, v.invert, numeric, "udp"))
        return " ".join(out)

    @classmethod
    def from_listing(cls, tail) -> "Udp":
        tail.expect("udp")
        opts: list = []
        try:
            read_listing_ports(tail, opts)
        except ValueError:
            raise OptionError("bad udp port range") from None
        return cls.build(opts, spelled="udp")  # type: ignore[return-value]

    def decide(self, pkts, ctx):
        """Which packets have these ports (xt_tcpudp's udp_mt)."""
        tests = port_tests(self)
        return Decision.conjunction(pkts, tests)
