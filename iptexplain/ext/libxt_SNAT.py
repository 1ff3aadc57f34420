"""SNAT: rewrite the source of a new connection (libxt_NAT, nat POSTROUTING/INPUT)."""

from __future__ import annotations

from iptexplain.core.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Opt, Target, types
from iptexplain.ext.libxt_DNAT import natrange
from iptexplain.ext.nat_range import NatRange, nat_listing, read_nat_listing
from iptexplain.core.nat import snat


@register
class SNat(Target):
    name = "SNAT"
    hooks = frozenset({"POSTROUTING", "INPUT"})
    table_only = ("nat",)
    options = (
        Opt("to", "--to-source", natrange, invert=False, multi=True),
        Opt("random", "--random", types.flag, invert=False),
        Opt("random_fully", "--random-fully", types.flag, invert=False),
        Opt("persistent", "--persistent", types.flag, invert=False),
    )

    def check(self) -> None:
        if not self.has("to"):
            raise OptionError("SNAT: --to-source is required")

    @property
    def ranges(self) -> tuple[NatRange, ...]:
        return self.value("to", ())

    # -- the -L face (SNAT_print: " to:RANGE" per range, then the flags) -----------------------
    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        return nat_listing(self, "to:", [r.text for r in self.ranges])

    @classmethod
    def from_listing(cls, tail) -> "SNat":
        opts = read_nat_listing(tail, "--to-source", ("to:",), set(cls.option_map()))
        return cls.build(opts, spelled="SNAT")  # type: ignore[return-value]

    def apply(self, pkts, ctx):
        """Rewrite the source of the new connection (nf_nat_setup_info, manip SRC)."""
        return snat(pkts, self.ranges, ctx, random_fully=self.has("random_fully"))
