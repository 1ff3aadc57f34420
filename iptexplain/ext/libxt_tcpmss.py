"""tcpmss: the MSS option of a TCP SYN (libxt_tcpmss)."""

from __future__ import annotations

from iptexplain.core.errors import OptionError
from iptexplain.core.packets import Decision
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt
from iptexplain.ext.libxt_length import u16range


@register
class TcpMssMatch(Match):
    name = "tcpmss"
    options = (Opt("mss", "--mss", u16range),)

    def check(self) -> None:
        if not self.has("mss"):
            raise OptionError("tcpmss: --mss is required")

    # -- the -L face (tcpmss_print: " tcpmss match [!]N[:M]") ----------------------------------
    listing_keywords = ("tcpmss",)

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        v = self.get("mss")
        lo, hi = v.value
        return f"tcpmss match {'!' if v.invert else ''}{lo if lo == hi else f'{lo}:{hi}'}"

    @classmethod
    def from_listing(cls, tail) -> "TcpMssMatch":
        tail.expect("tcpmss", "match")
        w = tail.take()
        inv = w.startswith("!")
        return cls.build([("--mss", inv, [w.lstrip("!") or tail.take()])], spelled="tcpmss")  # type: ignore[return-value]

    def decide(self, pkts, ctx):
        """The MSS option of the SYN is not part of the described flow: a fork."""
        what = self.describe()
        return Decision.fork(pkts, what, f"{what}", f"not {what}")
