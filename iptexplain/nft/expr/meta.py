"""Meta expressions: what the kernel knows about a packet besides its headers.

``meta l4proto``, ``meta nfproto``, ``iifname``/``oifname`` (names, ``"eth*"`` wildcards),
``iif``/``oif`` (devices, compared by index: by name here), ``mark``, ``pkttype``, and the
statement ``meta mark set …`` (with ``meta mark | 0x4000``, ``ct mark`` and masks) and ``meta
nftrace set 1``.  nft prints some keys without ``meta`` (``iifname "lo"``, ``mark 0x1``).
Keys the packet box does not hold (skuid, cpu, cgroup, time…) fork.
"""

from __future__ import annotations

from typing import Any, Sequence

from iptexplain.core.context import CONTINUE, Effect, MatchContext
from iptexplain.core.errors import OptionError
from iptexplain.core.packets import Decision, Packets, contains, intersect, masked_set, point, proto_text, union
from iptexplain.nft.expr.base import (Cursor, FieldSelector, ForkSelector, Selector, Statement, Word, int_words,
                                      number, word_text)
from iptexplain.nft.expr.payload import _proto_value

KEYWORDS = ("meta", "iifname", "oifname", "iif", "oif", "mark", "l4proto", "nfproto", "pkttype",
            "skuid", "skgid", "iiftype", "oiftype", "iifgroup", "oifgroup", "cgroup", "rtclassid",
            "nftrace", "priority", "length", "protocol", "cpu")

NFPROTO = {"ipv4": 4, "ipv6": 6}
PKTTYPES = ("host", "broadcast", "multicast", "other")


class IfnameSelector(Selector):
    """``iifname``/``oifname``/``iif``/``oif``: a set of names; ``"veth*"`` is a prefix."""

    def __init__(self, text: str, field: str) -> None:
        self.text, self.field = text, field

    def parse(self, words: Sequence[Word]) -> tuple[str, ...]:
        return ("".join(word_text(w) for w in words),)

    def merge(self, values: Sequence[Any]) -> tuple[str, ...]:
        return tuple(x for v in values for x in v)

    def show(self, value: tuple[str, ...]) -> str:
        q = [f'"{v}"' for v in value]
        return q[0] if len(q) == 1 else "{ " + ", ".join(q) + " }"

    def decide(self, pkts: Packets, ctx: MatchContext, value: tuple[str, ...], invert: bool) -> Decision:
        name = getattr(pkts, self.field)
        hit = name is not None and any(name.startswith(p[:-1]) if p.endswith("*") and not p.endswith("\\*")
                                       else name == p.replace("\\*", "*") for p in value)
        shown = name if name is not None else "(none)"
        if hit != invert:
            return Decision.all(pkts, f"{self.text} {shown}" + (f" (not {self.show(value)})" if invert else ""))
        return Decision.none(pkts, f"{self.text} {shown} " + (f"excluded (!= {self.show(value)})" if invert
                                                              else f"≠ {self.show(value)}"))


class MarkSelector(Selector):
    """``meta mark`` (or ``ct mark`` with ``field="connmark"``), optionally ``& MASK``: the
    mark is exact in the box, so the answer is too."""

    bits = 32

    def __init__(self, text: str, field: str, mask: int = 0xFFFFFFFF) -> None:
        self.text, self.field, self.mask = text, field, mask

    def parse(self, words: Sequence[Word]):
        return int_words(words, number, 32)

    def masked(self, mask: int) -> Selector:
        return MarkSelector(f"{self.text} & 0x{mask:x}", self.field, mask)

    def show(self, value) -> str:
        return ",".join(f"0x{lo:x}" if lo == hi else f"0x{lo:x}-0x{hi:x}" for lo, hi in value[:4])

    def decide(self, pkts: Packets, ctx: MatchContext, value, invert: bool) -> Decision:
        have = getattr(pkts, self.field) & self.mask
        hit = contains(value, have)
        what = f"{self.text} 0x{have:x}"
        if hit != invert:
            return Decision.all(pkts, what)
        return Decision.none(pkts, f"{what} {'∈' if invert else '∉'} {self.show(value)}")


class NfprotoSelector(Selector):
    text = "meta nfproto"

    def parse(self, words: Sequence[Word]):
        t = "".join(word_text(w) for w in words)
        if t not in NFPROTO:
            raise OptionError(f"meta nfproto: unknown family `{t}'")
        return point(NFPROTO[t])

    def decide(self, pkts: Packets, ctx: MatchContext, value, invert: bool) -> Decision:
        hit = contains(value, pkts.family)
        if hit != invert:
            return Decision.all(pkts, f"nfproto ipv{pkts.family}")
        return Decision.none(pkts, f"nfproto ipv{pkts.family}")


class PkttypeSelector(Selector):
    """``meta pkttype``: how the link layer addressed the packet -- multicast and broadcast
    destinations by their address, everything else ``host`` (sent to this host's MAC)."""

    text = "meta pkttype"

    def parse(self, words: Sequence[Word]):
        t = "".join(word_text(w) for w in words)
        if t not in PKTTYPES:
            raise OptionError(f"meta pkttype: unknown type `{t}'")
        return (t,)

    def merge(self, values):
        return tuple(x for v in values for x in v)

    def show(self, value) -> str:
        return ",".join(value)

    def decide(self, pkts: Packets, ctx: MatchContext, value, invert: bool) -> Decision:
        if ctx.router is None:
            return Decision.fork(pkts, f"pkttype {self.show(value)}", f"pkttype {self.show(value)}",
                                 f"pkttype not {self.show(value)}")
        types = ctx.router.addr_types(pkts.dst, None)
        kinds = {"MULTICAST": "multicast", "BROADCAST": "broadcast"}
        accept = ()
        for k, part in types.items():
            if kinds.get(k, "host") in value:
                accept = union(accept, part)
        return Decision.split(pkts, "dst", accept, invert, "pkttype " + self.show(value),
                              show=lambda s: self.show(value) if s is accept else "other")


SIMPLE = {
    "l4proto": lambda: FieldSelector("meta l4proto", "proto", 8, _proto_value, proto_text),
    "protocol": lambda: ForkSelector("meta protocol"),
    "length": lambda: FieldSelector("meta length", "length", 16),
}


def _selector(key: str) -> Selector:
    if key in ("iifname", "oifname", "iif", "oif"):
        return IfnameSelector(("meta " if key in ("iif", "oif") else "") + key,
                              "iniface" if key.startswith("i") else "outiface")
    if key == "mark":
        return MarkSelector("meta mark", "mark")
    if key == "nfproto":
        return NfprotoSelector()
    if key == "pkttype":
        return PkttypeSelector()
    if key in SIMPLE:
        return SIMPLE[key]()
    return ForkSelector(f"meta {key}")


class MarkSet(Statement):
    """``meta mark set EXPR`` / ``ct mark set EXPR``: EXPR is a value, ``meta mark``/``ct mark``,
    then ``& MASK``, ``| BITS``, ``^ BITS`` applied in order (nft prints them that way)."""

    def __init__(self, text: str, field: str, source: str | None, value: int, ops: list[tuple[str, int]]) -> None:
        self.text, self.field, self.source, self.value, self.ops = text, field, source, value, ops

    @property
    def uses_conntrack(self) -> bool:  # type: ignore[override]
        return self.field == "connmark" or self.source == "connmark"

    def apply(self, pkts: Packets, ctx: MatchContext) -> Effect:
        v = getattr(pkts, self.source) if self.source else self.value
        for op, x in self.ops:
            v = {"&": v & x, "|": v | x, "^": v ^ x}[op]
        v &= 0xFFFFFFFF
        old = getattr(pkts, self.field)
        name = "mark" if self.field == "mark" else "connmark"
        eff = Effect(CONTINUE, pkts.copy(**{self.field: v}), [(name, f"0x{old:x}", f"0x{v:x}")])
        if self.field == "connmark":
            eff.ct_changes["connmark"] = v
        return eff


def parse_set_value(cur: Cursor) -> tuple[str | None, int, list[tuple[str, int]]]:
    """The right side of ``… set``: (source field, constant, operations)."""
    source: str | None = None
    value = 0
    w = cur.take_word("a value")
    if w == "meta" and cur.peek() == "mark" or w == "mark":
        if w == "meta":
            cur.pos += 1
        source = "mark"
    elif w == "ct" and cur.peek() == "mark":
        cur.pos += 1
        source = "connmark"
    else:
        value = number(w)
    ops: list[tuple[str, int]] = []
    while cur.peek() in ("&", "|", "^", "and", "or", "xor"):
        op = {"and": "&", "or": "|", "xor": "^"}.get(cur.peek(), cur.peek())
        cur.pos += 1
        ops.append((op, number(cur.take_word("a number"))))
    return source, value, ops


class NoEffect(Statement):
    """A statement that changes nothing the trace follows (``meta nftrace set 1``)."""

    def __init__(self, text: str, note: str = "") -> None:
        self.text, self.note = text, note

    def apply(self, pkts: Packets, ctx: MatchContext) -> Effect:
        return Effect(CONTINUE, note=self.note)

    def changes(self) -> bool:
        return False


class UnknownStatement(Statement):
    """A ``set`` statement on a key the tracer does not follow (``meta priority set``): kept
    verbatim; the packet goes on, the change is not modelled."""

    understood = False

    def __init__(self, text: str) -> None:
        self.text = text

    def apply(self, pkts: Packets, ctx: MatchContext) -> Effect:
        return Effect(CONTINUE, note=f"`{self.text}' is not modelled: the trace goes on without it")


def parse(cur: Cursor) -> Any:
    """A meta selector, or a ``meta KEY set …`` statement."""
    start = cur.pos
    w = cur.take_word()
    key = cur.take_word("a meta key") if w == "meta" else w
    if cur.peek() == "set":
        cur.pos += 1
        vstart = cur.pos
        if key == "mark":
            source, value, ops = parse_set_value(cur)
            return MarkSet(" ".join(str(x) for x in cur.words[start:cur.pos]), "mark", source, value, ops)
        if key == "nftrace":
            cur.take()
            return NoEffect(" ".join(str(x) for x in cur.words[start:cur.pos]))
        cur.pos = vstart
        cur.take()
        while cur.peek() in ("&", "|", "^", "and", "or", "xor", "."):
            cur.pos += 1
            cur.take()
        return UnknownStatement(" ".join(str(x) for x in cur.words[start:cur.pos]))
    return _selector(key)


def masked(sel: Selector, mask_words: Sequence[Word]) -> Selector:
    return sel.masked(number("".join(word_text(w) for w in mask_words)))


__all__ = ["IfnameSelector", "MarkSelector", "MarkSet", "NoEffect", "UnknownStatement", "intersect",
           "masked_set", "parse"]
