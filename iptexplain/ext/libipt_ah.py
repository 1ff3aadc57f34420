"""ah: the SPI of an IPsec AH packet (libipt_ah, IPv4; libip6t_ah for IPv6)."""

from __future__ import annotations

from iptexplain.core.packets import Decision
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, types
from iptexplain.ext.libxt_esp import listing_spis, read_listing_spis, save_spis


@register
class Ah(Match):
    name = "ah"
    options = (
        Opt("spi", "--ahspi", types.uintrange),
        Opt("len", "--ahlen", types.uint32),
        Opt("res", "--ahres", types.flag, invert=False),
    )

    def save_args(self) -> list[str]:
        out = save_spis("--ahspi", self.get("spi"))
        v = self.get("len")
        if v is not None:
            out += (["!"] if v.invert else []) + ["--ahlen", str(v.value)]
        if self.has("res"):
            out.append("--ahres")
        return out

    # -- the -L face (ah_print: " ah " then "spi:N" / "spis:!A:B") -----------------------------
    listing_keywords = ("ah",)

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        return "ah " + listing_spis("spi", self.get("spi"))

    @classmethod
    def from_listing(cls, tail) -> "Ah":
        tail.expect("ah")
        opts: list = []
        read_listing_spis(tail, "spi", "--ahspi", opts)
        return cls.build(opts, spelled="ah")  # type: ignore[return-value]

    def decide(self, pkts, ctx):
        """The SPI of the AH packet is not described: a fork."""
        what = self.describe()
        return Decision.fork(pkts, what, f"{what}", f"not {what}")
