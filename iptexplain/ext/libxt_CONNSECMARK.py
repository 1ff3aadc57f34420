"""CONNSECMARK: copy the security mark between packet and connection (libxt_CONNSECMARK); continues."""

from __future__ import annotations

from iptexplain.core.context import CONTINUE, Effect
from iptexplain.core.errors import OptionError
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

    # -- the -L face (CONNSECMARK_print: " CONNSECMARK save|restore") --------------------------
    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        return "CONNSECMARK " + self.save_args()[0][2:]

    @classmethod
    def from_listing(cls, tail) -> "ConnSecmark":
        tail.expect("CONNSECMARK")
        mode = tail.take()
        if mode not in ("save", "restore"):
            raise OptionError("CONNSECMARK: expected save or restore")
        return cls.build([("--" + mode, False, [])], spelled="CONNSECMARK")  # type: ignore[return-value]

    def apply(self, pkts, ctx):
        """Copy the security mark between packet and connection; continue."""
        return Effect(CONTINUE, note="security mark " + ("saved to the connection" if self.has("save")
                                                        else "restored from the connection"))
