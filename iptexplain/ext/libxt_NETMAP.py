"""NETMAP: map a whole network onto another, address by address (libipt/libip6t_NETMAP, nat).

In PREROUTING/OUTPUT it rewrites the destination, in POSTROUTING/INPUT the source: the host
part is kept and the network part replaced by ``--to``'s.
"""

from __future__ import annotations

from iptexplain.core.addr import Address, parse_address
from iptexplain.core.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Opt, OptType, Target
from iptexplain.core.nat import netmap

netaddr = OptType("netaddr", lambda a: parse_address(a[0]), lambda v: [str(v)])


@register
class Netmap(Target):
    name = "NETMAP"
    table_only = ("nat",)
    options = (Opt("to", "--to", netaddr, invert=False),)

    def check(self) -> None:
        if not self.has("to"):
            raise OptionError("NETMAP: --to is required")

    @property
    def to(self) -> Address:
        return self.value("to")

    def apply(self, pkts, ctx):
        """Map the network part onto ``--to``'s, keeping the host part (DNAT before routing,
        SNAT after)."""
        return netmap(pkts, ctx, self.to.value, self.to.mask)

    # -- the -L face (NETMAP_print: " to:ADDR/LEN") --------------------------------------------
    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        return "to:" + self.save_args()[1]

    @classmethod
    def from_listing(cls, tail) -> "Netmap":
        w = tail.take()
        if not w.startswith("to:"):
            raise OptionError("NETMAP: expected to:ADDR/LEN")
        return cls.build([("--to", False, [w[3:]])], spelled="NETMAP")  # type: ignore[return-value]
