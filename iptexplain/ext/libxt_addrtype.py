"""addrtype: the routing type of the source or destination address (libxt_addrtype).

``--dst-type LOCAL`` asks "is this one of the host's own addresses?" -- the tracer answers it
from the host model, which is why Docker's nat PREROUTING rule needs one.
"""

from __future__ import annotations

from iptexplain.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, OptType, types

ADDR_TYPES = ("UNSPEC", "UNICAST", "LOCAL", "BROADCAST", "ANYCAST", "MULTICAST", "BLACKHOLE",
              "UNREACHABLE", "PROHIBIT", "THROW", "NAT", "XRESOLVE")


def _types(text: str) -> frozenset[str]:
    out = set()
    for w in text.split(","):
        if w.upper() not in ADDR_TYPES:
            raise OptionError(f"addrtype: invalid address type \"{w}\"")
        out.add(w.upper())
    return frozenset(out)


addrtypes = OptType("addrtypes", lambda a: _types(a[0]), lambda v: [",".join(t for t in ADDR_TYPES if t in v)])


@register
class AddrType(Match):
    name = "addrtype"
    options = (
        Opt("src_type", "--src-type", addrtypes),
        Opt("dst_type", "--dst-type", addrtypes),
        Opt("limit_iface_in", "--limit-iface-in", types.flag, invert=False),
        Opt("limit_iface_out", "--limit-iface-out", types.flag, invert=False),
    )

    def check(self) -> None:
        if self.has("limit_iface_in") and self.has("limit_iface_out"):
            raise OptionError("addrtype: you can't specify both --limit-iface-in and --limit-iface-out")
