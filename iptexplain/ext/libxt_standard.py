"""The standard target: the verdicts ACCEPT, DROP, RETURN and QUEUE (xt_standard)."""

from __future__ import annotations

from iptexplain.core.context import Effect
from iptexplain.ext import register
from iptexplain.ext.base import Target


@register
class Standard(Target):
    name = "standard"
    aliases = ("ACCEPT", "DROP", "RETURN", "QUEUE")

    @property
    def verdict(self) -> str:
        return self.spelled

    def describe(self) -> str:
        return self.spelled

    def apply(self, pkts, ctx):
        """ACCEPT / DROP / RETURN / QUEUE: the verdict itself."""
        return Effect(self.verdict, queue="0" if self.verdict == "QUEUE" else None)
