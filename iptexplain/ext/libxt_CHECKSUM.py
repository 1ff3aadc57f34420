"""CHECKSUM: fill in a missing checksum (libxt_CHECKSUM, mangle table; old DHCP clients)."""

from __future__ import annotations

from iptexplain.core.context import CONTINUE, Effect
from iptexplain.core.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Opt, Target, types


@register
class Checksum(Target):
    name = "CHECKSUM"
    terminal = False
    table_only = ("mangle",)
    options = (Opt("fill", "--checksum-fill", types.flag, invert=False),)

    def check(self) -> None:
        if not self.has("fill"):
            raise OptionError("CHECKSUM target: Parameter --checksum-fill is required")

    def apply(self, pkts, ctx):
        """Fill in the checksum; nothing a later rule tests changes."""
        return Effect(CONTINUE, note="checksum filled in")

    # -- the -L face (CHECKSUM_print: " CHECKSUM fill") ----------------------------------------
    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        return "CHECKSUM fill"

    @classmethod
    def from_listing(cls, tail) -> "Checksum":
        tail.expect("CHECKSUM", "fill")
        return cls.build([("--checksum-fill", False, [])], spelled="CHECKSUM")  # type: ignore[return-value]
