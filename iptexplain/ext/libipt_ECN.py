"""ECN: rewrite the ECN bits of the IP header / the TCP ECE and CWR flags (libipt_ECN, mangle);
the packet continues."""

from __future__ import annotations

from iptexplain.core.context import CONTINUE, Effect
from iptexplain.core.errors import OptionError
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
        return Effect(CONTINUE, note="ECN bits rewritten")

    # -- the -L face (ECN_print: " ECN TCP remove" / " ECN ECE=1 CWR=0 ECT codepoint=2") -------
    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        words = self.save_args()
        if words[:1] == ["--ecn-tcp-remove"]:
            return "ECN TCP remove"
        out = ["ECN"]
        for flag, label in (("--ecn-tcp-ece", "ECE="), ("--ecn-tcp-cwr", "CWR="), ("--ecn-ip-ect", "ECT codepoint=")):
            if flag in words:
                out.append(label + words[words.index(flag) + 1])
        return " ".join(out)

    @classmethod
    def from_listing(cls, tail) -> "EcnTarget":
        tail.expect("ECN")
        if tail.take_if("TCP"):
            tail.expect("remove")
            return cls.build([("--ecn-tcp-remove", False, [])], spelled="ECN")  # type: ignore[return-value]
        opts: list = []
        for label, flag in (("ECE=", "--ecn-tcp-ece"), ("CWR=", "--ecn-tcp-cwr")):
            w = tail.peek()
            if w is not None and w.startswith(label):
                opts.append((flag, False, [w[len(label):]]))
                tail.pos += 1
        if tail.peek() == "ECT" and (tail.peek(1) or "").startswith("codepoint="):
            opts.append(("--ecn-ip-ect", False, [tail.words[tail.pos + 1][len("codepoint="):]]))
            tail.pos += 2
        return cls.build(opts, spelled="ECN")  # type: ignore[return-value]
