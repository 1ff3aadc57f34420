"""What a match or target may ask about the place a packet is at, and what a target answers.

``decide(pkts, ctx)`` on a match and ``apply(pkts, ctx)`` on a target receive a
:class:`MatchContext`: the hook and table being traversed, the host's routing (``addrtype``,
MASQUERADE's address), ipset contents, and the packet's connection.  A target answers with an
:class:`Effect`: its verdict and the packets after its rewrites.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from iptexplain.core.packets import IntSet, Packets

# Verdicts a target can give (netfilter's words; CONTINUE is XT_CONTINUE).
CONTINUE = "CONTINUE"
ACCEPT = "ACCEPT"
DROP = "DROP"
REJECT = "REJECT"
QUEUE = "QUEUE"
RETURN = "RETURN"
UNKNOWN = "UNKNOWN"  # a target whose effect the tracer does not know


@dataclass(slots=True)
class Connection:
    """The conntrack entry of the flow, as far as the tracer knows it.

    ``orig_*`` is the original-direction tuple as conntrack saw it first (before any NAT);
    ``nat`` holds the manipulations set up so far ("DNAT", "SNAT") with the rewritten sets,
    so that later packets of the connection get them without the nat table.
    """

    orig_src: IntSet = ()
    orig_dst: IntSet = ()
    orig_sport: IntSet = ()
    orig_dport: IntSet = ()
    proto: IntSet = ()
    nat: dict[str, dict[str, IntSet]] = field(default_factory=dict)  # "DNAT" -> {"dst": …, "dport": …}
    status: frozenset = frozenset()  # EXPECTED, SEEN_REPLY, ASSURED, CONFIRMED
    direction: str = "ORIGINAL"
    helper: str | None = None
    tracked: bool = True

    def copy(self) -> "Connection":
        return Connection(self.orig_src, self.orig_dst, self.orig_sport, self.orig_dport,
                          self.proto, {k: dict(v) for k, v in self.nat.items()}, self.status,
                          self.direction, self.helper, self.tracked)

    def reply_binding(self, kind: str) -> dict[str, IntSet]:
        """What conntrack rewrites on a reply packet at a ``kind`` hook: at the destination
        NAT hooks it undoes the SNAT (back to the original source), at the source NAT hooks
        it undoes the DNAT (back to the original destination)."""
        if kind == "DNAT":
            s = self.nat.get("SNAT", {})
            out = {}
            if "src" in s:
                out["dst"] = self.orig_src
            if "sport" in s:
                out["dport"] = self.orig_sport
            return out
        d = self.nat.get("DNAT", {})
        out = {}
        if "dst" in d:
            out["src"] = self.orig_dst
        if "dport" in d:
            out["sport"] = self.orig_dport
        return out

    def reply_tuple(self) -> dict[str, IntSet]:
        """The reply direction: the original tuple swapped, with the NAT applied."""
        d = self.nat.get("DNAT", {})
        s = self.nat.get("SNAT", {})
        return {
            "src": d.get("dst", self.orig_dst), "sport": d.get("dport", self.orig_dport),
            "dst": s.get("src", self.orig_src), "dport": s.get("sport", self.orig_sport),
        }


@dataclass(slots=True)
class MatchContext:
    """Where the packets are: hook, table, chain, and the host around them."""

    family: int
    hook: str = ""
    table: str = ""
    chain: str = ""
    router: Any = None  # netfilter.routing.Router over the host model
    ipsets: Any = None  # {name: IpSet} from an `ipset save` dump, or None when not given
    conn: Connection = field(default_factory=Connection)
    rule: Any = None  # the rule being evaluated (for labels)


@dataclass(slots=True)
class Effect:
    """What a target does: its verdict and the packets after its rewrites.

    ``rewrites`` are (field, before, after) texts for the trace; ``nat`` names the connection's
    NAT binding set up here ("DNAT"/"SNAT" with the new sets) so later packets keep it.
    """

    verdict: str
    pkts: Packets | None = None  # None: unchanged
    rewrites: list[tuple[str, str, str]] = field(default_factory=list)
    nat: tuple[str, dict[str, IntSet]] | None = None
    reply: str | None = None  # REJECT's answer
    note: str = ""
    notrack: bool = False  # NOTRACK / CT --notrack: the packet will be untracked
    queue: str | None = None  # NFQUEUE: the queue (user space decides)
    ct_changes: dict[str, Any] = field(default_factory=dict)  # connmark, helper, …
