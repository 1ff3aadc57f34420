"""nfacct: count the packet in a named extended-accounting object (libxt_nfacct); always matches."""

from __future__ import annotations

from iptexplain.core.errors import OptionError
from iptexplain.core.packets import Decision
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, read_save_like, save_like_listing, types


@register
class Nfacct(Match):
    name = "nfacct"
    options = (Opt("name", "--nfacct-name", types.word, invert=False),)

    def check(self) -> None:
        if not self.has("name"):
            raise OptionError("nfacct: --nfacct-name is required")
        if len(self.value("name")) > 31:
            raise OptionError("nfacct: name too long")

    @property
    def object_name(self) -> str:
        return self.value("name")

    def decide(self, pkts, ctx):
        """Counts the packet in an accounting object; always matches."""
        return Decision.all(pkts, f"counted in nfacct {self.object_name}")

    # -- the -L face (nfacct_print: " nfacct-name NAME") ---------------------------------------
    listing_keywords = ("nfacct-name",)

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        return save_like_listing(self)

    @classmethod
    def from_listing(cls, tail) -> "Nfacct":
        return read_save_like(cls, tail, spelled="nfacct")  # type: ignore[return-value]
