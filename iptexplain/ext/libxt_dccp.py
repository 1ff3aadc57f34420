"""dccp: DCCP ports, packet types and options (libxt_dccp)."""

from __future__ import annotations

from iptexplain.core.errors import OptionError
from iptexplain.core.packets import Decision
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, OptType, parse_uint, types
from iptexplain.ext.libxt_tcp import listing_ports, port_tests, read_listing_ports

DCCP_TYPES = ("REQUEST", "RESPONSE", "DATA", "ACK", "DATAACK", "CLOSEREQ", "CLOSE", "RESET", "SYNC",
              "SYNCACK", "INVALID")
INVALID = 10
INVALID_OTHER = 0xF800  # INVALID also covers the type numbers 11-15


def parse_dccp_types(text: str) -> int:
    mask = 0
    for tok in text.split(","):
        if not tok:
            continue
        names = [t.lower() for t in DCCP_TYPES]
        if tok.lower() not in names:
            raise OptionError(f"Unknown DCCP type `{tok}'")
        mask |= 1 << names.index(tok.lower())
    if mask & (1 << INVALID):
        mask |= INVALID_OTHER
    return mask


def fmt_dccp_types(mask: int) -> str:
    out = []
    for i in range(16):
        if mask & (1 << i):
            out.append(DCCP_TYPES[i] if i < len(DCCP_TYPES) else str(i))
            if i == INVALID:
                break
    return ",".join(out)


def _option(text: str) -> int:
    v = parse_uint(text, 8)
    if v < 1:
        raise OptionError("dccp: --dccp-option must be 1-255")
    return v


dccptypes = OptType("dccptypes", lambda a: parse_dccp_types(a[0]), lambda v: [fmt_dccp_types(v)])


@register
class Dccp(Match):
    name = "dccp"
    options = (
        Opt("sport", "--sport", types.portrange, aliases=("--source-port",)),
        Opt("dport", "--dport", types.portrange, aliases=("--destination-port",)),
        Opt("types", "--dccp-types", dccptypes),
        Opt("option", "--dccp-option", OptType("option", lambda a: _option(a[0]), lambda v: [str(v)])),
    )

    def decide(self, pkts, ctx):
        """DCCP ports; the packet types and options are not described: a fork."""
        tests = port_tests(self)
        for key in ("types", "option"):
            v = self.get(key)
            if v is not None:
                label = f"dccp {key} {'! ' if v.invert else ''}{v.value}"
                tests.append(lambda p, label=label: Decision.fork(p, label, label, f"not {label}"))
        return Decision.conjunction(pkts, tests)

    # -- the -L face (dccp_print: " dccp spt:N dpt:N", then types and option) ------------------
    # Ports are read back; packet types and options are printed from the save words.
    listing_keywords = ("dccp",)

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        out = ["dccp"]
        for key, word in (("sport", "spt"), ("dport", "dpt")):
            v = self.get(key)
            if v is not None:
                out.append(listing_ports(word, v.value, v.invert, numeric, "dccp"))
        return " ".join(out)

    @classmethod
    def from_listing(cls, tail) -> "Dccp":
        tail.expect("dccp")
        opts: list = []
        try:
            read_listing_ports(tail, opts)
        except ValueError:
            raise OptionError("bad dccp port range") from None
        return cls.build(opts, spelled="dccp")  # type: ignore[return-value]
