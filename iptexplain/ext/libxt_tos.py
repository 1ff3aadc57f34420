"""tos: the IPv4 TOS / IPv6 traffic class byte under a mask (libxt_tos, revision 1)."""

from __future__ import annotations

from iptexplain.core.errors import OptionError
from iptexplain.core.packets import Decision, masked_set
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt
from iptexplain.ext.tos_values import tosmask


@register
class Tos(Match):
    name = "tos"
    options = (Opt("tos", "--tos", tosmask),)

    def check(self) -> None:
        if not self.has("tos"):
            raise OptionError("tos: --tos is required")

    @property
    def tos(self) -> tuple[int, int]:
        """(value, mask)."""
        return self.value("tos")

    # -- the -L face (tos_mt_print: " tos match" then "[!]0xVV/0xMM" with no blank) -------------
    listing_keywords = ("tos",)

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        v = self.get("tos")
        return f"tos match{'!' if v.invert else ''}0x{v.value[0]:02x}/0x{v.value[1]:02x}"

    @classmethod
    def from_listing(cls, tail) -> "Tos":
        tail.expect("tos")
        w = tail.take()
        if not w.startswith("match"):
            raise OptionError("not a tos match")
        value = w[len("match"):] or tail.take()  # symbolic names follow after a blank
        inv = value.startswith("!")
        return cls.build([("--tos", inv, [value.lstrip("!")])], spelled="tos")  # type: ignore[return-value]

    def decide(self, pkts, ctx):
        """``(tos & mask) == value``."""
        value, mask = self.tos
        inv = self.get("tos").invert
        accept = masked_set(value, mask, 8)
        return Decision.split(pkts, "tos", accept, inv, "tos",
                              show=lambda s: f"0x{value:02x}/0x{mask:02x}" if s is accept else str(s))
