"""pkttype: the link-layer packet type -- unicast to this host, broadcast, multicast (libxt_pkttype)."""

from __future__ import annotations

from iptexplain.core.errors import OptionError
from iptexplain.core.packets import EMPTY, Decision, subtract
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

    def decide(self, pkts, ctx):
        """The link-layer type: what the destination says (a broadcast or multicast address,
        else unicast to this host, or otherhost for frames to another MAC)."""
        v = self.get("pkt_type")
        if pkts.from_host:
            kinds = {"unicast": pkts.dst}
        else:
            types = ctx.router.addr_types(pkts.dst)
            kinds = {"broadcast": types.get("BROADCAST", EMPTY), "multicast": types.get("MULTICAST", EMPTY)}
            rest = pkts.dst

            for part in kinds.values():
                rest = subtract(rest, part)
            kinds["unicast"] = rest
        accept = kinds.get(v.value, EMPTY)
        d = Decision.split(pkts, "dst", accept, v.invert, "packet type",
                           show=lambda s: v.value if s is accept else ",".join(k for k, part in kinds.items() if part))
        return d

    # -- the -L face (pkttype_print: " PKTTYPE = broadcast", "!=" when inverted) ----------------
    listing_keywords = ("PKTTYPE",)

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        v = self.get("pkt_type")
        return f"PKTTYPE {'!' if v.invert else ''}= {v.value}"

    @classmethod
    def from_listing(cls, tail) -> "PktType":
        tail.expect("PKTTYPE")
        op = tail.take()
        if op not in ("=", "!="):
            raise OptionError("not a pkttype match")
        return cls.build([("--pkt-type", op == "!=", [tail.take()])], spelled="pkttype")  # type: ignore[return-value]
