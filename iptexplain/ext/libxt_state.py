"""state: the connection tracking state (libxt_state, an alias of conntrack --ctstate)."""

from __future__ import annotations

from iptexplain.core.errors import OptionError
from iptexplain.core.packets import Decision
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, OptType

STATE_ORDER = ("INVALID", "NEW", "RELATED", "ESTABLISHED", "UNTRACKED")


def parse_states(text: str, allowed: tuple[str, ...] = STATE_ORDER) -> frozenset[str]:
    out = set()
    for word in text.split(","):
        w = word.strip().upper()
        if w not in allowed:
            raise OptionError(f"Bad ctstate \"{word}\"")
        out.add(w)
    return frozenset(out)


def fmt_states(states: frozenset[str], order: tuple[str, ...] = STATE_ORDER) -> str:
    return ",".join(s for s in order if s in states)


statelist = OptType("statelist", lambda a: parse_states(a[0]), lambda v: [fmt_states(v)])


@register
class State(Match):
    name = "state"
    options = (Opt("state", "--state", statelist),)

    @property
    def states(self) -> frozenset[str]:
        return self.value("state", frozenset())

    # -- the -L face (conntrack_dump with the state alias) -------------------------------------
    listing_keywords = ("state",)

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        v = self.get("state")
        if v is None:
            return "state"
        return f"{'! ' if v.invert else ''}state {fmt_states(v.value) or 'INVALID'}"

    @classmethod
    def from_listing(cls, tail) -> "State":
        inv = tail.invert()
        tail.expect("state")
        if tail.invert():  # iptables 1.4's libxt_state printed "state ! NEW"
            inv = True
        return cls.build([("--state", inv, [tail.take()])], spelled="state")  # type: ignore[return-value]

    def decide(self, pkts, ctx):
        """The connection's state (the packet's conntrack info)."""
        v = self.get("state")
        return Decision.states(pkts, "ctstate", v.value, v.invert, "state")
