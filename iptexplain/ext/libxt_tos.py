"""tos: the IPv4 TOS / IPv6 traffic class byte under a mask (libxt_tos, revision 1)."""

from __future__ import annotations

from iptexplain.errors import OptionError
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
