"""ECN: rewrite the ECN bits of the IP header / the TCP ECE and CWR flags (libipt_ECN, mangle);
the packet continues."""

from __future__ import annotations

from iptexplain.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Opt, OptType, Target, parse_uint, types


def _bit(text: str, top: int) -> int:
    v = parse_uint(text, 8)
    if v > top:
        raise OptionError(f"ECN: value `{text}' out of range (0-{top})")
    return v


bit = OptType("bit", lambda a: _bit(a[0], 1), lambda v: [str(v)])
ect = OptType("ect", lambda a: _bit(a[0], 3), lambda v: [str(v)])


@register
class EcnTarget(Target):
    name = "ECN"
    terminal = False
    family = 4
    table_only = ("mangle",)
    options = (
        Opt("remove", "--ecn-tcp-remove", types.flag, invert=False),
        Opt("cwr", "--ecn-tcp-cwr", bit, invert=False),
        Opt("ece", "--ecn-tcp-ece", bit, invert=False),
        Opt("ip_ect", "--ecn-ip-ect", ect, invert=False),
    )

    def check(self) -> None:
        if self.has("remove") and (self.has("cwr") or self.has("ece")):
            raise OptionError("ECN: --ecn-tcp-remove excludes --ecn-tcp-cwr/--ecn-tcp-ece")

    def save_args(self) -> list[str]:
        if self.has("remove") or (self.value("ece") == 0 and self.value("cwr") == 0):
            out = ["--ecn-tcp-remove"]
        else:
            out = []
            if self.has("ece"):
                out += ["--ecn-tcp-ece", str(self.value("ece"))]
            if self.has("cwr"):
                out += ["--ecn-tcp-cwr", str(self.value("cwr"))]
        if self.has("ip_ect") and not (self.has("remove") or (self.value("ece") == 0 and self.value("cwr") == 0)):
            out += ["--ecn-ip-ect", str(self.value("ip_ect"))]
        return out

    def apply(self, pkts, ctx):
        """Rewrite ECN bits; nothing a later rule of the described flow tests changes."""
        from iptexplain.netfilter.context import CONTINUE, Effect

        return Effect(CONTINUE, note="ECN bits rewritten")
