"""mh: the type of an IPv6 Mobility Header (libip6t_mh)."""

from __future__ import annotations

from iptexplain.core.errors import OptionError
from iptexplain.core.packets import Decision
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, OptType, parse_uint

MH_NAMES = (("binding-refresh-request", 0), ("brr", 0), ("home-test-init", 1), ("hoti", 1),
            ("careof-test-init", 2), ("coti", 2), ("home-test", 3), ("hot", 3), ("careof-test", 4),
            ("cot", 4), ("binding-update", 5), ("bu", 5), ("binding-acknowledgement", 6), ("ba", 6),
            ("binding-error", 7), ("be", 7))


def _type(name: str) -> int:
    """A name or an unambiguous prefix of one (an exact name wins), else a number."""
    match = None
    for full, typ in MH_NAMES:
        if full.lower().startswith(name.lower()):
            if match is None or len(full) == len(name):
                match = typ
    if match is not None:
        return match
    try:
        return parse_uint(name, 8)
    except OptionError:
        raise OptionError(f"Invalid MH type `{name}'") from None


def _types(text: str) -> tuple[int, int]:
    if ":" not in text:
        t = _type(text)
        return (t, t)
    lo_t, _, hi_t = text.partition(":")
    lo = _type(lo_t) if lo_t else 0
    hi = _type(hi_t) if hi_t else 0xFF
    if lo > hi:
        raise OptionError("Invalid MH type range (min > max)")
    return (lo, hi)


mhtypes = OptType("mhtypes", lambda a: _types(a[0]), lambda v: [str(v[0]) if v[0] == v[1] else f"{v[0]}:{v[1]}"])


@register
class Mh(Match):
    name = "mh"
    family = 6
    options = (Opt("type", "--mh-type", mhtypes),)

    def save_args(self) -> list[str]:
        v = self.get("type")
        if v is None or (v.value == (0, 0xFF) and not v.invert):
            return []
        return (["!"] if v.invert else []) + ["--mh-type"] + mhtypes.fmt(v.value)

    def decide(self, pkts, ctx):
        """The mobility header type is not described: a fork."""
        what = self.describe()
        return Decision.fork(pkts, what, f"{what}", f"not {what}")

    # -- the -L face (mh_print: " mh [!]TYPE[:TYPE]", numbers with -n, names without) ----------
    listing_keywords = ("mh",)

    def listing(self, numeric: bool = True, *, family: int = 6, proto: str | None = None) -> str:
        v = self.get("type")
        if v is None or (v.value == (0, 0xFF) and not v.invert):
            return "mh"
        lo, hi = v.value
        return f"mh {'!' if v.invert else ''}{lo if lo == hi else f'{lo}:{hi}'}"

    @classmethod
    def from_listing(cls, tail) -> "Mh":
        tail.expect("mh")
        w = tail.peek()
        if w is None or not (w.lstrip("!")[:1].isalnum()):
            return cls.build([], spelled="mh")  # type: ignore[return-value]
        tail.pos += 1
        return cls.build([("--mh-type", w.startswith("!"), [w.lstrip("!")])], spelled="mh")  # type: ignore[return-value]
