"""limit: a token bucket over all packets reaching the rule (libxt_limit)."""

from __future__ import annotations

from iptexplain.core.errors import OptionError
from iptexplain.core.packets import Decision
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, OptType, parse_uint
from iptexplain.ext.rate import parse_rate, per_second, print_rate

SCALE = 10000  # XT_LIMIT_SCALE
DEFAULT_AVG = parse_rate("3/hour", SCALE)
DEFAULT_BURST = 5


def _burst(text: str) -> int:
    v = parse_uint(text)
    if v > 10000:
        raise OptionError(f"limit: --limit-burst {text} out of range (0-10000)")
    return v


rate = OptType("rate", lambda a: parse_rate(a[0], SCALE), lambda v: [print_rate(v, SCALE)[0]])
burst = OptType("burst", lambda a: _burst(a[0]), lambda v: [str(v)])


@register
class Limit(Match):
    name = "limit"
    options = (
        Opt("limit", "--limit", rate, invert=False),
        Opt("burst", "--limit-burst", burst, invert=False),
    )

    @property
    def avg(self) -> int:
        """Kernel interval between packets, in 1/10000 s."""
        return self.value("limit", DEFAULT_AVG)

    @property
    def rate(self) -> float:
        """Packets per second."""
        return per_second(self.avg, SCALE)

    @property
    def burst(self) -> int:
        return self.value("burst", DEFAULT_BURST)

    def save_args(self) -> list[str]:
        out = ["--limit", print_rate(self.avg, SCALE)[0]]
        if self.burst != DEFAULT_BURST:
            out += ["--limit-burst", str(self.burst)]
        return out

    def decide(self, pkts, ctx):
        """The token bucket depends on the packets before this one: a fork.  A first packet
        finds the bucket full (``--limit-burst`` tokens), so the matching branch comes first."""
        rate = print_rate(self.avg, SCALE)[0]
        return Decision.fork(pkts, f"limit {rate} burst {self.burst}",
                             f"under the rate limit {rate} (burst {self.burst})",
                             f"over the rate limit {rate} (burst {self.burst})")

    # -- the -L face (limit_print: " limit: avg RATE burst N") ---------------------------------
    listing_keywords = ("limit:",)

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        return f"limit: avg {print_rate(self.avg, SCALE)[0]} burst {self.burst}"

    @classmethod
    def from_listing(cls, tail) -> "Limit":
        tail.expect("limit:", "avg")
        rate = tail.take()
        tail.expect("burst")
        burst = tail.take()
        if tail.peek() == "mode":  # hashlimit revision 0 prints the same start
            raise OptionError("a hashlimit, not a limit")
        return cls.build([("--limit", False, [rate]), ("--limit-burst", False, [burst])], spelled="limit")  # type: ignore[return-value]
