"""MASQUERADE: SNAT to the out-interface's primary address (libxt_MASQUERADE)."""

from __future__ import annotations

from iptexplain.ext import register
from iptexplain.ext.base import Opt, OptType, Target, types
from iptexplain.ext.nat_range import fmt_port_range, parse_port_range

portrange = OptType("natports", lambda a: parse_port_range(a[0]), lambda v: [fmt_port_range(v)])


@register
class Masquerade(Target):
    name = "MASQUERADE"
    table_only = ("nat",)
    options = (
        Opt("to_ports", "--to-ports", portrange, invert=False),
        Opt("random", "--random", types.flag, invert=False),
        Opt("random_fully", "--random-fully", types.flag, invert=False),
    )
