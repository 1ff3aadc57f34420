"""mark: the packet's nfmark under a mask (libxt_mark)."""

from __future__ import annotations

from iptexplain.core.packets import Decision
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, fmt_markmask, types


@register
class Mark(Match):
    name = "mark"
    options = (Opt("mark", "--mark", types.markmask),)

    # -- the -L face (mark_mt_print: " mark match [!] 0xV[/0xM]") ------------------------------
    listing_keywords = ("mark",)

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        v = self.get("mark")
        return f"mark match {'! ' if v.invert else ''}{fmt_markmask(v.value)}"

    @classmethod
    def from_listing(cls, tail) -> "Mark":
        tail.expect("mark", "match")
        inv = tail.invert()
        return cls.build([("--mark", inv, [tail.take()])], spelled="mark")  # type: ignore[return-value]

    def decide(self, pkts, ctx):
        """``(nfmark & mask) == value`` (xt_mark's mark_mt); earlier MARK rules set nfmark."""
        v = self.get("mark")
        value, mask = v.value
        hit = (pkts.mark & mask) == value
        shown = f"mark 0x{pkts.mark:x}" + (f" & 0x{mask:x}" if mask != 0xFFFFFFFF else "")
        want = f"0x{value:x}"
        if hit != v.invert:
            return Decision.all(pkts, f"{shown} {'≠' if v.invert else '='} {want}")
        return Decision.none(pkts, f"{shown} {'=' if v.invert else '≠'} {want}")
