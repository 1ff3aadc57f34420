"""REDIRECT: DNAT to the host itself, the incoming interface's primary address (libxt_REDIRECT)."""

from __future__ import annotations

from iptexplain.ext import register
from iptexplain.ext.base import Opt, Target, types
from iptexplain.ext.libxt_MASQUERADE import portrange


@register
class Redirect(Target):
    name = "REDIRECT"
    table_only = ("nat",)
    options = (
        Opt("to_ports", "--to-ports", portrange, invert=False),
        Opt("random", "--random", types.flag, invert=False),
    )
