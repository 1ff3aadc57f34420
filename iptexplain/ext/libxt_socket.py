"""socket: is there a local socket for this packet (transparent proxying) (libxt_socket)."""

from __future__ import annotations

from iptexplain.core.packets import Decision
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, types


@register
class Socket(Match):
    name = "socket"
    hooks = frozenset({"PREROUTING", "INPUT"})
    options = (
        Opt("transparent", "--transparent", types.flag, invert=False),
        Opt("nowildcard", "--nowildcard", types.flag, invert=False),
        Opt("restore_skmark", "--restore-skmark", types.flag, invert=False),
    )

    # -- the -L face (socket_mt_print_v3: " socket" then its save options, dashes kept) --------
    listing_keywords = ("socket",)

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        return " ".join(["socket"] + self.save_args())

    @classmethod
    def from_listing(cls, tail) -> "Socket":
        tail.expect("socket")
        opts: list = []
        while tail.peek() is not None and tail.peek().startswith("--") and cls.knows(tail.peek()):
            opts.append((tail.take(), False, []))
        return cls.build(opts, spelled="socket")  # type: ignore[return-value]

    def decide(self, pkts, ctx):
        """Whether a local socket takes the packet depends on the host's sockets: a fork."""
        what = self.describe()
        return Decision.fork(pkts, what, "a local socket matches the packet", "no local socket matches")
