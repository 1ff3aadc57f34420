"""hl: the IPv6 hop limit (libip6t_hl): ``--hl-eq``, ``! --hl-eq``, ``--hl-lt``, ``--hl-gt``.

The IPv4 ``ttl`` match with IPv6's words (see libipt_ttl).
"""

from __future__ import annotations

from iptexplain.ext import register
from iptexplain.ext.base import Opt, types
from iptexplain.ext.libipt_ttl import Ttl


@register
class HopLimit(Ttl):
    name = "hl"
    family = 6
    label = "HL"
    field = "hop limit"
    options = (
        Opt("eq", "--hl-eq", types.uint8, aliases=("--hl",)),
        Opt("lt", "--hl-lt", types.uint8, invert=False),
        Opt("gt", "--hl-gt", types.uint8, invert=False),
    )
    listing_keywords = ("HL",)
