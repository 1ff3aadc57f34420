"""ipcomp: the CPI of an IPComp header (libxt_ipcomp)."""

from __future__ import annotations

from iptexplain.core.packets import Decision
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, types
from iptexplain.ext.libxt_esp import listing_spis, read_listing_spis, save_spis


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
        what = self.describe()
        return Decision.fork(pkts, what, f"{what}", f"not {what}")

    # -- the -L face (comp_print: " comp spi:N [reserved]") ------------------------------------
    listing_keywords = ("comp",)

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        out = ["comp", listing_spis("spi", self.get("spi"))] + (["reserved"] if self.has("res") else [])
        return " ".join(w for w in out if w)

    @classmethod
    def from_listing(cls, tail) -> "IpComp":
        tail.expect("comp")
        opts: list = []
        read_listing_spis(tail, "spi", "--ipcompspi", opts)
        if tail.take_if("reserved"):
            opts.append(("--compres", False, []))
        return cls.build(opts, spelled="ipcomp")  # type: ignore[return-value]
