"""TCPMSS: rewrite the MSS option of TCP SYN packets (libxt_TCPMSS); the packet continues."""

from __future__ import annotations

from iptexplain.core.context import CONTINUE, Effect
from iptexplain.core.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Opt, Target, types


@register
class TcpMss(Target):
    name = "TCPMSS"
    terminal = False
    options = (
        Opt("set_mss", "--set-mss", types.uint16, invert=False),
        Opt("clamp", "--clamp-mss-to-pmtu", types.flag, invert=False),
    )

    def check(self) -> None:
        if len(self.values) != 1:
            raise OptionError("TCPMSS target: exactly one of --set-mss or --clamp-mss-to-pmtu is required")

    def allowed_hooks(self) -> frozenset[str] | None:
        """Clamping to the path MTU needs the route: FORWARD, OUTPUT and POSTROUTING only."""
        return frozenset({"FORWARD", "OUTPUT", "POSTROUTING"}) if self.has("clamp") else None

    @property
    def mss(self) -> int | None:
        """The MSS set, or None for clamp-to-PMTU."""
        return self.value("set_mss")

    def apply(self, pkts, ctx):
        """Rewrite the MSS option of SYN packets; nothing a later rule tests changes."""
        what = f"MSS set to {self.mss}" if self.mss is not None else "MSS clamped to the path MTU"
        return Effect(CONTINUE, note=what + " (SYN packets)")

    # -- the -L face (TCPMSS_print: " TCPMSS clamp to PMTU" / " TCPMSS set N") -----------------
    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        return "TCPMSS clamp to PMTU" if self.mss is None else f"TCPMSS set {self.mss}"

    @classmethod
    def from_listing(cls, tail) -> "TcpMss":
        tail.expect("TCPMSS")
        if tail.take_if("clamp"):
            tail.expect("to", "PMTU")
            return cls.build([("--clamp-mss-to-pmtu", False, [])], spelled="TCPMSS")  # type: ignore[return-value]
        tail.expect("set")
        return cls.build([("--set-mss", False, [tail.take()])], spelled="TCPMSS")  # type: ignore[return-value]
