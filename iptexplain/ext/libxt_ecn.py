"""ecn: the ECN bits of the IP header and the TCP ECE/CWR flags (libxt_ecn)."""

from __future__ import annotations

from iptexplain.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, OptType, parse_uint, types


def _ect(text: str) -> int:
    v = parse_uint(text, 8)
    if v > 3:
        raise OptionError("ecn: --ecn-ip-ect must be 0-3")
    return v


@register
class Ecn(Match):
    name = "ecn"
    options = (
        Opt("ece", "--ecn-tcp-ece", types.flag),
        Opt("cwr", "--ecn-tcp-cwr", types.flag),
        Opt("ip_ect", "--ecn-ip-ect", OptType("ect", lambda a: _ect(a[0]), lambda v: [str(v)])),
    )

    def check(self) -> None:
        if not self.values:
            raise OptionError("ecn: an option is required")
