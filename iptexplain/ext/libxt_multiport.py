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
