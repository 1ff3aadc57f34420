"""socket: is there a local socket for this packet (transparent proxying) (libxt_socket)."""

from __future__ import annotations

from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, types


@register
class Socket(Match):
    name = "socket"
    options = (
        Opt("transparent", "--transparent", types.flag, invert=False),
        Opt("nowildcard", "--nowildcard", types.flag, invert=False),
        Opt("restore_skmark", "--restore-skmark", types.flag, invert=False),
    )
