"""ttl: the IPv4 time to live (libipt_ttl): ``--ttl-eq``, ``! --ttl-eq``, ``--ttl-lt``, ``--ttl-gt``."""

from __future__ import annotations

from iptexplain.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, types


@register
class Ttl(Match):
    name = "ttl"
    family = 4
    options = (
        Opt("eq", "--ttl-eq", types.uint8, aliases=("--ttl",)),
        Opt("lt", "--ttl-lt", types.uint8, invert=False),
        Opt("gt", "--ttl-gt", types.uint8, invert=False),
    )

    def check(self) -> None:
        if len(self.values) != 1:
            raise OptionError("ttl: exactly one of --ttl-eq, --ttl-lt, --ttl-gt is required")

    @property
    def comparison(self) -> tuple[str, int]:
        """('eq'|'ne'|'lt'|'gt', ttl)."""
        key, v = self.values[0]
        return ("ne" if key == "eq" and v.invert else key), v.value

    def decide(self, pkts, ctx):
        """Compare the time to live (ipt_ttl's ttl_mt)."""
        from iptexplain.netfilter.packets import Decision, span

        op, n = self.comparison
        accept = {"eq": span(n, n), "ne": span(n, n), "lt": span(0, n - 1), "gt": span(n + 1, 255)}[op]
        return Decision.split(pkts, "ttl", accept, op == "ne", "ttl")

    # -- the -L face (ttl_print: " TTL match TTL == 5"; != is ! --ttl-eq) ----------------------
    listing_keywords = ("TTL",)
    _OPS = (("eq", "=="), ("lt", "<"), ("gt", ">"))

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        key, v = self.values[0]
        op = dict(self._OPS)[key]
        return f"TTL match TTL {'!=' if v.invert else op} {v.value}"

    @classmethod
    def from_listing(cls, tail) -> "Ttl":
        tail.expect("TTL", "match", "TTL")
        op = tail.take()
        ops = {sym: key for key, sym in cls._OPS} | {"!=": "eq"}
        if op not in ops:
            raise OptionError("not a ttl match")
        return cls.build([(f"--ttl-{ops[op]}", op == "!=", [tail.take()])], spelled="ttl")  # type: ignore[return-value]
