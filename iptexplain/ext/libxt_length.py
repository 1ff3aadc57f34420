"""length: the packet's layer-3 length (IPv4 total length, IPv6 payload + header) (libxt_length)."""

from __future__ import annotations

from iptexplain.errors import OptionError
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
