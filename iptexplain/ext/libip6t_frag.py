"""frag: the IPv6 fragment header -- id, length, flags (libip6t_frag)."""

from __future__ import annotations

from iptexplain.core.errors import OptionError
from iptexplain.core.packets import Decision
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, types
from iptexplain.ext.libxt_esp import listing_spis, read_listing_spis, save_spis


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

    # -- the -L face (frag_print: " frag id:N length:N reserved first more last") --------------
    listing_keywords = ("frag",)

    def listing(self, numeric: bool = True, *, family: int = 6, proto: str | None = None) -> str:
        out = ["frag", listing_spis("id", self.get("id"))]
        v = self.get("len")
        if v is not None:
            out.append(f"length:{'!' if v.invert else ''}{v.value}")
        out += [w for key, w in (("res", "reserved"), ("first", "first"), ("more", "more"), ("last", "last"))
                if self.has(key)]
        return " ".join(w for w in out if w)

    @classmethod
    def from_listing(cls, tail) -> "Frag":
        tail.expect("frag")
        opts: list = []
        read_listing_spis(tail, "id", "--fragid", opts)
        w = tail.peek()
        if w is not None and w.startswith("length:"):
            value = w[len("length:"):]
            opts.append(("--fraglen", value.startswith("!"), [value.lstrip("!")]))
            tail.pos += 1
        for key, word in (("res", "reserved"), ("first", "first"), ("more", "more"), ("last", "last")):
            if tail.take_if(word):
                opts.append(("--frag" + key, False, []))
        return cls.build(opts, spelled="frag")  # type: ignore[return-value]

    def decide(self, pkts, ctx):
        """Tests on the IPv6 fragment header: a described flow is not fragmented."""
        return Decision.none(pkts, "no fragment header in the flow")
