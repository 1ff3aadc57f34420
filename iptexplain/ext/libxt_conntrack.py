"""conntrack: the connection's state, status, tuples and direction (libxt_conntrack)."""

from __future__ import annotations

from iptexplain.addr import parse_address
from iptexplain.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, OptType, types
from iptexplain.ext.libxt_state import fmt_states, parse_states

CTSTATE_ORDER = ("INVALID", "NEW", "RELATED", "ESTABLISHED", "UNTRACKED", "SNAT", "DNAT")
CTSTATUS_ORDER = ("NONE", "EXPECTED", "SEEN_REPLY", "ASSURED", "CONFIRMED")

ctstates = OptType(
    "ctstates",
    lambda a: parse_states(a[0], CTSTATE_ORDER),
    lambda v: [fmt_states(v, CTSTATE_ORDER)],
)


def _status(text: str) -> frozenset[str]:
    out = set()
    for w in text.split(","):
        if w.upper() not in CTSTATUS_ORDER:
            raise OptionError(f"Bad ctstatus \"{w}\"")
        out.add(w.upper())
    return frozenset(out)


ctstatus = OptType("ctstatus", lambda a: _status(a[0]), lambda v: [",".join(s for s in CTSTATUS_ORDER if s in v)])
address = OptType("address", lambda a: parse_address(a[0]), lambda v: [str(v)])


def _ctproto(text: str) -> str:
    from iptexplain.parse.rulespec import canonical_proto

    p = canonical_proto(text)
    if p is None:
        raise OptionError("conntrack: --ctproto all is meaningless")
    return p


ctproto = OptType("ctproto", lambda a: _ctproto(a[0]), lambda v: [v])


@register
class Conntrack(Match):
    name = "conntrack"
    options = (
        Opt("ctstate", "--ctstate", ctstates),
        Opt("ctproto", "--ctproto", ctproto),
        Opt("ctorigsrc", "--ctorigsrc", address),
        Opt("ctorigdst", "--ctorigdst", address),
        Opt("ctreplsrc", "--ctreplsrc", address),
        Opt("ctrepldst", "--ctrepldst", address),
        Opt("ctorigsrcport", "--ctorigsrcport", types.portrange),
        Opt("ctorigdstport", "--ctorigdstport", types.portrange),
        Opt("ctreplsrcport", "--ctreplsrcport", types.portrange),
        Opt("ctrepldstport", "--ctrepldstport", types.portrange),
        Opt("ctstatus", "--ctstatus", ctstatus),
        Opt("ctexpire", "--ctexpire", types.uintrange),
        Opt("ctdir", "--ctdir", types.choice("ORIGINAL", "REPLY"), invert=False),
    )
