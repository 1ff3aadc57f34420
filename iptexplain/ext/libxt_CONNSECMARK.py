"""CONNSECMARK: copy the security mark between packet and connection (libxt_CONNSECMARK); continues."""

from __future__ import annotations

from iptexplain.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Opt, Target, types


@register
class ConnSecmark(Target):
    name = "CONNSECMARK"
    terminal = False
    table_only = ("mangle", "security")
    options = (
        Opt("save", "--save", types.flag, invert=False),
        Opt("restore", "--restore", types.flag, invert=False),
    )

    def check(self) -> None:
        if len(self.values) != 1:
            raise OptionError("CONNSECMARK target: exactly one of --save or --restore is required")
