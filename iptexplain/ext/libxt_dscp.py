"""dscp: the 6-bit DSCP field of the TOS / traffic class byte (libxt_dscp)."""

from __future__ import annotations

from iptexplain.core.errors import OptionError
from iptexplain.core.packets import Decision, span
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt
from iptexplain.ext.dscp_helper import dscp, dscp_class


@register
class Dscp(Match):
    name = "dscp"
    options = (
        Opt("dscp", "--dscp", dscp),
        Opt("dscp_class", "--dscp-class", dscp_class),
    )

    def check(self) -> None:
        if len(self.values) != 1:
            raise OptionError("DSCP match: Parameter --dscp is required")

    @property
    def dscp(self) -> tuple[int, bool]:
        (_, v), = self.values
        return v.value, v.invert

    def save_args(self) -> list[str]:
        value, inv = self.dscp
        return (["!"] if inv else []) + ["--dscp", f"0x{value:02x}"]

    # -- the -L face (dscp_print: " DSCP match [!]0xNN") ----------------------------------------
    listing_keywords = ("DSCP",)

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        value, inv = self.dscp
        return f"DSCP match {'!' if inv else ''}0x{value:02x}"

    @classmethod
    def from_listing(cls, tail) -> "Dscp":
        tail.expect("DSCP", "match")
        w = tail.take()
        return cls.build([("--dscp", w.startswith("!"), [w.lstrip("!")])], spelled="dscp")  # type: ignore[return-value]

    def decide(self, pkts, ctx):
        """The DSCP bits: the upper six bits of the TOS / traffic class byte."""
        value, inv = self.dscp
        return Decision.split(pkts, "tos", span(value << 2, value << 2 | 3), inv, "dscp",
                              show=lambda s: f"0x{value:02x}" if s == span(value << 2, value << 2 | 3) else str(s))
