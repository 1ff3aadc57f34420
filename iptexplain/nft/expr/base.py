"""The shape of nft expressions: selectors, relations over them, statements, and a rule's action.

An nft rule is a row of expressions the kernel evaluates left to right.  Here they take the two
faces the tracer knows from xtables extensions:

* a *match* (:class:`NftMatch`, a :class:`~iptexplain.ext.base.Match`) answers ``decide(pkts,
  ctx)``: the relation ``SELECTOR [op] VALUES`` (:class:`Relational`: ``tcp dport { 22, 80 }``,
  ``ip saddr . tcp dport @allowed``, ``ct state established``) and the stateful tests that break
  a rule when over a rate (``limit``, ``quota``, ``ct count``: forks);
* the *statements* (:class:`Statement`: counter, log, ``meta mark set``, NAT, ``notrack``, the
  verdict) answer ``apply(pkts, ctx)`` with an :class:`~iptexplain.core.context.Effect`,
  and a rule's statements together are its target, an :class:`Action`.

A *selector* (:class:`Selector`: ``ip saddr``, ``meta iifname``, ``ct mark``, ``fib daddr
type``) reads its values' words and decides which packets hold them; each lives in the module of
its keyword (payload, meta, ct, fib, numgen), registered in :mod:`iptexplain.nft.expr`.  What no
module understands is kept verbatim (:class:`Opaque`) and forks, as an unknown iptables module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Sequence

from iptexplain.core.context import ACCEPT, CONTINUE, Effect, MatchContext
from iptexplain.core.errors import OptionError
from iptexplain.core.packets import (EMPTY, Condition, Decision, IntSet, Packets, fmt_set, intersect,
                                     normalize, proto_text, single, span, subtract)
from iptexplain.ext.base import Match, Target
from iptexplain.numbers import strtoul


# ---------------------------------------------------------------------------------------------
# The words of a rule.


@dataclass(frozen=True, slots=True)
class Quoted:
    """A ``"quoted string"`` word (interface names, comments, log prefixes), without quotes."""

    text: str

    def __str__(self) -> str:
        return '"' + self.text.replace('"', '\\"') + '"'


@dataclass(frozen=True, slots=True)
class Braces:
    """``{ a, b . c, d : accept }``: an anonymous set or map, one word list per element."""

    elements: tuple[tuple[Any, ...], ...]

    def __str__(self) -> str:
        return "{ " + ", ".join(" ".join(str(w) for w in e) for e in self.elements) + " }"


Word = Any  # str | Quoted | Braces | "," (a comma outside braces)


def word_text(w: Word) -> str:
    return w.text if isinstance(w, Quoted) else str(w)


def words_text(ws: Sequence[Word]) -> str:
    return " ".join(str(w) for w in ws).replace(" , ", ",")


class Cursor:
    """The words of one rule, read left to right by the expression modules."""

    __slots__ = ("words", "pos", "family", "table")

    def __init__(self, words: Sequence[Word], family: str = "inet", table: Any = None) -> None:
        self.words = list(words)
        self.pos = 0
        self.family = family  # the table's nft family: `ip saddr` in an inet table tests nfproto
        self.table = table  # the NftTable being read (named sets and maps)

    def peek(self, k: int = 0) -> Word | None:
        i = self.pos + k
        return self.words[i] if i < len(self.words) else None

    def at_end(self) -> bool:
        return self.pos >= len(self.words)

    def take(self, what: str = "a word") -> Word:
        if self.pos >= len(self.words):
            raise OptionError(f"{what} expected at the end of the rule")
        w = self.words[self.pos]
        self.pos += 1
        return w

    def take_word(self, what: str = "a word") -> str:
        w = self.take(what)
        if not isinstance(w, (str, Quoted)):
            raise OptionError(f"{what} expected, found `{w}'")
        return word_text(w)

    def take_if(self, *words: str) -> str | None:
        w = self.peek()
        if isinstance(w, str) and w in words:
            self.pos += 1
            return w
        return None

    def expect(self, word: str) -> None:
        w = self.take(f"`{word}'")
        if w != word:
            raise OptionError(f"`{word}' expected, found `{w}'")

    def value_words(self) -> list[Word]:
        """A relation's right-hand side: one word, a ``{ set }``, ``@name``, or a comma list
        (``established,related``)."""
        first = self.take("a value")
        out = [first]
        while self.peek() == "," and self.peek(1) is not None:
            self.pos += 1
            out.append(",")
            out.append(self.take())
        return out


# ---------------------------------------------------------------------------------------------
# Selectors.


class Selector:
    """What a relation compares: a packet field (``tcp dport``), a meta or conntrack key.

    ``parse(words)`` reads one element's value as written (``22``, ``1024-65535``,
    ``10.0.0.0/8``, ``"eth*"``, ``established``) into the selector's value type; ``merge``
    unites element values; ``decide`` splits the packets on a merged value."""

    text: str = ""
    understood: ClassVar[bool] = True
    uses_conntrack: ClassVar[bool] = False
    bits: int = 32

    def parse(self, words: Sequence[Word]) -> Any:
        raise NotImplementedError

    def merge(self, values: Sequence[Any]) -> Any:
        # one sort of every interval (a set of 10,000 ClusterIPs): not a union per value,
        # which copies the growing set each time
        return normalize([iv for v in values for iv in v])

    def ordered(self, op: str, value: Any) -> Any:
        """The values ``op value`` stands for (``< 1024``: 0-1023)."""
        if op in ("==", "!="):
            return value
        if not value:
            raise OptionError(f"{self.text}: `{op}' needs one value")
        lo, hi = value[0][0], value[-1][1]
        top = (1 << self.bits) - 1
        return {"<": span(0, lo - 1), "<=": span(0, hi), ">": span(hi + 1, top),
                ">=": span(lo, top)}[op]

    def decide(self, pkts: Packets, ctx: MatchContext, value: Any, invert: bool) -> Decision:
        raise NotImplementedError

    def applies(self, pkts: Packets) -> Decision:
        """The packets the key exists for (its protocol and family dependencies)."""
        return Decision.all(pkts, "")

    def show(self, value: Any) -> str:
        return fmt_set(value)

    def masked(self, mask: int) -> "Selector":
        raise OptionError(f"{self.text}: a mask (`&') is not supported here")


def int_words(words: Sequence[Word], one: Callable[[str], int], bits: int) -> IntSet:
    """``22``, ``1024-65535`` or a name, through ``one``; a prefix is the selector's to read."""
    text = "".join(word_text(w) for w in words)
    if "-" in text[1:]:
        lo_t, _, hi_t = text.partition("-") if not text.startswith("-") else ("", "", text)
        lo, hi = one(lo_t), one(hi_t)
        return span(lo, hi)
    v = one(text)
    if v < 0 or v >= 1 << bits:
        raise OptionError(f"`{text}' out of range")
    return ((v, v),)


def number(text: str) -> int:
    """A number as nft's scanner reads it (``strtoull(…, 0)``): decimal, ``0x`` hex, leading-``0``
    octal, ASCII digits only (not ``1_000`` or ``٣``, which Python's ``int`` would take)."""
    return strtoul(text, "number")


@dataclass
class FieldSelector(Selector):
    """A selector on an integer field of the packet box (``tcp dport`` -> ``dport``), with the
    protocol the kernel checks first (``tcp dport`` matches only TCP: nft adds ``meta l4proto
    tcp``) and the IP family it needs (``ip saddr`` in an inet table)."""

    text: str = ""
    field: str = ""
    bits: int = 32
    parser: Callable[[str], int] = number
    shower: Callable[[IntSet], str] = fmt_set
    proto: IntSet | None = None  # L4 protocol dependency
    family: int | None = None  # 4 or 6: the nfproto dependency

    def parse(self, words: Sequence[Word]) -> Any:
        return int_words(words, self.parser, self.bits)

    def deps(self, pkts: Packets) -> list[Callable[[Packets], Decision]]:
        tests: list[Callable[[Packets], Decision]] = []
        if self.family is not None:
            fam = self.family
            tests.append(lambda p: Decision.all(p, "") if p.family == fam else
                         Decision.none(p, f"not an IPv{fam} packet ({self.text})"))
        if self.proto is not None:
            proto = self.proto
            tests.append(lambda p: Decision.split(p, "proto", proto, False, "l4proto", show=_proto_show))
        return tests

    @property
    def index_field(self) -> str | None:
        """``dport`` when the selector reads the packet's destination port (NftRule.raw_keys)."""
        return "dport" if self.field == "dport" else None

    def applies(self, pkts: Packets) -> Decision:
        return Decision.conjunction(pkts, self.deps(pkts))

    def decide(self, pkts: Packets, ctx: MatchContext, value: Any, invert: bool) -> Decision:
        tests = self.deps(pkts)
        tests.append(lambda p: Decision.split(p, self.field, value, invert, self.text, show=self.shower))
        return Decision.conjunction(pkts, tests)

    def show(self, value: Any) -> str:
        return self.shower(value)


def _proto_show(s: IntSet) -> str:
    return proto_text(s)


class ForkSelector(Selector):
    """A key the ruleset cannot know for a described flow (``meta skuid``, ``ct expiration``,
    ``meta cpu``): every value forks, labelled with the relation."""

    def __init__(self, text: str, understood: bool = True) -> None:
        self.text = text
        self._understood = understood

    def parse(self, words: Sequence[Word]) -> Any:
        return (words_text(words),)

    def merge(self, values: Sequence[Any]) -> Any:
        return tuple(x for v in values for x in v)

    def ordered(self, op: str, value: Any) -> Any:
        return tuple(f"{op} {v}" for v in value)

    def decide(self, pkts: Packets, ctx: MatchContext, value: Any, invert: bool) -> Decision:
        shown = self.show(value)
        yes = f"{self.text} {'!= ' if invert else ''}{shown}"
        return Decision.fork(pkts, yes, yes, f"not {yes}")

    def show(self, value: Any) -> str:
        return value[0] if len(value) == 1 else "{ " + ", ".join(value) + " }"


# ---------------------------------------------------------------------------------------------
# Expressions.


@dataclass(frozen=True, eq=False)
class NftMatch(Match):
    """An nft expression in the match position of a rule (see the module's docstring)."""

    name: ClassVar[str] = "nft"
    uses_conntrack: ClassVar[bool] = False
    text: str = ""

    def nft_text(self) -> str:
        return self.text

    def save(self) -> list[str]:
        return self.text.split()

    def save_args(self) -> list[str]:
        return self.text.split()

    def describe(self) -> str:
        return self.text

    def decide(self, pkts: Packets, ctx: MatchContext) -> Decision:
        raise NotImplementedError


@dataclass(frozen=True, eq=False)
class Relational(NftMatch):
    """``SELECTOR [. SELECTOR …] [op] VALUES``: values written inline or in a named set.

    ``values``: for one selector the merged value; for a concatenation one tuple of values per
    element -- written inline, or the elements of the table's set ``set_ref`` (``@name``), read
    with the rule.  A set the host fills at run time has no values to read: it forks."""

    selectors: tuple[Selector, ...] = ()
    op: str = "=="
    values: Any = None
    set_ref: Any = None  # an NftSet
    table: Any = None

    @property
    def uses_ct(self) -> bool:
        return any(s.uses_conntrack for s in self.selectors)

    @property
    def understood(self) -> bool:  # type: ignore[override]
        return all(s.understood for s in self.selectors)

    def _values(self) -> tuple[Any, str | None]:
        """(values, why not decidable) -- a named set may be filled at run time."""
        if self.set_ref is None:
            return self.values, None
        s = self.set_ref
        if s.dynamic and not s.elements:
            return None, f"set @{s.name} is filled at run time"
        return self.values, None  # the set's elements, read with the rule

    def decide(self, pkts: Packets, ctx: MatchContext) -> Decision:
        invert = self.op == "!="
        vals, why = self._values()
        if why is not None:
            # The packets the key can be read from (an IPv4 address of an IPv4 packet, a TCP
            # port of a TCP segment) fork on the set; the others do not match.
            tests = [lambda p, s=s: s.applies(p) for s in self.selectors]
            tests.append(lambda p: Decision.fork(p, f"{self.text} ({why})", f"{self.text}", f"not {self.text}"))
            return Decision.conjunction(pkts, tests)
        if len(self.selectors) == 1:
            return self.selectors[0].decide(pkts, ctx, vals, invert)
        return decide_concat(pkts, ctx, self.selectors, vals, invert, self.text)


def decide_concat(pkts: Packets, ctx: MatchContext, selectors: Sequence[Selector], elements: Sequence[tuple],
                  invert: bool, text: str) -> Decision:
    """Membership of a concatenation (``ip daddr . tcp dport { 10.0.0.1 . 80, … }``).

    Each element is a box; a set of packets inside one element's box, or outside every box, is
    decided exactly.  Packets spread over several elements (a flow with open fields) fork on the
    relation: a box of fields cannot hold their union."""
    hits: list[Decision] = []
    rest = pkts
    for el in elements:
        tests = [lambda p, s=s, v=v: s.decide(p, ctx, v, False) for s, v in zip(selectors, el)]
        d = Decision.conjunction(rest, tests)
        if d.matched is not None:
            hits.append(d)
            if d.unmatched is None and not d.undecidable:
                break
    if not hits:
        return Decision.none(pkts, f"{text}: no element holds the packet") if not invert else \
            Decision.all(pkts, f"{text}: no element holds the packet")
    exact = len(hits) == 1 and not hits[0].undecidable
    if exact and hits[0].unmatched is None:
        return Decision.all(pkts, f"{text}") if not invert else Decision.none(pkts, f"{text}")
    return Decision.fork(pkts, text, f"{text}" if not invert else f"not {text}",
                         f"not {text}" if not invert else text)


@dataclass(frozen=True, eq=False)
class Opaque(NftMatch):
    """Words no expression module understands: kept verbatim; the rule forks on them."""

    understood: ClassVar[bool] = False

    @property
    def opaque_name(self) -> str:
        return self.text.split()[0] if self.text else "?"

    def decide(self, pkts: Packets, ctx: MatchContext) -> Decision:
        return Decision.fork(pkts, f"`{self.text}' not understood", f"`{self.text}' matches",
                             f"`{self.text}' does not match")


@dataclass(frozen=True, eq=False)
class Fork(NftMatch):
    """A stateful test that breaks the rule by chance or by history (limit, quota, ct count,
    meter, numgen): the rule goes on on one branch and stops on the other."""

    yes: str = ""
    no: str = ""
    probability: float | None = None
    conntrack: bool = False

    @property
    def uses_ct(self) -> bool:
        return self.conntrack

    def decide(self, pkts: Packets, ctx: MatchContext) -> Decision:
        if self.probability is not None and self.probability >= 1.0:
            return Decision.all(pkts, self.text)
        return Decision.fork(pkts, self.text, self.yes or self.text, self.no or f"not {self.text}",
                             self.probability)


# ---------------------------------------------------------------------------------------------
# Statements and the rule's action.

BREAK = "BREAK"  # NFT_BREAK: the rule stops here, the chain goes on with the next rule


class Statement:
    """One statement of a rule (counter, log, mark set, NAT, verdict…)."""

    understood: ClassVar[bool] = True
    uses_conntrack: ClassVar[bool] = False
    text: str = ""

    def apply(self, pkts: Packets, ctx: MatchContext) -> Effect:
        return Effect(CONTINUE)

    def changes(self) -> bool:
        """Whether the statement may change the packet or the verdict (a counter does not)."""
        return True


@dataclass(frozen=True, eq=False)
class Action(Target):
    """A rule's statements in order, as its one target.

    ``apply`` runs them on the matched packets and joins their effects: the packets flow from one
    statement to the next, rewrites add up, the first verdict ends the rule (a NAT statement's
    is ACCEPT, as the kernel's), and a BREAK (a NAT for the other family in an inet table) stops
    it with no verdict.  ``verdict_stmt`` is the closing verdict when there is one (``jump``/
    ``goto`` included: the rule's ``jump``)."""

    name: ClassVar[str] = "nft"
    statements: tuple[Statement, ...] = ()
    verdict_stmt: Any = None

    @property
    def understood(self) -> bool:  # type: ignore[override]
        return all(s.understood for s in self.statements)

    @property
    def uses_ct(self) -> bool:
        return any(s.uses_conntrack for s in self.statements)

    @property
    def terminal(self) -> bool:  # type: ignore[override]
        return self.verdict_stmt is not None

    def nft_text(self) -> str:
        return " ".join(s.text for s in self.statements)

    def save(self) -> list[str]:
        return self.nft_text().split()

    def save_args(self) -> list[str]:
        return self.save()

    def describe(self) -> str:
        return self.nft_text()

    @property
    def spelled_name(self) -> str:
        v = self.verdict_stmt
        return v.text.split()[0] if v is not None else (self.statements[-1].text.split()[0] if self.statements else "")

    def apply(self, pkts: Packets, ctx: MatchContext) -> Effect:
        out = Effect(CONTINUE)
        cur = pkts
        changed = False
        notes: list[str] = []
        for s in self.statements:
            if s is self.verdict_stmt and getattr(s, "chain", None):
                break  # jump/goto: the tracer follows it
            e = s.apply(cur, ctx)
            if e.pkts is not None:
                cur = e.pkts
                changed = True
            out.rewrites += e.rewrites
            if e.nat is not None:
                out.nat = e.nat
            out.notrack |= e.notrack
            out.ct_changes.update(e.ct_changes)
            if e.note:
                notes.append(e.note)
            if e.verdict == BREAK:
                notes.append(f"`{s.text}' does not apply here: the rule stops")
                break
            if e.verdict != CONTINUE:
                out.verdict = e.verdict
                out.reply, out.queue = e.reply, e.queue
                break
        out.pkts = cur if changed else None
        # A log line or a set update says something only while the rule goes on: a verdict's
        # own note (MASQUERADE's address) is what its outcome shows.
        out.note = "; ".join(notes) if out.verdict == CONTINUE or out.nat is not None else ""
        return out


def effect_accept() -> Effect:
    return Effect(ACCEPT)


def intervals_text(s: IntSet) -> str:
    return fmt_set(s, limit=6)


__all__ = [
    "Action", "BREAK", "Braces", "Condition", "Cursor", "Decision", "FieldSelector", "Fork",
    "ForkSelector", "NftMatch", "Opaque", "Quoted", "Relational", "Selector", "Statement",
    "decide_concat", "int_words", "intersect", "normalize", "number", "single", "subtract",
    "word_text", "words_text",
]
