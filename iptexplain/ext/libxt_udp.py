"""udp: source and destination ports (libxt_udp)."""

from __future__ import annotations

from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, types


@register
class Udp(Match):
    name = "udp"
    options = (
        Opt("sport", "--sport", types.portrange, aliases=("--source-port",)),
        Opt("dport", "--dport", types.portrange, aliases=("--destination-port",)),
    )
