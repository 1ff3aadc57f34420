"""TRACE: mark the packet so every rule it traverses is logged (libxt_TRACE, raw table).

With the nf_tables backend the trace goes to ``xtables-monitor --trace``; the packet continues.
"""

from __future__ import annotations

from iptexplain.core.context import CONTINUE, Effect
from iptexplain.ext import register
from iptexplain.ext.base import Target


@register
class Trace(Target):
    name = "TRACE"
    terminal = False
    table_only = ("raw",)
    options = ()

    def apply(self, pkts, ctx):
        """Turn on the kernel's packet tracing for this packet and continue."""
        return Effect(CONTINUE, note="kernel tracing enabled for this packet")

    # -- the -L face: TRACE has no print function ----------------------------------------------
    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        return ""

    @classmethod
    def from_listing(cls, tail) -> "Trace":
        return cls.build([], spelled="TRACE")  # type: ignore[return-value]
