"""frag: the IPv6 fragment header -- id, length, flags (libip6t_frag)."""

from __future__ import annotations

from iptexplain.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, types
from iptexplain.ext.libxt_esp import save_spis


@register
class Frag(Match):
    name = "frag"
    family = 6
    options = (
        Opt("id", "--fragid", types.uintrange),
        Opt("len", "--fraglen", types.uint32),
        Opt("res", "--fragres", types.flag, invert=False),
        Opt("first", "--fragfirst", types.flag, invert=False),
        Opt("more", "--fragmore", types.flag, invert=False),
        Opt("last", "--fraglast", types.flag, invert=False),
    )

    def check(self) -> None:
        if self.has("more") and self.has("last"):
            raise OptionError("frag: --fragmore and --fraglast are exclusive")

    def save_args(self) -> list[str]:
        out = save_spis("--fragid", self.get("id"))
        v = self.get("len")
        if v is not None:
            out += (["!"] if v.invert else []) + ["--fraglen", str(v.value)]
        for key in ("res", "first", "more", "last"):
            if self.has(key):
                out.append("--frag" + key)
        return out
