"""length: the packet's layer-3 length (IPv4 total length, IPv6 payload + header) (libxt_length)."""

from __future__ import annotations

from iptexplain.core.errors import OptionError
from iptexplain.core.packets import Decision, span
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, OptType, parse_uintrange

u16range = OptType("uint16range", lambda a: parse_uintrange(a[0], 16),
                   lambda v: [str(v[0]) if v[0] == v[1] else f"{v[0]}:{v[1]}"])


@register
class Length(Match):
    name = "length"
    options = (Opt("length", "--length", u16range),)

    def check(self) -> None:
        if not self.has("length"):
            raise OptionError("length: --length is required")

    @property
    def length(self) -> tuple[int, int]:
        return self.value("length")

    # -- the -L face (length_print: " length [!]N[:M]") ----------------------------------------
    listing_keywords = ("length",)

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        v = self.get("length")
        lo, hi = v.value
        return f"length {'!' if v.invert else ''}{lo if lo == hi else f'{lo}:{hi}'}"

    @classmethod
    def from_listing(cls, tail) -> "Length":
        tail.expect("length")
        w = tail.take()
        inv = w.startswith("!")
        return cls.build([("--length", inv, [w.lstrip("!") or tail.take()])], spelled="length")  # type: ignore[return-value]

    def decide(self, pkts, ctx):
        """The IP packet's length (IPv4 total length; IPv6 payload plus header)."""
        v = self.get("length")
        return Decision.split(pkts, "length", span(*v.value), v.invert, "length")
