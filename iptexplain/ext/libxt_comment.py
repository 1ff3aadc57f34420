"""comment: a note on the rule, no effect on packets (libxt_comment)."""

from __future__ import annotations

from iptexplain.core.errors import OptionError
from iptexplain.core.packets import Decision
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

    # -- the -L face (comment_print: " /* %s */") ----------------------------------------------
    listing_keywords = ("/*",)

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        return f"/* {self.text} */"

    @classmethod
    def from_listing(cls, tail) -> "Comment":
        w = tail.take()
        if not (w.startswith("/* ") or w == "/*") or not w.endswith(" */") and w != "/* */":
            raise OptionError("not a comment")
        text = w[3:-3] if len(w) >= 6 else ""
        return cls.build([("--comment", False, [text])], spelled="comment")  # type: ignore[return-value]

    def decide(self, pkts, ctx):
        """A comment matches every packet."""
        return Decision.all(pkts, "")  # nothing to say: views show the comment with the rule
