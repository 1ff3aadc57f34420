"""SECMARK: set the packet's SELinux security mark (libxt_SECMARK, mangle/security); continues."""

from __future__ import annotations

from iptexplain.errors import OptionError
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
