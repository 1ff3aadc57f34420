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
