"""``fib``: the routing table's answer about the packet's addresses.

``fib daddr type local`` (is the destination one of the host's addresses), ``fib daddr . iif type
…``, and the reverse-path test ``fib saddr [. iif] [. mark] oif missing|exists`` that firewalld's
rpfilter uses.  The answers come from the host model's routes, as routing does in the trace.
"""

from __future__ import annotations

from typing import Sequence

from iptexplain.errors import OptionError
from iptexplain.netfilter.context import MatchContext
from iptexplain.netfilter.packets import EMPTY, Decision, Packets, subtract, union
from iptexplain.nft.expr.base import Cursor, ForkSelector, Selector, Word, word_text

KEYWORDS = ("fib",)

ADDR_TYPES = ("unspec", "unicast", "local", "broadcast", "anycast", "multicast", "blackhole",
              "unreachable", "prohibit")


class FibType(Selector):
    """``fib daddr type local``: the address type of ``daddr``/``saddr``; with ``. iif`` a
    local address counts only on the in-interface."""

    def __init__(self, text: str, field: str, iif: bool) -> None:
        self.text, self.field, self.iif = text, field, iif

    def parse(self, words: Sequence[Word]) -> tuple[str, ...]:
        t = "".join(word_text(w) for w in words)
        if t not in ADDR_TYPES:
            raise OptionError(f"fib: unknown address type `{t}'")
        return (t,)

    def merge(self, values):
        return tuple(x for v in values for x in v)

    def show(self, value) -> str:
        return ",".join(value)

    def decide(self, pkts: Packets, ctx: MatchContext, value, invert: bool) -> Decision:
        if ctx.router is None:
            return Decision.fork(pkts, self.text, f"{self.text} {self.show(value)}", f"not {self.show(value)}")
        dev = pkts.iniface if self.iif else None
        accept = EMPTY
        for kind, part in ctx.router.addr_types(getattr(pkts, self.field), dev).items():
            if kind.lower() in value:
                accept = union(accept, part)
        want = self.show(value)
        return Decision.split(pkts, self.field, accept, invert, f"{self.text} {want}",
                              show=lambda s: want if s is accept else pkts.addr_text(self.field))


class FibOif(Selector):
    """``fib saddr . iif oif missing``: is there a route back to the source (through the
    in-interface, with ``. iif``: the strict reverse-path test)."""

    def __init__(self, text: str, field: str, iif: bool) -> None:
        self.text, self.field, self.iif = text, field, iif

    def parse(self, words: Sequence[Word]) -> tuple[str, ...]:
        t = "".join(word_text(w) for w in words)
        if t not in ("missing", "exists"):
            return (t,)
        return (t,)

    def merge(self, values):
        return tuple(x for v in values for x in v)

    def show(self, value) -> str:
        return ",".join(value)

    def decide(self, pkts: Packets, ctx: MatchContext, value, invert: bool) -> Decision:
        if ctx.router is None or not set(value) <= {"missing", "exists"}:
            return Decision.fork(pkts, self.text, f"{self.text} {self.show(value)}", f"not {self.show(value)}")
        exists = EMPTY
        for part, res in ctx.router.split(getattr(pkts, self.field)):
            ok = res.type in ("unicast", "local") and (not self.iif or res.dev == pkts.iniface or res.local)
            if ok:
                exists = union(exists, part)
        want_exists = "exists" in value
        if want_exists:
            accept = exists
        else:
            full = ((0, (1 << pkts.bits) - 1),)
            accept = subtract(full, exists)
        text = f"{self.text} {self.show(value)}"
        return Decision.split(pkts, self.field, accept, invert, text,
                              show=lambda s: ("a route back" if want_exists else "no route back") if s is accept
                              else pkts.addr_text(self.field))


def parse(cur: Cursor) -> Selector:
    start = cur.pos
    cur.expect("fib")
    field = None
    iif = False
    while True:
        w = cur.take_word("a fib key")
        if w in ("saddr", "daddr"):
            field = "src" if w == "saddr" else "dst"
        elif w in ("iif", "oif"):
            iif = iif or w == "iif"
        elif w != "mark":
            cur.pos -= 1
            break
        if cur.peek() == ".":
            cur.pos += 1
            continue
        break
    result = cur.take_word("a fib result")
    text = " ".join(str(x) for x in cur.words[start:cur.pos])
    if field is None:
        raise OptionError("fib: saddr or daddr expected")
    if result == "type":
        return FibType(text, field, iif)
    if result == "oif":
        return FibOif(text, field, iif)
    return ForkSelector(text)
