"""hl: the IPv6 hop limit (libip6t_hl): ``--hl-eq``, ``! --hl-eq``, ``--hl-lt``, ``--hl-gt``."""

from __future__ import annotations

from iptexplain.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, types


@register
class HopLimit(Match):
    name = "hl"
    family = 6
    options = (
        Opt("eq", "--hl-eq", types.uint8, aliases=("--hl",)),
        Opt("lt", "--hl-lt", types.uint8, invert=False),
        Opt("gt", "--hl-gt", types.uint8, invert=False),
    )

    def check(self) -> None:
        if len(self.values) != 1:
            raise OptionError("hl: exactly one of --hl-eq, --hl-lt, --hl-gt is required")

    @property
    def comparison(self) -> tuple[str, int]:
        """('eq'|'ne'|'lt'|'gt', hop limit)."""
        key, v = self.values[0]
        return ("ne" if key == "eq" and v.invert else key), v.value

    def decide(self, pkts, ctx):
        """Compare the hop limit (ip6t_hl's hl_mt6)."""
        from iptexplain.netfilter.packets import Decision, span

        op, n = self.comparison
        accept = {"eq": span(n, n), "ne": span(n, n), "lt": span(0, n - 1), "gt": span(n + 1, 255)}[op]
        return Decision.split(pkts, "ttl", accept, op == "ne", "hop limit")

    # -- the -L face (hl_print: " HL match HL == 5"; != is ! --hl-eq) --------------------------
    listing_keywords = ("HL",)
    _OPS = (("eq", "=="), ("lt", "<"), ("gt", ">"))

    def listing(self, numeric: bool = True, *, family: int = 6, proto: str | None = None) -> str:
        key, v = self.values[0]
        op = dict(self._OPS)[key]
        return f"HL match HL {'!=' if v.invert else op} {v.value}"

    @classmethod
    def from_listing(cls, tail) -> "HopLimit":
        tail.expect("HL", "match", "HL")
        op = tail.take()
        ops = {sym: key for key, sym in cls._OPS} | {"!=": "eq"}
        if op not in ops:
            raise OptionError("not an hl match")
        return cls.build([(f"--hl-{ops[op]}", op == "!=", [tail.take()])], spelled="hl")  # type: ignore[return-value]
