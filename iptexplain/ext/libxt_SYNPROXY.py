"""SYNPROXY: answer TCP SYNs with syncookies and open the connection to the server only after the
handshake (libxt_SYNPROXY).  The SYN itself is consumed (NF_STOLEN/DROP)."""

from __future__ import annotations

from iptexplain.ext import register
from iptexplain.ext.base import Opt, Target, types


@register
class SynProxy(Target):
    name = "SYNPROXY"
    options = (
        Opt("sack_perm", "--sack-perm", types.flag, invert=False),
        Opt("timestamp", "--timestamp", types.flag, invert=False),
        Opt("wscale", "--wscale", types.uint32, invert=False),
        Opt("mss", "--mss", types.uint32, invert=False),
        Opt("ecn", "--ecn", types.flag, invert=False),
    )
