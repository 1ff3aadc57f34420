"""pkttype: the link-layer packet type -- unicast to this host, broadcast, multicast (libxt_pkttype)."""

from __future__ import annotations

from iptexplain.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, OptType

PKT_TYPES = {"unicast": "unicast", "host": "unicast", "broadcast": "broadcast", "bcast": "broadcast",
             "multicast": "multicast", "mcast": "multicast", "otherhost": "otherhost"}


def _pkttype(text: str) -> str:
    key = text.lower()
    if key not in PKT_TYPES:
        raise OptionError(f"Bad packet type '{text}'")
    return PKT_TYPES[key]


pkttype = OptType("pkttype", lambda a: _pkttype(a[0]), lambda v: [v])


@register
class PktType(Match):
    name = "pkttype"
    options = (Opt("pkt_type", "--pkt-type", pkttype),)

    def check(self) -> None:
        if not self.has("pkt_type"):
            raise OptionError("pkttype: --pkt-type is required")

    @property
    def pkt_type(self) -> str:
        return self.value("pkt_type")
