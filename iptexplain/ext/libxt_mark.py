"""mark: the packet's nfmark under a mask (libxt_mark)."""

from __future__ import annotations

from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, types


@register
class Mark(Match):
    name = "mark"
    options = (Opt("mark", "--mark", types.markmask),)
