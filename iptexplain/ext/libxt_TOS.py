"""TOS: rewrite the TOS / traffic class byte, ``tos = (tos & ~mask) ^ value`` (libxt_TOS); continues."""

from __future__ import annotations

from iptexplain.core.context import CONTINUE, Effect
from iptexplain.core.errors import OptionError
from iptexplain.core.packets import fmt_set, normalize
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

    # -- the -L face (tos_tg_print: -n " TOS set 0xVV/0xMM"; names: and/or/xor forms) ----------
    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        value, mask = self.xtos
        if not numeric:
            if value == 0:
                return f"TOS and 0x{0xFF ^ mask:02x}"
            if value == mask:
                return f"TOS or 0x{value:02x}"
            if mask == 0:
                return f"TOS xor 0x{value:02x}"
        return f"TOS set 0x{value:02x}/0x{mask:02x}"

    @classmethod
    def from_listing(cls, tail) -> "TosTarget":
        tail.expect("TOS")
        op = tail.take()
        flag = {"set": "--set-tos", "and": "--and-tos", "or": "--or-tos", "xor": "--xor-tos"}.get(op)
        if flag is None:
            raise OptionError("TOS: unknown operation")
        return cls.build([(flag, False, [tail.take()])], spelled="TOS")  # type: ignore[return-value]

    def apply(self, pkts, ctx):
        """``tos = (tos & ~mask) ^ value``; the packet continues."""
        value, mask = self.xtos
        new = normalize(((t & ~mask & 0xFF) ^ value,) * 2 for lo, hi in pkts.tos for t in range(lo, hi + 1))
        if new == pkts.tos:
            return Effect(CONTINUE, note="tos unchanged")
        return Effect(CONTINUE, pkts.copy(tos=new), [("tos", fmt_set(pkts.tos), fmt_set(new))])
