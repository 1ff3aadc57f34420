"""connmark: the connection's mark under a mask (libxt_connmark)."""

from __future__ import annotations

from iptexplain.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, types


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
        from iptexplain.netfilter.packets import Decision

        v = self.get("mark")
        value, mask = v.value
        if "UNTRACKED" in pkts.ctstate or "INVALID" in pkts.ctstate and len(pkts.ctstate) == 1:
            return Decision.none(pkts, "no connection: connmark never matches")
        hit = (pkts.connmark & mask) == value
        shown = f"connmark 0x{pkts.connmark:x}" + (f" & 0x{mask:x}" if mask != 0xFFFFFFFF else "")
        if hit != v.invert:
            return Decision.all(pkts, f"{shown} {'≠' if v.invert else '='} 0x{value:x}")
        return Decision.none(pkts, f"{shown} {'=' if v.invert else '≠'} 0x{value:x}")
