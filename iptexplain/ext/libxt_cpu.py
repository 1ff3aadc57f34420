"""cpu: the CPU handling the packet (libxt_cpu)."""

from __future__ import annotations

from iptexplain.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, types


@register
class Cpu(Match):
    name = "cpu"
    options = (Opt("cpu", "--cpu", types.uint32),)

    def check(self) -> None:
        if not self.has("cpu"):
            raise OptionError("cpu: --cpu is required")
