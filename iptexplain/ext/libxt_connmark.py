"""connmark: the connection's mark under a mask (libxt_connmark)."""

from __future__ import annotations

from iptexplain.core.errors import OptionError
from iptexplain.core.packets import Decision
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, fmt_markmask, types


@register
class Connmark(Match):
    name = "connmark"
    options = (Opt("mark", "--mark", types.markmask),)

    def check(self) -> None:
        if not self.has("mark"):
            raise OptionError("connmark match: The --mark option is required")

    @property
    def mark(self) -> tuple[int, int]:
        """(value, mask)."""
        return self.value("mark")

    def decide(self, pkts, ctx):
        """``(ctmark & mask) == value``: a new connection starts with mark 0, CONNMARK sets it."""
        v = self.get("mark")
        value, mask = v.value
        if "UNTRACKED" in pkts.ctstate or "INVALID" in pkts.ctstate and len(pkts.ctstate) == 1:
            return Decision.none(pkts, "no connection: connmark never matches")
        hit = (pkts.connmark & mask) == value
        shown = f"connmark 0x{pkts.connmark:x}" + (f" & 0x{mask:x}" if mask != 0xFFFFFFFF else "")
        if hit != v.invert:
            return Decision.all(pkts, f"{shown} {'≠' if v.invert else '='} 0x{value:x}")
        return Decision.none(pkts, f"{shown} {'=' if v.invert else '≠'} 0x{value:x}")

    # -- the -L face (connmark_mt_print: " connmark match [!] 0xV[/0xM]") ----------------------
    listing_keywords = ("connmark", "CONNMARK")

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        v = self.get("mark")
        return f"connmark match {'! ' if v.invert else ''}{fmt_markmask(v.value)}"

    @classmethod
    def from_listing(cls, tail) -> "Connmark":
        if tail.take() not in ("connmark", "CONNMARK"):  # revision 0 printed "CONNMARK match"
            raise OptionError("not a connmark match")
        tail.expect("match")
        w = tail.take()
        inv = w.startswith("!")
        value = w[1:] or tail.take() if inv else w
        return cls.build([("--mark", inv, [value])], spelled="connmark")  # type: ignore[return-value]
