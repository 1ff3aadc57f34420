"""tcpmss: the MSS option of a TCP SYN (libxt_tcpmss)."""

from __future__ import annotations

from iptexplain.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt
from iptexplain.ext.libxt_length import u16range


@register
class TcpMssMatch(Match):
    name = "tcpmss"
    options = (Opt("mss", "--mss", u16range),)

    def check(self) -> None:
        if not self.has("mss"):
            raise OptionError("tcpmss: --mss is required")
