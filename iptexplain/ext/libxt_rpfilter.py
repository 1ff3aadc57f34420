"""rpfilter: reverse-path filter -- would a reply to the source leave by the incoming interface?
(libxt_rpfilter, raw and mangle PREROUTING)."""

from __future__ import annotations

from iptexplain.core.packets import EMPTY, Decision, union
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, read_save_like, save_like_listing, types


@register
class RpFilter(Match):
    name = "rpfilter"
    hooks = frozenset({"PREROUTING"})
    table_only = ("raw", "mangle")
    options = (
        Opt("loose", "--loose", types.flag, invert=False),
        Opt("validmark", "--validmark", types.flag, invert=False),
        Opt("accept_local", "--accept-local", types.flag, invert=False),
        Opt("invert", "--invert", types.flag, invert=False),
    )

    @property
    def inverted(self) -> bool:
        return self.has("invert")

    def decide(self, pkts, ctx):
        """Reverse-path check: would a reply to the source leave by the in-interface?"""
        if pkts.iniface is None or ctx.router is None:
            return Decision.all(pkts, "locally generated: passes rpfilter") if not self.inverted else Decision.none(pkts, "locally generated")
        if pkts.iniface == "lo":
            # rpfilter_mt: rpfilter_is_loopback() (in-device IFF_LOOPBACK) -> "return true ^ invert";
            # the host's packets to its own addresses come back through lo and always pass.
            return Decision.all(pkts, "came in through lo: passes rpfilter") if not self.inverted \
                else Decision.none(pkts, "came in through lo: passes rpfilter")
        ok = EMPTY
        for part, res in ctx.router.split(pkts.src):
            if res.dev == pkts.iniface or (self.has("loose") and res.type == "unicast") or \
                    (self.has("accept_local") and res.type == "local"):
                ok = union(ok, part)
        return Decision.split(pkts, "src", ok, self.inverted, "reverse path of source",
                              show=lambda s: f"via {pkts.iniface}" if s is ok else pkts.addr_text("src"))

    # -- the -L face (rpfilter_print: " rpfilter [loose] [validmark] [accept-local] [invert]") -
    listing_keywords = ("rpfilter",)

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        return save_like_listing(self, "rpfilter")

    @classmethod
    def from_listing(cls, tail) -> "RpFilter":
        return read_save_like(cls, tail, ("rpfilter",), spelled="rpfilter")  # type: ignore[return-value]
