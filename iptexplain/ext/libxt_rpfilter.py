"""rpfilter: reverse-path filter -- would a reply to the source leave by the incoming interface?
(libxt_rpfilter, raw and mangle PREROUTING)."""

from __future__ import annotations

from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, types


@register
class RpFilter(Match):
    name = "rpfilter"
    table_only = ("raw", "mangle")
    options = (
        Opt("loose", "--loose", types.flag, invert=False),
        Opt("validmark", "--validmark", types.flag, invert=False),
        Opt("accept_local", "--accept-local", types.flag, invert=False),
        Opt("invert", "--invert", types.flag, invert=False),
    )

    @property
    def inverted(self) -> bool:
        return self.has("invert")
