"""DNAT: rewrite the destination of a new connection (libxt_NAT, nat PREROUTING/OUTPUT)."""

from __future__ import annotations

from iptexplain.core.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Opt, OptType, Target, types
from iptexplain.ext.nat_range import NatRange, nat_listing, parse_nat_range, read_nat_listing
from iptexplain.core.nat import dnat

natrange = OptType("natrange", lambda a: parse_nat_range(a[0]), lambda v: [v.text])


@register
class DNat(Target):
    name = "DNAT"
    hooks = frozenset({"PREROUTING", "OUTPUT"})
    table_only = ("nat",)
    options = (
        Opt("to", "--to-destination", natrange, invert=False, multi=True),
        Opt("random", "--random", types.flag, invert=False),
        Opt("persistent", "--persistent", types.flag, invert=False),
    )

    def check(self) -> None:
        if not self.has("to"):
            raise OptionError("DNAT: --to-destination is required")

    @property
    def ranges(self) -> tuple[NatRange, ...]:
        return self.value("to", ())

    # -- the -L face (DNAT_print: " to:RANGE" per range, then the flags) -----------------------
    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        return nat_listing(self, "to:", [r.text for r in self.ranges])

    @classmethod
    def from_listing(cls, tail) -> "DNat":
        opts = read_nat_listing(tail, "--to-destination", ("to:",), set(cls.option_map()))
        return cls.build(opts, spelled="DNAT")  # type: ignore[return-value]

    def apply(self, pkts, ctx):
        """Rewrite the destination of the new connection (nf_nat_setup_info, manip DST)."""
        return dnat(pkts, self.ranges, ctx)
