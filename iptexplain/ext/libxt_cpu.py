"""cpu: the CPU handling the packet (libxt_cpu)."""

from __future__ import annotations

from iptexplain.core.errors import OptionError
from iptexplain.core.packets import Decision
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, types


@register
class Cpu(Match):
    name = "cpu"
    options = (Opt("cpu", "--cpu", types.uint32),)

    def check(self) -> None:
        if not self.has("cpu"):
            raise OptionError("cpu: --cpu is required")

    # -- the -L face (cpu_print: " cpu [! ]N") --------------------------------------------------
    listing_keywords = ("cpu",)

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        v = self.get("cpu")
        return f"cpu {'! ' if v.invert else ''}{v.value}"

    @classmethod
    def from_listing(cls, tail) -> "Cpu":
        tail.expect("cpu")
        inv = tail.invert()
        return cls.build([("--cpu", inv, [tail.take()])], spelled="cpu")  # type: ignore[return-value]

    def decide(self, pkts, ctx):
        """Which CPU handles the packet is the kernel's choice: a fork."""
        what = self.describe()
        return Decision.fork(pkts, what, f"processed on the CPU in {what}", "processed on another CPU")
