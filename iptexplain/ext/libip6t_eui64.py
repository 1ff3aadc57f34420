"""eui64: the IPv6 source address's interface identifier is the EUI-64 of the source MAC
(libip6t_eui64).  No options."""

from __future__ import annotations

from iptexplain.ext import register
from iptexplain.ext.base import Match


@register
class Eui64(Match):
    name = "eui64"
    family = 6
    options = ()

    def decide(self, pkts, ctx):
        """Whether the source's interface identifier is derived from the sender's MAC: not described, a fork."""
        from iptexplain.netfilter.packets import Decision

        what = self.describe()
        return Decision.fork(pkts, what, f"{what}", f"not {what}")
