"""HL: set, decrement or increment the IPv6 hop limit (libip6t_HL, mangle); the packet continues.

The IPv4 ``TTL`` target with IPv6's words (see libipt_TTL).
"""

from __future__ import annotations

from iptexplain.ext import register
from iptexplain.ext.base import Opt, types
from iptexplain.ext.libipt_TTL import TtlTarget


@register
class HlTarget(TtlTarget):
    name = "HL"
    field = "hop limit"
    family = 6
    options = (
        Opt("set", "--hl-set", types.uint8, invert=False),
        Opt("dec", "--hl-dec", types.uint8, invert=False),
        Opt("inc", "--hl-inc", types.uint8, invert=False),
    )
