"""The standard target: the verdicts ACCEPT, DROP, RETURN and QUEUE (xt_standard)."""

from __future__ import annotations

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
