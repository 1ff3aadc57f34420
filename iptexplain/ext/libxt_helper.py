"""helper: the conntrack helper that created the connection's expectation (libxt_helper).

``-m helper --helper ftp`` matches the RELATED data connections the ftp helper expected.
"""

from __future__ import annotations

from iptexplain.core.errors import OptionError
from iptexplain.core.packets import Decision
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, types, unquote_listing


@register
class Helper(Match):
    name = "helper"
    options = (Opt("helper", "--helper", types.string),)

    def check(self) -> None:
        if not self.has("helper"):
            raise OptionError("helper: --helper is required")
        if len(self.value("helper")) > 29:
            raise OptionError("helper: name too long")

    @property
    def helper(self) -> str:
        return self.value("helper")

    # -- the -L face (helper_print: ' helper match [! ]"NAME"') ---------------------------------
    listing_keywords = ("helper",)

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        v = self.get("helper")
        return f'helper match {"! " if v.invert else ""}"{v.value}"'

    @classmethod
    def from_listing(cls, tail) -> "Helper":
        tail.expect("helper", "match")
        inv = tail.invert()
        return cls.build([("--helper", inv, [unquote_listing(tail.take())])], spelled="helper")  # type: ignore[return-value]

    def decide(self, pkts, ctx):
        """The connection's helper: only what ``CT --helper`` in raw attached (automatic
        helper assignment is off since Linux 4.7)."""
        want = self.helper
        have = ctx.conn.helper
        inv = self.get("helper").invert
        if (have == want) != inv:
            return Decision.all(pkts, f"helper {have or 'none'}")
        return Decision.none(pkts, f"helper {have or 'none'} ≠ {want}")
