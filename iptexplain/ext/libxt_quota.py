"""quota: match until a byte budget is spent (libxt_quota).  The budget lives in the kernel."""

from __future__ import annotations

from iptexplain.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, OptType, parse_uint

quota = OptType("quota", lambda a: parse_uint(a[0], 64), lambda v: [str(v)])


@register
class Quota(Match):
    name = "quota"
    options = (Opt("quota", "--quota", quota),)

    def check(self) -> None:
        if not self.has("quota"):
            raise OptionError("quota: --quota is required")
