"""TEE: send a copy of the packet to another gateway; the original continues (libxt_TEE, mangle)."""

from __future__ import annotations

from iptexplain.addr import check_iface
from iptexplain.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Opt, OptType, Target
from iptexplain.ext.libxt_TPROXY import host


@register
class Tee(Target):
    name = "TEE"
    terminal = False
    table_only = ("mangle",)
    options = (
        Opt("gateway", "--gateway", host, invert=False),
        Opt("oif", "--oif", OptType("iface", lambda a: check_iface(a[0]), lambda v: [v]), invert=False),
    )

    def check(self) -> None:
        if not self.has("gateway"):
            raise OptionError("TEE: --gateway is required")
