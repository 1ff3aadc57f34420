"""MASQUERADE: SNAT to the out-interface's primary address (libxt_MASQUERADE)."""

from __future__ import annotations

from iptexplain.ext import register
from iptexplain.ext.base import Opt, OptType, Target, types
from iptexplain.ext.nat_range import fmt_port_range, nat_listing, parse_port_range, read_nat_listing
from iptexplain.core.nat import masquerade

portrange = OptType("natports", lambda a: parse_port_range(a[0]), lambda v: [fmt_port_range(v)])


@register
class Masquerade(Target):
    name = "MASQUERADE"
    hooks = frozenset({"POSTROUTING"})
    table_only = ("nat",)
    options = (
        Opt("to_ports", "--to-ports", portrange, invert=False),
        Opt("random", "--random", types.flag, invert=False),
        Opt("random_fully", "--random-fully", types.flag, invert=False),
    )

    # -- the -L face (MASQUERADE_print: " masq ports: LO-HI", then the flags) ------------------
    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        v = self.value("to_ports")
        return nat_listing(self, "masq ports: ", [fmt_port_range(v)] if v else [])

    @classmethod
    def from_listing(cls, tail) -> "Masquerade":
        opts = read_nat_listing(tail, "--to-ports", ("masq", "ports:"), set(cls.option_map()))
        return cls.build(opts, spelled="MASQUERADE")  # type: ignore[return-value]

    def apply(self, pkts, ctx):
        """SNAT to the out-interface's primary address (nf_nat_masquerade_ipv4/6)."""
        return masquerade(pkts, ctx, self.value("to_ports"), self.has("random_fully"))
