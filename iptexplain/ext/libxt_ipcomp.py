"""ipcomp: the CPI of an IPComp header (libxt_ipcomp)."""

from __future__ import annotations

from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, types
from iptexplain.ext.libxt_esp import save_spis


@register
class IpComp(Match):
    name = "ipcomp"
    options = (
        Opt("spi", "--ipcompspi", types.uintrange),
        Opt("res", "--compres", types.flag, invert=False),
    )

    def save_args(self) -> list[str]:
        return save_spis("--ipcompspi", self.get("spi")) + (["--compres"] if self.has("res") else [])

    def decide(self, pkts, ctx):
        """The IPComp header's SPI is not described: a fork."""
        from iptexplain.netfilter.packets import Decision

        what = self.describe()
        return Decision.fork(pkts, what, f"{what}", f"not {what}")
