"""cgroup: the control group of the local socket that sent the packet (libxt_cgroup)."""

from __future__ import annotations

from iptexplain.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, types
from iptexplain.numbers import is_decimal


@register
class Cgroup(Match):
    name = "cgroup"
    options = (
        Opt("path", "--path", types.string),
        Opt("cgroup", "--cgroup", types.uint32),
    )

    def check(self) -> None:
        if not self.values:
            raise OptionError("cgroup: Either --path or --cgroup must be given")

    # -- the -L face (cgroup_print_v2: " cgroup [! ]PATH [! ]CLASSID") --------------------------
    listing_keywords = ("cgroup",)

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        out = ["cgroup"]
        for key in ("path", "cgroup"):
            v = self.get(key)
            if v is not None:
                out += (["!"] if v.invert else []) + [str(v.value)]
        return " ".join(out)

    @classmethod
    def from_listing(cls, tail) -> "Cgroup":
        tail.expect("cgroup")
        opts: list = []
        for flag in ("--path", "--cgroup"):
            start = tail.pos
            inv = tail.invert()
            w = tail.peek()
            if w is None or (flag == "--path") == is_decimal(w):  # a class id is a number, a path not
                tail.pos = start
                continue
            tail.pos += 1
            opts.append((flag, inv, [w]))
        return cls.build(opts, spelled="cgroup")  # type: ignore[return-value]

    def decide(self, pkts, ctx):
        """The sending socket's cgroup: only locally generated packets have one, and which
        cgroup sends is not described: a fork."""
        from iptexplain.netfilter.packets import Decision

        if not pkts.from_host:
            return Decision.none(pkts, "no local socket: the packet was not generated here")
        what = self.describe()
        return Decision.fork(pkts, what, f"sent from {what}", "sent from another cgroup")
