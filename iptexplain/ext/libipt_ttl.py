"""ttl: the IPv4 time to live (libipt_ttl): ``--ttl-eq``, ``! --ttl-eq``, ``--ttl-lt``, ``--ttl-gt``.

IPv6's ``hl`` (libip6t_hl) is the same match on the hop limit; it subclasses this one and
changes only its words.
"""

from __future__ import annotations

from iptexplain.core.errors import OptionError
from iptexplain.core.packets import Decision, span
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, types


@register
class Ttl(Match):
    name = "ttl"
    family = 4
    label = "TTL"  # what the -L face prints
    field = "ttl"  # the field's name in reasons
    options = (
        Opt("eq", "--ttl-eq", types.uint8, aliases=("--ttl",)),
        Opt("lt", "--ttl-lt", types.uint8, invert=False),
        Opt("gt", "--ttl-gt", types.uint8, invert=False),
    )

    def check(self) -> None:
        if len(self.values) != 1:
            n = self.name
            raise OptionError(f"{n}: exactly one of --{n}-eq, --{n}-lt, --{n}-gt is required")

    @property
    def comparison(self) -> tuple[str, int]:
        """('eq'|'ne'|'lt'|'gt', value)."""
        key, v = self.values[0]
        return ("ne" if key == "eq" and v.invert else key), v.value

    def decide(self, pkts, ctx):
        """Compare the time to live / hop limit (ipt_ttl's ttl_mt, ip6t_hl's hl_mt6)."""
        op, n = self.comparison
        accept = {"eq": span(n, n), "ne": span(n, n), "lt": span(0, n - 1), "gt": span(n + 1, 255)}[op]
        return Decision.split(pkts, "ttl", accept, op == "ne", self.field)

    # -- the -L face (ttl_print: " TTL match TTL == 5"; != is ! --ttl-eq; hl: " HL match HL == 5")
    listing_keywords = ("TTL",)
    _OPS = (("eq", "=="), ("lt", "<"), ("gt", ">"))

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        key, v = self.values[0]
        op = dict(self._OPS)[key]
        return f"{self.label} match {self.label} {'!=' if v.invert else op} {v.value}"

    @classmethod
    def from_listing(cls, tail) -> "Ttl":
        tail.expect(cls.label, "match", cls.label)
        op = tail.take()
        ops = {sym: key for key, sym in cls._OPS} | {"!=": "eq"}
        if op not in ops:
            raise OptionError(f"not a {cls.name} match")
        return cls.build([(f"--{cls.name}-{ops[op]}", op == "!=", [tail.take()])], spelled=cls.name)  # type: ignore[return-value]
