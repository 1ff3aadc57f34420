"""DSCP: rewrite the DSCP field (libxt_DSCP, mangle); the packet continues."""

from __future__ import annotations

from iptexplain.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Opt, Target
from iptexplain.ext.dscp_helper import dscp, dscp_class
from iptexplain.numbers import is_decimal


@register
class DscpTarget(Target):
    name = "DSCP"
    terminal = False
    table_only = ("mangle",)
    options = (
        Opt("set_dscp", "--set-dscp", dscp, invert=False),
        Opt("set_dscp_class", "--set-dscp-class", dscp_class, invert=False),
    )

    def check(self) -> None:
        if len(self.values) != 1:
            raise OptionError("DSCP target: Parameter --set-dscp is required")

    @property
    def dscp(self) -> int:
        return self.values[0][1].value

    def save_args(self) -> list[str]:
        return ["--set-dscp", f"0x{self.dscp:02x}"]

    # -- the -L face (DSCP_print: " DSCP set 0xNN") ---------------------------------------------
    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        return f"DSCP set 0x{self.dscp:02x}"

    @classmethod
    def from_listing(cls, tail) -> "DscpTarget":
        tail.expect("DSCP", "set")
        w = tail.take()
        flag = "--set-dscp" if is_decimal(w[:1]) else "--set-dscp-class"
        return cls.build([(flag, False, [w])], spelled="DSCP")  # type: ignore[return-value]

    def apply(self, pkts, ctx):
        """Set the DSCP bits (the ECN bits stay); the packet continues."""
        from iptexplain.netfilter.context import CONTINUE, Effect
        from iptexplain.netfilter.packets import fmt_set, normalize

        new = normalize(((t & 0x03) | self.dscp << 2,) * 2 for lo, hi in pkts.tos for t in range(lo, hi + 1))
        if new == pkts.tos:
            return Effect(CONTINUE, note="dscp unchanged")
        return Effect(CONTINUE, pkts.copy(tos=new), [("tos", fmt_set(pkts.tos), fmt_set(new))])
