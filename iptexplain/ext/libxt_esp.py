"""esp: the SPI of an IPsec ESP packet (libxt_esp)."""

from __future__ import annotations

from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, types


def save_spis(flag: str, v) -> list[str]:
    """Saved unless it is the match-everything default (0:4294967295, not inverted)."""
    if v is None or (v.value == (0, 0xFFFFFFFF) and not v.invert):
        return []
    lo, hi = v.value
    return (["!"] if v.invert else []) + [flag, str(lo) if lo == hi else f"{lo}:{hi}"]


@register
class Esp(Match):
    name = "esp"
    options = (Opt("spi", "--espspi", types.uintrange),)

    def save_args(self) -> list[str]:
        return save_spis("--espspi", self.get("spi"))
