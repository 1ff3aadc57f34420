"""HL: set, decrement or increment the IPv6 hop limit (libip6t_HL, mangle); the packet continues."""

from __future__ import annotations

from iptexplain.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Opt, Target, types


@register
class HlTarget(Target):
    name = "HL"
    terminal = False
    family = 6
    table_only = ("mangle",)
    options = (
        Opt("set", "--hl-set", types.uint8, invert=False),
        Opt("dec", "--hl-dec", types.uint8, invert=False),
        Opt("inc", "--hl-inc", types.uint8, invert=False),
    )

    def check(self) -> None:
        if len(self.values) != 1:
            raise OptionError("HL: You must specify an action")
        key, v = self.values[0]
        if key != "set" and v.value < 1:
            raise OptionError("HL: increment/decrement must be at least 1")

    @property
    def operation(self) -> tuple[str, int]:
        key, v = self.values[0]
        return key, v.value
