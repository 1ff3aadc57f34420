"""TTL: set, decrement or increment the IPv4 TTL (libipt_TTL, mangle); the packet continues.

IPv6's ``HL`` target (libip6t_HL) subclasses this one and changes only its words.
"""

from __future__ import annotations

from iptexplain.core.context import CONTINUE, Effect
from iptexplain.core.errors import OptionError
from iptexplain.core.packets import fmt_set, normalize, point
from iptexplain.ext import register
from iptexplain.ext.base import Opt, Target, types


@register
class TtlTarget(Target):
    name = "TTL"
    field = "ttl"  # the field's name in notes and rewrites
    terminal = False
    family = 4
    table_only = ("mangle",)
    options = (
        Opt("set", "--ttl-set", types.uint8, invert=False),
        Opt("dec", "--ttl-dec", types.uint8, invert=False),
        Opt("inc", "--ttl-inc", types.uint8, invert=False),
    )

    def check(self) -> None:
        if len(self.values) != 1:
            raise OptionError(f"{self.name}: You must specify an action")
        key, v = self.values[0]
        if key != "set" and v.value < 1:
            raise OptionError(f"{self.name}: increment/decrement must be at least 1")

    @property
    def operation(self) -> tuple[str, int]:
        key, v = self.values[0]
        return key, v.value

    # -- the -L face (TTL_print: " TTL set to N" / "decrement by N" / "increment by N") ----------
    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        key, v = self.values[0]
        return f"{self.name} " + {"set": "set to", "dec": "decrement by", "inc": "increment by"}[key] + f" {v.value}"

    @classmethod
    def from_listing(cls, tail) -> "TtlTarget":
        tail.expect(cls.name)
        words = {"set": ("to", "set"), "decrement": ("by", "dec"), "increment": ("by", "inc")}.get(tail.take())
        if words is None:
            raise OptionError(f"{cls.name}: unknown operation")
        tail.expect(words[0])
        return cls.build([(f"--{cls.name.lower()}-" + words[1], False, [tail.take()])], spelled=cls.name)  # type: ignore[return-value]

    def apply(self, pkts, ctx):
        """Set, decrement or increment the TTL / hop limit (saturating at 0 and 255); the packet
        continues."""
        op, n = self.operation
        if op == "set":
            new = point(n)
        else:
            d = -n if op == "dec" else n
            new = normalize((max(0, min(255, lo + d)), max(0, min(255, hi + d))) for lo, hi in pkts.ttl)
        if new == pkts.ttl:
            return Effect(CONTINUE, note=f"{self.field} unchanged")
        return Effect(CONTINUE, pkts.copy(ttl=new), [(self.field, fmt_set(pkts.ttl), fmt_set(new))])
