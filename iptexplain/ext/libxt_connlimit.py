"""connlimit: the number of connections from one address or subnet (libxt_connlimit).

The count lives in the kernel: a trace cannot know it and forks on it.
"""

from __future__ import annotations

from iptexplain.core.errors import OptionError
from iptexplain.core.packets import Decision
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, OptType, parse_uint, types


def _plen(text: str) -> int:
    v = parse_uint(text)
    if v > 128:
        raise OptionError(f"connlimit: bad --connlimit-mask `{text}'")
    return v


@register
class Connlimit(Match):
    name = "connlimit"
    family_sensitive = True
    options = (
        Opt("upto", "--connlimit-upto", types.uint32),
        Opt("above", "--connlimit-above", types.uint32),
        Opt("mask", "--connlimit-mask", OptType("plen", lambda a: _plen(a[0]), lambda v: [str(v)]), invert=False),
        Opt("saddr", "--connlimit-saddr", types.flag, invert=False),
        Opt("daddr", "--connlimit-daddr", types.flag, invert=False),
    )

    def check(self) -> None:
        if self.has("upto") == self.has("above"):
            raise OptionError("connlimit: You must specify \"--connlimit-above\" or \"--connlimit-upto\".")
        if self.has("saddr") and self.has("daddr"):
            raise OptionError("connlimit: --connlimit-saddr and --connlimit-daddr are exclusive")
        if self.nfproto == 4 and self.value("mask", 0) > 32:
            raise OptionError("connlimit: --connlimit-mask must be 0-32 for IPv4")

    @property
    def above(self) -> bool:
        """True: matches when the count is above the limit; False: up to it."""
        key = "above" if self.has("above") else "upto"
        return (key == "above") != self.get(key).invert  # type: ignore[union-attr]

    @property
    def limit(self) -> int:
        return self.value("above", self.value("upto"))

    @property
    def side(self) -> str:
        return "dest" if self.has("daddr") else "source"

    def save_args(self) -> list[str]:
        out = ["--connlimit-above" if self.above else "--connlimit-upto", str(self.limit)]
        mask = self.value("mask")
        if mask is None:
            mask = 128 if self.nfproto == 6 else 32
        out += ["--connlimit-mask", str(mask)]
        out.append("--connlimit-daddr" if self.side == "dest" else "--connlimit-saddr")
        return out

    def decide(self, pkts, ctx):
        """The number of connections from/to the address lives in the kernel: a fork."""
        rel = "more than" if self.above else "at most"
        label = f"{rel} {self.limit} connections per {self.side} address"
        other = f"{'at most' if self.above else 'more than'} {self.limit} connections per {self.side} address"
        return Decision.fork(pkts, f"connlimit {label}", label, other)

    # -- the -L face (connlimit_print4/6: " #conn src/32 > 10", "<=" for --connlimit-upto) ----
    listing_keywords = ("#conn",)

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        mask = self.value("mask")
        if mask is None:
            mask = 128 if (self.nfproto or family) == 6 else 32
        side = "dst" if self.side == "dest" else "src"
        return f"#conn {side}/{mask} {'>' if self.above else '<='} {self.limit}"

    @classmethod
    def from_listing(cls, tail) -> "Connlimit":
        tail.expect("#conn")
        side, _, mask = tail.take().partition("/")
        op = tail.take()
        if side not in ("src", "dst") or op not in (">", "<="):
            raise OptionError("not a connlimit match")
        opts = [("--connlimit-above" if op == ">" else "--connlimit-upto", False, [tail.take()]),
                ("--connlimit-mask", False, [mask]),
                ("--connlimit-daddr" if side == "dst" else "--connlimit-saddr", False, [])]
        return cls.build(opts, spelled="connlimit", family=tail.family)  # type: ignore[return-value]
