"""MARK: set the packet's nfmark (libxt_MARK).

Every spelling (--set-mark, --and-mark, --or-mark, --xor-mark) is one operation in the kernel,
``mark = (mark & ~mask) ^ value``; iptables-save prints it as ``--set-xmark value/mask``.
"""

from __future__ import annotations

from iptexplain.core.context import CONTINUE, Effect
from iptexplain.core.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Opt, Target, parse_markmask, parse_uint, types

FULL = 0xFFFFFFFF


@register
class MarkTarget(Target):
    name = "MARK"
    terminal = False
    options = (
        Opt("set_xmark", "--set-xmark", types.markmask, invert=False),
        Opt("set_mark", "--set-mark", types.markmask, invert=False),
        Opt("and_mark", "--and-mark", types.uint32, invert=False),
        Opt("or_mark", "--or-mark", types.uint32, invert=False),
        Opt("xor_mark", "--xor-mark", types.uint32, invert=False),
    )

    def check(self) -> None:
        if len(self.values) != 1:
            raise OptionError("MARK target: exactly one of --set-xmark, --set-mark, --and-mark, --or-mark, --xor-mark is required")

    @property
    def xmark(self) -> tuple[int, int]:
        """(value, mask) of the kernel operation ``mark = (mark & ~mask) ^ value``."""
        key, v = self.values[0]
        if key == "set_xmark":
            return v.value
        if key == "set_mark":  # --set-mark v/m zeroes the masked bits then sets v
            value, mask = v.value
            return value, value | mask
        if key == "and_mark":
            return 0, FULL ^ v.value
        if key == "or_mark":
            return v.value, v.value
        return v.value, 0  # xor

    def save_args(self) -> list[str]:
        value, mask = self.xmark
        return ["--set-xmark", f"0x{value:x}/0x{mask:x}"]

    # -- the -L face (mark_tg_print): the shortest word for the (value, mask) operation --------
    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        value, mask = self.xmark
        if value == 0:
            return f"MARK and 0x{FULL ^ mask:x}"
        if value == mask:
            return f"MARK or 0x{value:x}"
        if mask == 0:
            return f"MARK xor 0x{value:x}"
        if mask == FULL:
            return f"MARK set 0x{value:x}"
        return f"MARK xset 0x{value:x}/0x{mask:x}"

    @classmethod
    def from_listing(cls, tail) -> "MarkTarget":
        tail.expect("MARK")
        op = tail.take()
        arg = tail.take()
        if op == "xset":
            value, mask = parse_markmask(arg)
        else:
            v = parse_uint(arg)
            ops = {"and": (0, FULL ^ v), "or": (v, v), "xor": (v, 0), "set": (v, FULL)}
            if op not in ops:
                raise OptionError(f"MARK: unknown operation `{op}'")
            value, mask = ops[op]
        return cls.build([("--set-xmark", False, [f"0x{value:x}/0x{mask:x}"])], spelled="MARK")  # type: ignore[return-value]

    def apply(self, pkts, ctx):
        """``mark = (mark & ~mask) ^ value``; the packet continues with the new mark."""
        value, mask = self.xmark
        new = (pkts.mark & ~mask & FULL) ^ value
        if new == pkts.mark:
            return Effect(CONTINUE, note=f"mark stays 0x{new:x}")
        return Effect(CONTINUE, pkts.copy(mark=new), [("mark", f"0x{pkts.mark:x}", f"0x{new:x}")])
