"""sctp: SCTP ports and chunk types (libxt_sctp)."""

from __future__ import annotations

from iptexplain.core.errors import OptionError
from iptexplain.core.packets import Decision
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, OptType, types
from iptexplain.ext.libxt_tcp import listing_ports, port_tests, read_listing_ports

CHUNK_TYPES = ("DATA", "INIT", "INIT_ACK", "SACK", "HEARTBEAT", "HEARTBEAT_ACK", "ABORT",
               "SHUTDOWN", "SHUTDOWN_ACK", "ERROR", "COOKIE_ECHO", "COOKIE_ACK", "ECN_ECNE",
               "ECN_CWR", "SHUTDOWN_COMPLETE", "I_DATA", "RE_CONFIG", "I_FORWARD_TSN", "ASCONF",
               "ASCONF_ACK", "FORWARD_TSN")


def _chunks(args: list[str]) -> tuple[str, tuple[str, ...]]:
    mode, spec = args
    if mode.lower() not in ("all", "any", "only"):
        raise OptionError(f"sctp: --chunk-types must be all, any or only, not `{mode}'")
    names = []
    for item in spec.split(","):
        base = item.split(":")[0].upper()
        if base not in CHUNK_TYPES and base not in ("ALL", "NONE"):
            raise OptionError(f"sctp: unknown chunk type `{item}'")
        names.append(item.upper() if ":" not in item else base + ":" + item.split(":", 1)[1])
    return mode.lower(), tuple(names)


chunktypes = OptType("chunktypes", _chunks, lambda v: [v[0], ",".join(v[1])], nargs=2)


@register
class Sctp(Match):
    name = "sctp"
    options = (
        Opt("sport", "--sport", types.portrange, aliases=("--source-port",)),
        Opt("dport", "--dport", types.portrange, aliases=("--destination-port",)),
        Opt("chunk_types", "--chunk-types", chunktypes),
    )

    def decide(self, pkts, ctx):
        """SCTP ports; the chunk types of the packet are not described: a fork."""
        tests = port_tests(self)
        v = self.get("chunk_types")
        if v is not None:
            mode, names = v.value
            label = f"chunk types {mode} {','.join(names)}"
            tests.append(lambda p: Decision.fork(p, label, label, f"not {label}"))
        return Decision.conjunction(pkts, tests)

    # -- the -L face (sctp_print: " sctp spt:N dpt:N [!] any|all|only CHUNKS") -----------------
    listing_keywords = ("sctp",)

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        out = ["sctp"]
        for key, word in (("sport", "spt"), ("dport", "dpt")):
            v = self.get(key)
            if v is not None:
                out.append(listing_ports(word, v.value, v.invert, numeric, "sctp"))
        v = self.get("chunk_types")
        if v is not None:
            args = self.option_map()["--chunk-types"].type.fmt(v.value)
            out += (["!"] if v.invert else []) + args
        return " ".join(out)

    @classmethod
    def from_listing(cls, tail) -> "Sctp":
        tail.expect("sctp")
        opts: list = []
        try:
            read_listing_ports(tail, opts)
        except ValueError:
            raise OptionError("bad sctp port range") from None
        start = tail.pos
        inv = tail.invert()
        if tail.peek() in ("any", "all", "only"):
            opts.append(("--chunk-types", inv, [tail.take(), tail.take()]))
        else:
            tail.pos = start
        return cls.build(opts, spelled="sctp")  # type: ignore[return-value]
