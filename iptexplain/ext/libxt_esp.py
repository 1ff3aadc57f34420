"""esp: the SPI of an IPsec ESP packet (libxt_esp)."""

from __future__ import annotations

from iptexplain.core.packets import Decision
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

    # -- the -L face (esp_print: " esp spi:N" / " esp spis:!A:B") ------------------------------
    listing_keywords = ("esp",)

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        return " ".join(w for w in ("esp", listing_spis("spi", self.get("spi"))) if w)

    @classmethod
    def from_listing(cls, tail) -> "Esp":
        tail.expect("esp")
        opts: list = []
        read_listing_spis(tail, "spi", "--espspi", opts)
        return cls.build(opts, spelled="esp")  # type: ignore[return-value]

    def decide(self, pkts, ctx):
        """The SPI of the ESP packet is not described: a fork."""
        what = self.describe()
        return Decision.fork(pkts, what, f"{what}", f"not {what}")


def listing_spis(word: str, v) -> str:
    """print_spis / print_ids: ``spi:N``, ``spis:!A:B``; nothing for the full range."""
    if v is None:
        return ""
    lo, hi = v.value
    if (lo, hi) == (0, 0xFFFFFFFF) and not v.invert:
        return ""
    inv = "!" if v.invert else ""
    return f"{word}:{inv}{lo}" if lo == hi else f"{word}s:{inv}{lo}:{hi}"


def read_listing_spis(tail, word: str, flag: str, opts: list) -> None:
    w = tail.peek()
    for prefix in (word + ":", word + "s:"):
        if w is not None and w.startswith(prefix):
            value = w[len(prefix):]
            opts.append((flag, value.startswith("!"), [value.lstrip("!")]))
            tail.pos += 1
            return
