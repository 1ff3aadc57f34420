"""eui64: the IPv6 source address's interface identifier is the EUI-64 of the source MAC
(libip6t_eui64).  No options."""

from __future__ import annotations

from iptexplain.core.errors import OptionError
from iptexplain.core.packets import Decision
from iptexplain.ext import register
from iptexplain.ext.base import Match


@register
class Eui64(Match):
    name = "eui64"
    family = 6
    options = ()

    def decide(self, pkts, ctx):
        """Whether the source's interface identifier is derived from the sender's MAC: not described, a fork."""
        what = self.describe()
        return Decision.fork(pkts, what, f"{what}", f"not {what}")

    # -- the -L face: eui64 has no print function, so -L shows nothing of it ------------------
    # A listing cannot reveal the match at all; nothing here can be read back from one.
    def listing(self, numeric: bool = True, *, family: int = 6, proto: str | None = None) -> str:
        return ""

    @classmethod
    def from_listing(cls, tail) -> "Eui64":
        raise OptionError("eui64 prints nothing in a listing")
