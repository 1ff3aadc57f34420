"""connbytes: how many packets/bytes the connection has carried so far (libxt_connbytes).

The count lives in the kernel; a trace of a new connection knows it is small, otherwise forks.
"""

from __future__ import annotations

from iptexplain.core.errors import OptionError
from iptexplain.core.packets import Decision
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, OptType, parse_uint, types

U64 = (1 << 64) - 1


def _range(text: str) -> tuple[int, int]:
    lo_t, sep, hi_t = text.partition(":")
    lo = parse_uint(lo_t, 64)
    hi = parse_uint(hi_t, 64) if sep and hi_t else U64
    return lo, hi


count = OptType("count", lambda a: _range(a[0]), lambda v: [f"{v[0]}" if v[1] in (0, U64) else f"{v[0]}:{v[1]}"])


@register
class Connbytes(Match):
    name = "connbytes"
    options = (
        Opt("connbytes", "--connbytes", count),
        Opt("dir", "--connbytes-dir", types.choice("original", "reply", "both"), invert=False),
        Opt("mode", "--connbytes-mode", types.choice("packets", "bytes", "avgpkt"), invert=False),
    )

    def check(self) -> None:
        for k, f in (("connbytes", "--connbytes"), ("dir", "--connbytes-dir"), ("mode", "--connbytes-mode")):
            if not self.has(k):
                raise OptionError(f"connbytes: {f} is required")

    @property
    def count(self) -> tuple[int, int, bool]:
        """(from, to, inverted)."""
        v = self.get("connbytes")
        return v.value[0], v.value[1], v.invert  # type: ignore[union-attr]

    def save_args(self) -> list[str]:
        lo, hi, inv = self.count
        out = (["!"] if inv else []) + ["--connbytes", str(lo) if hi in (0, U64) else f"{lo}:{hi}"]
        return out + ["--connbytes-mode", self.value("mode"), "--connbytes-dir", self.value("dir")]

    # -- the -L face (connbytes_print: "[!] connbytes A[:B] connbytes mode M connbytes direction D")
    listing_keywords = ("connbytes",)

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        w = self.save_args()
        inv = w[0] == "!"
        w = w[1:] if inv else w
        return (f"{'! ' if inv else ''}connbytes {w[1]} connbytes mode {w[3]} "
                f"connbytes direction {w[5]}")

    @classmethod
    def from_listing(cls, tail) -> "Connbytes":
        inv = tail.invert()
        tail.expect("connbytes")
        count = tail.take()
        tail.expect("connbytes", "mode")
        mode = tail.take()
        tail.expect("connbytes", "direction")
        direction = tail.take()
        return cls.build([("--connbytes", inv, [count]), ("--connbytes-mode", False, [mode]),
                          ("--connbytes-dir", False, [direction])], spelled="connbytes")  # type: ignore[return-value]

    def decide(self, pkts, ctx):
        """Bytes/packets the connection has seen: a first packet is packet 1 of the
        original direction; other counts and later packets fork."""
        what = self.describe()
        v = self.get("connbytes")
        lo, hi = v.value if isinstance(v.value, tuple) else (v.value, v.value)
        first = pkts.ctstate == frozenset({"NEW"})
        if first and self.value("mode") == "packets" and self.value("dir") in ("original", "both"):
            hit = lo <= 1 <= hi if hi >= lo else lo <= 1  # xt_connbytes: "to < from" means no upper bound
            if hit != v.invert:
                return Decision.all(pkts, "first packet of the connection: count 1")
            return Decision.none(pkts, f"first packet of the connection: count 1 not in {lo}:{hi}")
        return Decision.fork(pkts, what, f"connection counters within {what}", "connection counters outside")
