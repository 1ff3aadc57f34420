"""SYNPROXY: answer TCP SYNs with syncookies and open the connection to the server only after the
handshake (libxt_SYNPROXY).  The SYN itself is consumed (NF_STOLEN/DROP)."""

from __future__ import annotations

from iptexplain.core.context import DROP, Effect
from iptexplain.ext import register
from iptexplain.ext.base import Opt, Target, read_save_like, save_like_listing, types


@register
class SynProxy(Target):
    name = "SYNPROXY"
    hooks = frozenset({"INPUT", "FORWARD"})
    options = (
        Opt("sack_perm", "--sack-perm", types.flag, invert=False),
        Opt("timestamp", "--timestamp", types.flag, invert=False),
        Opt("wscale", "--wscale", types.uint32, invert=False),
        Opt("mss", "--mss", types.uint32, invert=False),
        Opt("ecn", "--ecn", types.flag, invert=False),
    )

    # -- the -L face (SYNPROXY_print: " SYNPROXY sack-perm timestamp wscale N mss N ecn") -------
    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        return save_like_listing(self, "SYNPROXY")

    @classmethod
    def from_listing(cls, tail) -> "SynProxy":
        return read_save_like(cls, tail, ("SYNPROXY",), spelled="SYNPROXY")  # type: ignore[return-value]

    def apply(self, pkts, ctx):
        """A SYN is answered by the host with a SYN cookie and dropped; the connection to the
        server is opened only after the client's ACK comes back."""
        return Effect(DROP, note="SYNPROXY answers the SYN itself (SYN cookie); the server sees the "
                      "connection after the client's ACK")
