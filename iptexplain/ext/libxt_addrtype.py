"""addrtype: the routing type of the source or destination address (libxt_addrtype).

``--dst-type LOCAL`` asks "is this one of the host's own addresses?" -- the tracer answers it
from the host model, which is why Docker's nat PREROUTING rule needs one.
"""

from __future__ import annotations

from iptexplain.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, OptType, types

ADDR_TYPES = ("UNSPEC", "UNICAST", "LOCAL", "BROADCAST", "ANYCAST", "MULTICAST", "BLACKHOLE",
              "UNREACHABLE", "PROHIBIT", "THROW", "NAT", "XRESOLVE")


def _types(text: str) -> frozenset[str]:
    out = set()
    for w in text.split(","):
        if w.upper() not in ADDR_TYPES:
            raise OptionError(f"addrtype: invalid address type \"{w}\"")
        out.add(w.upper())
    return frozenset(out)


addrtypes = OptType("addrtypes", lambda a: _types(a[0]), lambda v: [",".join(t for t in ADDR_TYPES if t in v)])


@register
class AddrType(Match):
    name = "addrtype"
    options = (
        Opt("src_type", "--src-type", addrtypes),
        Opt("dst_type", "--dst-type", addrtypes),
        Opt("limit_iface_in", "--limit-iface-in", types.flag, invert=False),
        Opt("limit_iface_out", "--limit-iface-out", types.flag, invert=False),
    )

    def check(self) -> None:
        if self.has("limit_iface_in") and self.has("limit_iface_out"):
            raise OptionError("addrtype: you can't specify both --limit-iface-in and --limit-iface-out")

    # -- the -L face (addrtype_print_v1) -------------------------------------------------------
    listing_keywords = ("ADDRTYPE",)

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        out = ["ADDRTYPE match"]
        for key, word in (("src_type", "src-type"), ("dst_type", "dst-type")):
            v = self.get(key)
            if v is not None:
                out.append(f"{word} {'!' if v.invert else ''}{addrtypes.fmt(v.value)[0]}")
        if self.has("limit_iface_in"):
            out.append("limit-in")
        if self.has("limit_iface_out"):
            out.append("limit-out")
        return " ".join(out)

    @classmethod
    def from_listing(cls, tail) -> "AddrType":
        tail.expect("ADDRTYPE", "match")
        opts: list = []
        for word, flag in (("src-type", "--src-type"), ("dst-type", "--dst-type")):
            if tail.take_if(word):
                value = tail.take()
                inv = value.startswith("!")
                opts.append((flag, inv, [value.lstrip("!")]))
        if tail.take_if("limit-in"):
            opts.append(("--limit-iface-in", False, []))
        if tail.take_if("limit-out"):
            opts.append(("--limit-iface-out", False, []))
        return cls.build(opts, spelled="addrtype")  # type: ignore[return-value]
