"""TTL: set, decrement or increment the IPv4 TTL (libipt_TTL, mangle); the packet continues."""

from __future__ import annotations

from iptexplain.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Opt, Target, types


@register
class TtlTarget(Target):
    name = "TTL"
    terminal = False
    family = 4
    table_only = ("mangle",)
    options = (
        Opt("set", "--ttl-set", types.uint8, invert=False),
        Opt("dec", "--ttl-dec", types.uint8, invert=False),
        Opt("inc", "--ttl-inc", types.uint8, invert=False),
    )

    def check(self) -> None:
        if len(self.values) != 1:
            raise OptionError("TTL: You must specify an action")
        key, v = self.values[0]
        if key != "set" and v.value < 1:
            raise OptionError("TTL: increment/decrement must be at least 1")

    @property
    def operation(self) -> tuple[str, int]:
        key, v = self.values[0]
        return key, v.value
