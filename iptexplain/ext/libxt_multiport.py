"""multiport: up to 15 ports or ranges at once (libxt_multiport)."""

from __future__ import annotations

from iptexplain.core.errors import OptionError
from iptexplain.core.packets import Decision, fmt_set, normalize, single
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, OptType, fmt_portrange, listing_port, listing_service, parse_port


def _item(text: str) -> tuple[int, int]:
    """``80`` or ``1000:2000``; both ends required and low < high, as parse_multi_ports wants."""
    if ":" not in text:
        p = parse_port(text)
        return (p, p)
    lo_t, _, hi_t = text.partition(":")
    lo, hi = parse_port(lo_t), parse_port(hi_t)
    if lo >= hi:
        raise OptionError("invalid portrange specified")
    return (lo, hi)


def _ports(text: str) -> tuple[tuple[int, int], ...]:
    items = tuple(_item(p) for p in text.split(","))
    slots = 0
    for lo, hi in items:
        if lo != hi and slots == 14:
            raise OptionError("too many ports specified")
        slots += 1 if lo == hi else 2
    if slots > 15:
        raise OptionError("too many ports specified")
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

        ports = ",".join(":".join(listing_service(p, tail.proto) for p in item.split(":"))
                         for item in ports.split(","))
        return cls.build([(flag, inv, [ports])], spelled="multiport")  # type: ignore[return-value]

    def decide(self, pkts, ctx):
        """Ports in the list (``--ports``: the source or the destination port)."""
        key, v = self.values[0]
        ports = normalize(v.value)
        if key in ("sports", "dports"):
            field = key[:-1]
            return Decision.split(pkts, field, ports, v.invert, field)
        # --ports: sport or dport.  Decide on the side that is known exactly.
        for first, other in (("dport", "sport"), ("sport", "dport")):
            if single(getattr(pkts, first)) is not None:
                d = Decision.split(pkts, first, ports, False, first)
                if d.unmatched is None:
                    return Decision(None, pkts, d.reason) if v.invert else d
                rest = Decision.split(pkts, other, ports, False, other)
                if rest.unmatched is None or rest.matched is None:
                    hit = rest.unmatched is None
                    reason = f"{first} and {other} {'' if hit else 'not '}in {fmt_set(ports)}"
                    return Decision(None if hit == v.invert else pkts, pkts if hit == v.invert else None,
                                    reason)
                if v.invert:
                    return Decision(rest.unmatched, rest.matched, rest.reason, rest.no, rest.yes)
                return rest
        return Decision.fork(pkts, f"ports {fmt_set(ports)}", f"source or destination port in {fmt_set(ports)}",
                             f"neither port in {fmt_set(ports)}")
