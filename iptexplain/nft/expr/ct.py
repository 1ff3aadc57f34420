"""Conntrack expressions: ``ct state``, ``ct status``, ``ct direction``, ``ct mark``, ``ct
original|reply saddr/daddr/proto-src/proto-dst``, ``ct helper``, ``ct count`` (a fork), and the
statements ``ct mark set …``, ``ct helper set …`` and ``notrack``.

Every ct expression needs a connection: loading one turns connection tracking on in the
namespace (nft_ct's init takes nf_ct_netns_get), as ``-m conntrack`` does for iptables.
"""

from __future__ import annotations

from typing import Any, Sequence

from iptexplain.core.addr import int_to_ip
from iptexplain.core.context import CONTINUE, Effect, MatchContext
from iptexplain.core.errors import OptionError
from iptexplain.core.packets import CT_STATES, Decision, Packets, fmt_set
from iptexplain.ext.base import parse_port
from iptexplain.nft.expr.base import Cursor, Fork, ForkSelector, Selector, Statement, Word, int_words, word_text
from iptexplain.nft.expr.meta import MarkSelector, MarkSet, UnknownStatement, parse_set_value
from iptexplain.nft.expr.payload import AddrSelector

KEYWORDS = ("ct", "notrack")

STATUS = ("expected", "seen-reply", "assured", "confirmed", "snat", "dnat", "dying")


class FlagSetSelector(Selector):
    """A ct key whose value is a set of flags (``ct state new,established``): several values
    of one rule are their union."""

    def merge(self, values: Sequence[Any]) -> frozenset:
        out: frozenset = frozenset()
        for v in values:
            out |= v
        return out


class StateSelector(FlagSetSelector):
    text = "ct state"
    uses_conntrack = True

    def parse(self, words: Sequence[Word]) -> frozenset:
        t = "".join(word_text(w) for w in words).upper()
        out = frozenset(x for x in t.split(",") if x)
        bad = out - set(CT_STATES)
        if bad:
            raise OptionError(f"ct state: unknown state `{sorted(bad)[0].lower()}'")
        return out

    def show(self, value) -> str:
        return ",".join(s.lower() for s in CT_STATES if s in value)

    def decide(self, pkts: Packets, ctx: MatchContext, value, invert: bool) -> Decision:
        return Decision.states(pkts, "ctstate", value, invert, "ct state")


class StatusSelector(FlagSetSelector):
    """``ct status dnat``: what the connection has become so far in the trace (its NAT bindings,
    whether it was confirmed and saw a reply)."""

    text = "ct status"
    uses_conntrack = True

    def parse(self, words: Sequence[Word]) -> frozenset:
        t = "".join(word_text(w) for w in words)
        out = frozenset(x for x in t.split(",") if x)
        bad = out - set(STATUS)
        if bad:
            raise OptionError(f"ct status: unknown status `{sorted(bad)[0]}'")
        return out

    def show(self, value) -> str:
        return ",".join(sorted(value))

    def decide(self, pkts: Packets, ctx: MatchContext, value, invert: bool) -> Decision:
        c = ctx.conn
        have: set[str] = set()
        if c.nat.get("DNAT"):
            have.add("dnat")
        if c.nat.get("SNAT"):
            have.add("snat")
        for s in c.status:
            have.add(s.lower().replace("_", "-"))
        established = "NEW" not in pkts.ctstate and pkts.ctstate & {"ESTABLISHED", "RELATED"}
        if established:
            have |= {"confirmed", "seen-reply"}
        if "UNTRACKED" in pkts.ctstate or not c.tracked:
            have = set()
        # A bitmask test: any of the listed bits set.
        hit = bool(have & value)
        unsure = "assured" in value and established and not hit
        if unsure:
            return Decision.fork(pkts, f"ct status {self.show(value)}", "the connection is assured",
                                 "the connection is not assured yet")
        shown = ",".join(sorted(have)) or "none"
        if hit != invert:
            return Decision.all(pkts, f"ct status {shown}")
        return Decision.none(pkts, f"ct status {shown} {'∋' if invert else '∌'} {self.show(value)}")


class DirectionSelector(Selector):
    text = "ct direction"
    uses_conntrack = True

    def parse(self, words: Sequence[Word]) -> tuple[str, ...]:
        t = "".join(word_text(w) for w in words)
        if t not in ("original", "reply"):
            raise OptionError(f"ct direction: `{t}'")
        return (t.upper(),)

    def merge(self, values):
        return tuple(x for v in values for x in v)

    def show(self, value) -> str:
        return ",".join(v.lower() for v in value)

    def decide(self, pkts: Packets, ctx: MatchContext, value, invert: bool) -> Decision:
        hit = ctx.conn.direction in value
        if hit != invert:
            return Decision.all(pkts, f"ct direction {ctx.conn.direction.lower()}")
        return Decision.none(pkts, f"ct direction {ctx.conn.direction.lower()}")


class TupleSelector(AddrSelector):
    """``ct original ip daddr`` (and ``ct original daddr``, ``ct reply saddr``, proto-dst…):
    the connection's tuple, which DNAT does not change in the original direction."""

    uses_conntrack = True

    def __init__(self, text: str, direction: str, key: str, family: int | None) -> None:
        fam = family or 4
        super().__init__(text, "src" if key == "saddr" else "dst", fam, False)
        self.direction, self.key, self.any_family = direction, key, family is None
        self.index_field = None  # the connection's tuple, not the packet's address

    def parse(self, words: Sequence[Word]):
        if self.key.startswith("proto-"):
            return int_words(words, parse_port, 16)
        t = "".join(word_text(w) for w in words)
        if self.any_family and ":" in t:
            self.family, self.bits = 6, 128
        return super().parse(words)

    def show(self, value) -> str:
        if self.key.startswith("proto-"):
            return fmt_set(value)
        return super().show(value)

    def decide(self, pkts: Packets, ctx: MatchContext, value, invert: bool) -> Decision:
        c = ctx.conn
        if not c.tracked or not c.orig_src:
            return Decision.none(pkts, f"{self.text}: no connection")
        if not self.key.startswith("proto-") and pkts.family != self.family:
            return Decision.none(pkts, f"not an IPv{self.family} connection ({self.text})")
        orig = {"saddr": c.orig_src, "daddr": c.orig_dst, "proto-src": c.orig_sport, "proto-dst": c.orig_dport}
        if self.direction == "original":
            have = orig[self.key]
        else:
            rt = c.reply_tuple()
            have = {"saddr": rt["src"], "daddr": rt["dst"], "proto-src": rt["sport"], "proto-dst": rt["dport"]}[self.key]
        return Decision.against(pkts, have, value, invert, self.text, self.show(value))


class CtCount(Fork):
    """``ct count [over] N``: how many connections the key has now -- the host's state."""


class NoTrack(Statement):
    """``notrack``: the packet gets no connection (raw priority chains, before conntrack)."""

    text = "notrack"
    uses_conntrack = False

    def apply(self, pkts: Packets, ctx: MatchContext) -> Effect:
        return Effect(CONTINUE, notrack=True)


class HelperSet(Statement):
    """``ct helper set "ftp"``: the connection gets the named helper object."""

    uses_conntrack = True

    def __init__(self, text: str, helper: str) -> None:
        self.text, self.helper = text, helper

    def apply(self, pkts: Packets, ctx: MatchContext) -> Effect:
        return Effect(CONTINUE, ct_changes={"helper": self.helper}, note=f"helper {self.helper}")


class HelperSelector(ForkSelector):
    uses_conntrack = True

    def __init__(self) -> None:
        super().__init__("ct helper")

    def decide(self, pkts: Packets, ctx: MatchContext, value, invert: bool) -> Decision:
        names = tuple(v.strip('"') for v in value)
        have = ctx.conn.helper
        hit = have is not None and have in names
        if hit != invert:
            return Decision.all(pkts, f"ct helper {have}")
        return Decision.none(pkts, f"ct helper {have or '(none)'}")


class CtFork(ForkSelector):
    uses_conntrack = True


def parse(cur: Cursor) -> Any:
    start = cur.pos
    w = cur.take_word()
    if w == "notrack":
        return NoTrack()
    key = cur.take_word("a ct key")
    if key in ("original", "reply"):
        direction = key
        fam = None
        nxt = cur.take_word("a tuple field")
        if nxt in ("ip", "ip6"):
            fam = 4 if nxt == "ip" else 6
            nxt = cur.take_word("a tuple field")
        if nxt not in ("saddr", "daddr", "proto-src", "proto-dst"):
            return CtFork(" ".join(str(x) for x in cur.words[start:cur.pos]))
        return TupleSelector(" ".join(str(x) for x in cur.words[start:cur.pos]), direction, nxt, fam)
    if cur.peek() == "set":
        cur.pos += 1
        if key == "mark":
            source, value, ops = parse_set_value(cur)
            return MarkSet(" ".join(str(x) for x in cur.words[start:cur.pos]), "connmark", source, value, ops)
        if key == "helper":
            name = cur.take_word("a helper name")
            return HelperSet(" ".join(str(x) for x in cur.words[start:cur.pos]), name)
        cur.take()
        return UnknownStatement(" ".join(str(x) for x in cur.words[start:cur.pos]))
    if key == "count":
        over = cur.take_if("over")
        n = cur.take_word("a count")
        text = " ".join(str(x) for x in cur.words[start:cur.pos])
        yes, no = (f"more than {n} connections", f"at most {n} connections") if over else \
            (f"at most {n} connections", f"more than {n} connections")
        return CtCount(text=text, yes=f"{yes} (the host's conntrack table)", no=no, conntrack=True,
                       spelled="ct count")
    if key == "state":
        return StateSelector()
    if key == "status":
        return StatusSelector()
    if key == "direction":
        return DirectionSelector()
    if key == "mark":
        s = MarkSelector("ct mark", "connmark")
        s.uses_conntrack = True  # type: ignore[misc]
        return s
    if key == "helper":
        return HelperSelector()
    return CtFork(f"ct {key}")


__all__ = ["int_to_ip", "parse"]
