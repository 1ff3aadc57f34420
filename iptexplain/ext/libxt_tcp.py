"""tcp: source/destination ports, TCP flags and options (libxt_tcp)."""

from __future__ import annotations

from iptexplain.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, OptType, types

TCP_FLAGS = (("FIN", 0x01), ("SYN", 0x02), ("RST", 0x04), ("PSH", 0x08), ("ACK", 0x10), ("URG", 0x20))
_FLAG_BITS = dict(TCP_FLAGS) | {"ALL": 0x3F, "NONE": 0}


def parse_flags(text: str) -> int:
    bits = 0
    for name in text.split(","):
        if name.upper() not in _FLAG_BITS:
            raise OptionError(f"Unknown TCP flag `{name}'")
        bits |= _FLAG_BITS[name.upper()]
    return bits


def fmt_flags(bits: int) -> str:
    names = [n for n, b in TCP_FLAGS if bits & b]
    return ",".join(names) if names else "NONE"


tcpflags = OptType(
    "tcpflags",
    lambda args: (parse_flags(args[0]), parse_flags(args[1])),
    lambda v: [fmt_flags(v[0]), fmt_flags(v[1])],
    nargs=2,
)
SYN_FLAGS = (0x17, 0x02)  # --syn == --tcp-flags FIN,SYN,RST,ACK SYN


@register
class Tcp(Match):
    name = "tcp"
    options = (
        Opt("sport", "--sport", types.portrange, aliases=("--source-port",)),
        Opt("dport", "--dport", types.portrange, aliases=("--destination-port",)),
        Opt("option", "--tcp-option", types.uint8),
        Opt("flags", "--tcp-flags", tcpflags),
        Opt("syn", "--syn", types.flag),
    )

    def check(self) -> None:
        if self.has("syn") and self.has("flags"):
            raise OptionError("tcp: --syn and --tcp-flags cannot be combined")

    @property
    def tcp_flags(self) -> tuple[tuple[int, int], bool] | None:
        """(mask, compare) and inversion; ``--syn`` is the flags test it abbreviates."""
        v = self.get("flags") or self.get("syn")
        if v is None:
            return None
        return (v.value if self.has("flags") else SYN_FLAGS), v.invert

    def save_args(self) -> list[str]:
        out = []
        for key, flag in (("sport", "--sport"), ("dport", "--dport"), ("option", "--tcp-option")):
            v = self.get(key)
            if v is not None:
                out += (["!"] if v.invert else []) + [flag] + (
                    types.portrange.fmt(v.value) if key != "option" else [str(v.value)]
                )
        tf = self.tcp_flags
        if tf is not None:
            (mask, cmp), inv = tf
            out += (["!"] if inv else []) + ["--tcp-flags", fmt_flags(mask), fmt_flags(cmp)]
        return out
