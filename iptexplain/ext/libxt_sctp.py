"""sctp: SCTP ports and chunk types (libxt_sctp)."""

from __future__ import annotations

from iptexplain.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, OptType, types

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
