"""statistic: match a fraction of packets, at random or every n-th (libxt_statistic).

kube-proxy spreads a Service over its endpoints with ``--mode random --probability 0.333…``
rules tried in order; the tracer forks on each with the probability as its label.
"""

from __future__ import annotations

import math

from iptexplain.core.errors import OptionError
from iptexplain.core.packets import Decision
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, OptType, parse_uint, types


def _probability(text: str) -> int:
    """The kernel's 31-bit fixed point: lround(0x80000000 * p)."""
    try:
        p = float(text)
    except ValueError:
        raise OptionError(f"statistic: bad --probability `{text}'") from None
    if not 0 <= p <= 1 or math.isnan(p):
        raise OptionError(f"statistic: --probability `{text}' out of range (0-1)")
    return int(math.floor(0x80000000 * p + 0.5))


def _every(text: str) -> int:
    v = parse_uint(text)
    if v < 1:
        raise OptionError("statistic: --every must be at least 1")
    return v


probability = OptType("probability", lambda a: _probability(a[0]), lambda v: [f"{v / 0x80000000:.11f}"])
every = OptType("every", lambda a: _every(a[0]), lambda v: [str(v)])


@register
class Statistic(Match):
    name = "statistic"
    options = (
        Opt("mode", "--mode", types.choice("random", "nth"), invert=False),
        Opt("probability", "--probability", probability),
        Opt("every", "--every", every),
        Opt("packet", "--packet", types.uint32, invert=False),
    )

    def check(self) -> None:
        if not self.has("mode"):
            raise OptionError("statistic: --mode is required")
        if self.mode == "random":
            if not self.has("probability"):
                raise OptionError("--probability must be specified when using random mode")
            if self.has("every") or self.has("packet"):
                raise OptionError("statistic: --every/--packet go with --mode nth")
        else:
            if self.has("probability"):
                raise OptionError("statistic: --probability goes with --mode random")
            if not (self.has("every") or self.has("packet")):
                raise OptionError("--every and --packet must be specified when using nth mode")
            if self.packet > self.every - 1:
                raise OptionError("the --packet p must be 0 <= p <= n-1")

    @property
    def mode(self) -> str:
        return self.value("mode")

    @property
    def inverted(self) -> bool:
        return any(v.invert for _, v in self.values)

    @property
    def probability(self) -> float | None:
        """The chance a packet matches (random mode), as the kernel holds it."""
        v = self.value("probability")
        return None if v is None else v / 0x80000000

    @property
    def every(self) -> int:
        return self.value("every", 1)

    @property
    def packet(self) -> int:
        return self.value("packet", 0)

    def save_args(self) -> list[str]:
        inv = ["!"] if self.inverted else []
        if self.mode == "random":
            return ["--mode", "random"] + inv + ["--probability"] + probability.fmt(self.value("probability"))
        return ["--mode", "nth"] + inv + ["--every", str(self.every), "--packet", str(self.packet)]

    def decide(self, pkts, ctx):
        """Chance, not the packet, decides: a fork.  Random mode carries its probability (the
        tracer multiplies along a kube-proxy cascade: 1/3, 1/3, 1/3); nth mode says which
        packet of each ``--every`` matches.  The choice is made once, on the first packet."""
        if self.mode == "random":
            p = self.probability
            if self.inverted:
                p = 1 - p
            shown = probability.fmt(self.value("probability"))[0]
            return Decision.fork(pkts, f"statistic mode random probability {shown}",
                                 f"random choice taken (p={p:.5g})", f"random choice not taken (p={1 - p:.5g})", p)
        which = f"packet {self.packet} of every {self.every}"
        yes, no = f"{which} (counted by the kernel)", f"not {which}"
        if self.inverted:
            yes, no = no, yes
        return Decision.fork(pkts, f"statistic mode nth every {self.every} packet {self.packet}", yes, no,
                             (1 / self.every) if not self.inverted else 1 - 1 / self.every)

    # -- the -L face (statistic_print) ----------------------------------------------------------
    # " statistic mode random [!] probability P" / " statistic mode nth [!] every N [packet P]".
    listing_keywords = ("statistic",)

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        words = [w[2:] if w.startswith("--") else w for w in self.save_args()]
        if self.mode == "nth" and self.packet == 0:
            words = words[:-2]
        return "statistic " + " ".join(words)

    @classmethod
    def from_listing(cls, tail) -> "Statistic":
        tail.expect("statistic", "mode")
        mode = tail.take()
        opts: list = [("--mode", False, [mode])]
        inv = tail.invert()
        if mode == "random":
            tail.expect("probability")
            opts.append(("--probability", inv, [tail.take()]))
        elif mode == "nth":
            tail.expect("every")
            opts.append(("--every", inv, [tail.take()]))
            if tail.take_if("packet"):
                opts.append(("--packet", False, [tail.take()]))
        else:
            raise OptionError(f"statistic: unknown mode `{mode}'")
        return cls.build(opts, spelled="statistic")  # type: ignore[return-value]
