"""quota: match until a byte budget is spent (libxt_quota).  The budget lives in the kernel."""

from __future__ import annotations

from iptexplain.core.errors import OptionError
from iptexplain.core.packets import Decision
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, OptType, parse_uint

quota = OptType("quota", lambda a: parse_uint(a[0], 64), lambda v: [str(v)])


@register
class Quota(Match):
    name = "quota"
    options = (Opt("quota", "--quota", quota),)

    def check(self) -> None:
        if not self.has("quota"):
            raise OptionError("quota: --quota is required")

    # -- the -L face (quota_print: " quota: N bytes") -------------------------------------------
    listing_keywords = ("quota:",)

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        return f"quota: {self.value('quota')} bytes"

    @classmethod
    def from_listing(cls, tail) -> "Quota":
        tail.expect("quota:")
        n = tail.take()
        tail.expect("bytes")
        return cls.build([("--quota", False, [n])], spelled="quota")  # type: ignore[return-value]

    def decide(self, pkts, ctx):
        """The byte quota counts all earlier packets: a fork (matches until it is used up)."""
        what = self.describe()
        return Decision.fork(pkts, what, "quota not yet used up", "quota used up")
