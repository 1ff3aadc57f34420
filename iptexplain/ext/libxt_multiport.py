"""multiport: up to 15 ports or ranges at once (libxt_multiport)."""

from __future__ import annotations

from iptexplain.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, OptType, fmt_portrange, parse_portrange


def _ports(text: str) -> tuple[tuple[int, int], ...]:
    items = tuple(parse_portrange(p) for p in text.split(",") if p)
    slots = sum(1 if lo == hi else 2 for lo, hi in items)
    if not items or slots > 15:
        raise OptionError("multiport: too many ports specified (at most 15, a range counts as two)")
    return items


portlist = OptType("portlist", lambda a: _ports(a[0]), lambda v: [",".join(fmt_portrange(r) for r in v)])


@register
class Multiport(Match):
    name = "multiport"
    options = (
        Opt("sports", "--sports", portlist, aliases=("--source-ports",)),
        Opt("dports", "--dports", portlist, aliases=("--destination-ports",)),
        Opt("ports", "--ports", portlist),
    )

    def check(self) -> None:
        if len(self.values) != 1:
            raise OptionError("multiport: exactly one of --sports, --dports, --ports is needed")

    # -- the -L face (multiport_print_v1) ------------------------------------------------------
    listing_keywords = ("multiport",)

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        from iptexplain.ext.base import listing_port

        key, v = self.values[0]
        ports = ",".join(
            listing_port(lo, numeric, proto) if lo == hi
            else f"{listing_port(lo, numeric, proto)}:{listing_port(hi, numeric, proto)}"
            for lo, hi in v.value
        )
        return f"multiport {key} {'!' if v.invert else ''}{ports}"

    @classmethod
    def from_listing(cls, tail) -> "Multiport":
        tail.expect("multiport")
        key = tail.take()
        flag = {"sports": "--sports", "dports": "--dports", "ports": "--ports"}.get(key)
        if flag is None:
            raise OptionError(f"multiport: unknown direction `{key}'")
        ports = tail.take()
        inv = False
        if ports == "!":
            inv, ports = True, tail.take()
        elif ports.startswith("!"):
            inv, ports = True, ports[1:]
        return cls.build([(flag, inv, [ports])], spelled="multiport")  # type: ignore[return-value]
