"""ipv6header: which IPv6 extension headers the packet carries (libip6t_ipv6header).

``--header`` lists header types; without ``--soft`` the packet must carry exactly those, with it
at least one of them.  iptables-save names them as /etc/protocols does.
"""

from __future__ import annotations

from iptexplain.core.errors import OptionError
from iptexplain.core.packets import Decision
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, OptType, parse_uint, types

# (protocol number, mask bit), in the order iptables prints them.
CHAIN_FLAGS = ((0, 128), (60, 64), (43, 32), (44, 16), (51, 8), (50, 4), (59, 2), (255, 1))
# Names read: /etc/protocols' and iptables' own.
NAMES = {"hop-by-hop": 0, "hop": 0, "hopopt": 0, "dst": 60, "ipv6-opts": 60, "route": 43,
         "ipv6-route": 43, "frag": 44, "ipv6-frag": 44, "auth": 51, "ah": 51, "esp": 50,
         "none": 59, "ipv6-nonxt": 59, "prot": 255, "protocol": 255, "raw": 255,
         "0": 0, "60": 60, "43": 43, "44": 44, "51": 51, "50": 50, "59": 59, "255": 255}
# Names printed (getprotobynumber first, then iptables' table; 0 is never looked up).
PRINT = {0: "hop-by-hop", 60: "ipv6-opts", 43: "ipv6-route", 44: "ipv6-frag", 51: "ah", 50: "esp",
         59: "ipv6-nonxt", 255: "protocol"}


def parse_headers(text: str) -> int:
    mask = 0
    for tok in text.split(","):
        if tok.lower() not in NAMES:
            raise OptionError(f"unknown header `{tok}' specified")
        proto = NAMES[tok.lower()]
        mask |= dict(CHAIN_FLAGS)[proto]
    return mask


def fmt_headers(mask: int) -> str:
    names = [PRINT[proto] for proto, bit in CHAIN_FLAGS if mask & bit]
    return ",".join(names) if names else "NONE"


headers = OptType("headers", lambda a: parse_headers(a[0]), lambda v: [fmt_headers(v)])


@register
class Ipv6Header(Match):
    name = "ipv6header"
    family = 6
    options = (
        Opt("header", "--header", headers),
        Opt("soft", "--soft", types.flag, invert=False),
    )

    def check(self) -> None:
        if not self.has("header"):
            raise OptionError("ipv6header: --header is required")

    def decide(self, pkts, ctx):
        """The extension headers of the packet are not described: a fork."""
        what = self.describe()
        return Decision.fork(pkts, what, f"{what}", f"not {what}")

    # -- the -L face (ipv6header_print: " ipv6header flags:[!]0xNN [soft]"; names without -n) --
    listing_keywords = ("ipv6header",)

    def listing(self, numeric: bool = True, *, family: int = 6, proto: str | None = None) -> str:
        v = self.get("header")
        out = ["ipv6header"]
        if v is not None and (v.value or v.invert):
            text = f"0x{v.value:02X}" if numeric else fmt_headers(v.value)
            out.append(f"flags:{'!' if v.invert else ''}{text}")
        if self.has("soft"):
            out.append("soft")
        return " ".join(out)

    @classmethod
    def from_listing(cls, tail) -> "Ipv6Header":
        tail.expect("ipv6header")
        opts: list = []
        w = tail.peek()
        if w is not None and w.startswith("flags:"):
            tail.pos += 1
            value = w[len("flags:"):]
            inv = value.startswith("!")
            value = value.lstrip("!")
            if value.lower().startswith("0x"):
                value = fmt_headers(parse_uint(value, 8))
            opts.append(("--header", inv, [value]))
        if tail.take_if("soft"):
            opts.append(("--soft", False, []))
        return cls.build(opts, spelled="ipv6header")  # type: ignore[return-value]
