"""CLASSIFY: set the packet's traffic-control class ``MAJOR:MINOR`` (libxt_CLASSIFY); continues."""

from __future__ import annotations

from iptexplain.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Opt, OptType, Target
from iptexplain.numbers import hexadecimal


def _class(text: str) -> tuple[int, int]:
    major, sep, minor = text.partition(":")
    try:
        a, b = hexadecimal(major, maximum=0xFFFF), hexadecimal(minor, maximum=0xFFFF)
    except OptionError:
        raise OptionError(f"Bad class value \"{text}\"") from None
    if not sep or a > 0xFFFF or b > 0xFFFF:
        raise OptionError(f"Bad class value \"{text}\"")
    return a, b


tcclass = OptType("class", lambda a: _class(a[0]), lambda v: [f"{v[0]:04x}:{v[1]:04x}"])


@register
class Classify(Target):
    name = "CLASSIFY"
    hooks = frozenset({"FORWARD", "OUTPUT", "POSTROUTING"})
    terminal = False
    table_only = ("mangle",)
    options = (Opt("set_class", "--set-class", tcclass, invert=False),)

    def check(self) -> None:
        if not self.has("set_class"):
            raise OptionError("CLASSIFY: --set-class is required")

    # -- the -L face (CLASSIFY_print: " CLASSIFY set MAJOR:MINOR", hex) ------------------------
    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        major, _, minor = self.save_args()[1].partition(":")
        return f"CLASSIFY set {int(major, 16):x}:{int(minor, 16):x}"

    @classmethod
    def from_listing(cls, tail) -> "Classify":
        tail.expect("CLASSIFY", "set")
        return cls.build([("--set-class", False, [tail.take()])], spelled="CLASSIFY")  # type: ignore[return-value]

    def apply(self, pkts, ctx):
        """Set the packet's traffic-control class (skb->priority) and continue."""
        from iptexplain.netfilter.context import CONTINUE, Effect

        return Effect(CONTINUE, note=f"tc class {self.value('set_class')}")
