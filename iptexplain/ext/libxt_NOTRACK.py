"""NOTRACK: leave the packet untracked (libxt_NOTRACK, the old name of ``CT --notrack``).

iptables 1.8 implements it as an alias of the CT target and iptables-save keeps the old name.
The packet continues to the next rule; conntrack later marks it UNTRACKED and NAT skips it.
"""

from __future__ import annotations

from iptexplain.core.context import CONTINUE, Effect
from iptexplain.ext import register
from iptexplain.ext.base import Target


@register
class NoTrack(Target):
    name = "NOTRACK"
    terminal = False
    table_only = ("raw",)
    options = ()

    @property
    def notrack(self) -> bool:
        return True

    @property
    def helper(self) -> str | None:
        return None

    @property
    def zone(self) -> None:
        return None

    def apply(self, pkts, ctx):
        """The old name of ``CT --notrack``: the packet stays untracked and continues."""
        return Effect(CONTINUE, notrack=True, note="the packet will not be tracked (UNTRACKED, no NAT)")

    # -- the -L face: iptables 1.8 prints " NOTRACK" (the CT alias); older ones nothing --------
    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        return "NOTRACK"

    @classmethod
    def from_listing(cls, tail) -> "NoTrack":
        tail.take_if("NOTRACK")
        return cls.build([], spelled="NOTRACK")  # type: ignore[return-value]
