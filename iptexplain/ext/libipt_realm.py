"""realm: the routing realm of the route the packet took (libipt_realm)."""

from __future__ import annotations

from iptexplain.core.errors import OptionError
from iptexplain.core.packets import Decision
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, read_save_like, save_like_listing
from iptexplain.ext.libxt_devgroup import group


@register
class Realm(Match):
    name = "realm"
    family = 4
    options = (Opt("realm", "--realm", group),)

    def check(self) -> None:
        if not self.has("realm"):
            raise OptionError("realm: --realm is required")

    def decide(self, pkts, ctx):
        """The route realm is not in the host model: a fork."""
        what = self.describe()
        return Decision.fork(pkts, what, f"{what}", f"not {what}")

    # -- the -L face (realm_print: " [!] realm 0xID[/0xMASK]") ---------------------------------
    listing_keywords = ("realm",)

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        return save_like_listing(self)

    @classmethod
    def from_listing(cls, tail) -> "Realm":
        return read_save_like(cls, tail, spelled="realm")  # type: ignore[return-value]
