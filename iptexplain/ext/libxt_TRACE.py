"""TRACE: mark the packet so every rule it traverses is logged (libxt_TRACE, raw table).

With the nf_tables backend the trace goes to ``xtables-monitor --trace``; the packet continues.
"""

from __future__ import annotations

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
        from iptexplain.netfilter.context import CONTINUE, Effect

        return Effect(CONTINUE, note="kernel tracing enabled for this packet")
