"""SECMARK: set the packet's SELinux security mark (libxt_SECMARK, mangle/security); continues."""

from __future__ import annotations

from iptexplain.core.context import CONTINUE, Effect
from iptexplain.core.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Opt, Target, types


@register
class Secmark(Target):
    name = "SECMARK"
    terminal = False
    table_only = ("mangle", "security")
    options = (Opt("selctx", "--selctx", types.word, invert=False),)

    def check(self) -> None:
        if not self.has("selctx"):
            raise OptionError("SECMARK target: Parameter --selctx is required")

    # -- the -L face (SECMARK_print: " SECMARK selctx CTX") -------------------------------------
    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        return "SECMARK selctx " + self.value("selctx")

    @classmethod
    def from_listing(cls, tail) -> "Secmark":
        tail.expect("SECMARK", "selctx")
        return cls.build([("--selctx", False, [tail.take()])], spelled="SECMARK")  # type: ignore[return-value]

    def apply(self, pkts, ctx):
        """Set the packet's security mark (SELinux context) and continue."""
        return Effect(CONTINUE, note=f"security context {self.value('selctx')}")
