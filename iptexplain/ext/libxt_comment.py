"""comment: a note on the rule, no effect on packets (libxt_comment)."""

from __future__ import annotations

from iptexplain.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, types


@register
class Comment(Match):
    name = "comment"
    options = (Opt("comment", "--comment", types.string, invert=False),)

    def check(self) -> None:
        if len(self.value("comment", "")) > 255:
            raise OptionError("comment: comment may not exceed 255 characters")

    @property
    def text(self) -> str:
        return self.value("comment", "")
