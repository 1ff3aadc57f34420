"""helper: the conntrack helper that created the connection's expectation (libxt_helper).

``-m helper --helper ftp`` matches the RELATED data connections the ftp helper expected.
"""

from __future__ import annotations

from iptexplain.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, types


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
