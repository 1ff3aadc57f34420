"""ecn: the ECN bits of the IP header and the TCP ECE/CWR flags (libxt_ecn)."""

from __future__ import annotations

from iptexplain.core.errors import OptionError
from iptexplain.core.packets import Decision
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, OptType, parse_uint, types


def _ect(text: str) -> int:
    v = parse_uint(text, 8)
    if v > 3:
        raise OptionError("ecn: --ecn-ip-ect must be 0-3")
    return v


@register
class Ecn(Match):
    name = "ecn"
    options = (
        Opt("ece", "--ecn-tcp-ece", types.flag),
        Opt("cwr", "--ecn-tcp-cwr", types.flag),
        Opt("ip_ect", "--ecn-ip-ect", OptType("ect", lambda a: _ect(a[0]), lambda v: [str(v)])),
    )

    def check(self) -> None:
        if not self.values:
            raise OptionError("ecn: an option is required")

    # -- the -L face (ecn_print: " ECN match [!]ECE [!]CWR [!]ECT=N") --------------------------
    listing_keywords = ("ECN",)

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        out = ["ECN match"]
        for key, word in (("ece", "ECE"), ("cwr", "CWR")):
            v = self.get(key)
            if v is not None:
                out.append(f"{'!' if v.invert else ''}{word}")
        v = self.get("ip_ect")
        if v is not None:
            out.append(f"{'!' if v.invert else ''}ECT={v.value}")
        return " ".join(out)

    @classmethod
    def from_listing(cls, tail) -> "Ecn":
        tail.expect("ECN", "match")
        opts: list = []
        for word, flag in (("ECE", "--ecn-tcp-ece"), ("CWR", "--ecn-tcp-cwr")):
            w = tail.peek()
            if w is not None and w.lstrip("!") == word:
                opts.append((flag, w.startswith("!"), []))
                tail.pos += 1
        w = tail.peek()
        if w is not None and w.lstrip("!").startswith("ECT="):
            opts.append(("--ecn-ip-ect", w.startswith("!"), [w.lstrip("!")[4:]]))
            tail.pos += 1
        return cls.build(opts, spelled="ecn")  # type: ignore[return-value]

    def decide(self, pkts, ctx):
        """The ECN bits of the packet are not described: a fork."""
        what = self.describe()
        return Decision.fork(pkts, what, f"{what}", f"not {what}")
