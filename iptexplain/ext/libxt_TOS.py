"""TOS: rewrite the TOS / traffic class byte, ``tos = (tos & ~mask) ^ value`` (libxt_TOS); continues."""

from __future__ import annotations

from iptexplain.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Opt, Target, types
from iptexplain.ext.tos_values import tosmask


@register
class TosTarget(Target):
    name = "TOS"
    terminal = False
    table_only = ("mangle",)
    options = (
        Opt("set_tos", "--set-tos", tosmask, invert=False),
        Opt("and_tos", "--and-tos", types.uint8, invert=False),
        Opt("or_tos", "--or-tos", types.uint8, invert=False),
        Opt("xor_tos", "--xor-tos", types.uint8, invert=False),
    )

    def check(self) -> None:
        if len(self.values) != 1:
            raise OptionError("TOS target: exactly one of --set-tos, --and-tos, --or-tos, --xor-tos is required")

    @property
    def xtos(self) -> tuple[int, int]:
        """(value, mask) of ``tos = (tos & ~mask) ^ value``."""
        key, v = self.values[0]
        if key == "set_tos":
            return v.value
        if key == "and_tos":
            return 0, 0xFF ^ v.value
        if key == "or_tos":
            return v.value, v.value
        return v.value, 0

    def save_args(self) -> list[str]:
        value, mask = self.xtos
        return ["--set-tos", f"0x{value:02x}/0x{mask:02x}"]
