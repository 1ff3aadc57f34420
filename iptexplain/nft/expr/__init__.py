"""The nft expression modules, registered in one place, and the reading of one rule's words.

Each module (payload, meta, ct, fib, numgen, rate, log, verdict, nat, xt) names the first words
it reads (``KEYWORDS``) and has ``parse(cursor)``, which returns a selector (what a relation
compares), a match, or a statement.  :func:`parse_rule` reads a rule left to right: a selector
with its operator and values becomes a :class:`~.base.Relational`; ``vmap`` and NAT ``map``
lookups become a :class:`Lookup` that the reader turns into one rule piece per element.  Words
no module claims are kept verbatim (:class:`~.base.Opaque`) up to the next word a module claims.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any, Sequence

from iptexplain.errors import OptionError
from iptexplain.nft.expr import ct, fib, log, meta, nat, numgen, payload, rate, verdict, xt
from iptexplain.nft.expr.payload import tcp_flags
from iptexplain.nft.expr.base import (Braces, Cursor, NftMatch, Opaque, Relational, Selector,
                                      Statement, Word, number, word_text, words_text)

MODULES: tuple[ModuleType, ...] = (payload, meta, ct, fib, numgen, rate, log, verdict, nat, xt)

REGISTRY: dict[str, ModuleType] = {}
for _m in MODULES:
    for _k in _m.KEYWORDS:
        REGISTRY.setdefault(_k, _m)

OPS = {"==": "==", "eq": "==", "!=": "!=", "ne": "!=", "<": "<", "lt": "<", ">": ">", "gt": ">",
       "<=": "<=", "le": "<=", ">=": ">=", "ge": ">="}
MASK_OPS = ("&", "and")
# What an element may carry besides its key and data (nft prints them between the two).
ELEMENT_OPTIONS = ("comment", "timeout", "expires", "counter", "packets", "bytes")


@dataclass(slots=True)
class Lookup:
    """A map lookup that decides the rule's verdict or NAT target: ``KEY vmap { k : v, … }`` /
    ``dnat to KEY map { k : v, … }`` (``elements`` inline, or ``set_ref`` a named map).  Each
    element is (key words per selector, data words)."""

    selectors: tuple[Selector, ...]
    elements: list[tuple[tuple[tuple[str, ...], ...], tuple[Any, ...]]] | None
    set_ref: Any
    text: str
    nat: Any = None  # the NAT statement whose target the map gives


@dataclass(slots=True)
class ParsedRule:
    """A rule's words read: matches, statements in order, the lookup (if any) and comment."""

    matches: list[NftMatch]
    statements: list[Statement]
    lookup: Lookup | None
    comment: str
    order: list[Any]  # everything in written order


def _split_element(words: Sequence[Word], n: int) -> tuple[tuple[tuple[str, ...], ...], tuple[Any, ...]]:
    """``10.0.0.1 . 80 : goto svc`` -> (((10.0.0.1,), (80,)), (goto, svc)); extra words of an
    element (``timeout 1h``, ``counter packets …``, ``comment "…"``) are left out."""
    key: list[list[str]] = [[]]
    data: list[Any] = []
    in_data = False
    ws = list(words)
    i = 0
    while i < len(ws):
        w = ws[i]
        i += 1
        if isinstance(w, str) and w in ELEMENT_OPTIONS and (not in_data or data):
            # `comment "ns2/svc2:p80"`, `timeout 1h`, `expires 59m`, `counter packets 0 bytes 0`
            if w in ("comment", "timeout", "expires", "packets", "bytes"):
                i += 1
            continue
        if in_data:
            data.append(w)
        elif w == ":":
            in_data = True
        elif w == "." and n > 1:
            key.append([])
        else:
            key[-1].append(w if isinstance(w, str) else word_text(w))
    return tuple(tuple(k) for k in key), tuple(data)


def split_elements(braces: Braces, n: int) -> list[tuple[tuple[tuple[str, ...], ...], tuple[Any, ...]]]:
    return [_split_element(e, n) for e in braces.elements]


def _selector_chain(cur: Cursor, first: Selector) -> tuple[Selector, ...]:
    sels = [first]
    while cur.peek() == ".":
        cur.pos += 1
        sels.append(_selector(cur))
    return tuple(sels)


def _selector(cur: Cursor) -> Selector:
    w = cur.peek()
    mod = REGISTRY.get(w) if isinstance(w, str) else None
    if mod is None:
        raise OptionError(f"`{w}' cannot be part of a concatenation")
    s = mod.parse(cur)
    if not isinstance(s, Selector):
        raise OptionError(f"`{words_text([w])}' is not a key")
    return s


def _set_ref(cur: Cursor, word: str) -> Any:
    name = word[1:]
    table = cur.table
    sets = getattr(table, "sets", None)
    if sets is None or name not in sets:
        raise OptionError(f"set @{name} is not defined in this table")
    return sets[name]


def _relation(cur: Cursor, first: Selector, start: int) -> Relational | Lookup:
    sels = _selector_chain(cur, first)
    if cur.peek() in MASK_OPS and len(sels) == 1:
        cur.pos += 1
        mask_words = [cur.take_word("a mask")]
        if mask_words[0] == "(":
            mask_words = []
            while cur.peek() != ")":
                mask_words.append(cur.take_word("`)'"))
            cur.pos += 1
        mask_t = "".join(mask_words)
        sel = sels[0]
        if sel.text == "tcp flags":
            sels = (sel.masked(tcp_flags(mask_t)),)
        else:
            sels = (sel.masked(number(mask_t)),)
    op = "=="
    w = cur.peek()
    if isinstance(w, str) and w in OPS:
        op = OPS[w]
        cur.pos += 1
    if cur.peek() in ("vmap", "map"):
        kind = cur.take_word()
        target = cur.take(f"the {kind}'s elements")
        text = words_text(cur.words[start:cur.pos])
        if isinstance(target, Braces):
            return Lookup(sels, split_elements(target, len(sels)), None, text)
        if isinstance(target, str) and target.startswith("@"):
            return Lookup(sels, None, _set_ref(cur, target), text)
        raise OptionError(f"{kind}: elements or @map expected")
    rhs = cur.take("a value")
    n = len(sels)
    if isinstance(rhs, str) and rhs.startswith("@"):
        ref = _set_ref(cur, rhs)
        try:  # read the set's elements as this key's values now: a bad element is an input error
            vals = [tuple(s.parse(list(k)) for s, k in zip(sels, key)) for key, _ in ref.elements]
        except OptionError as e:
            raise OptionError(f"set @{ref.name} (line {ref.line}): {e}") from None
        values = sels[0].merge([v[0] for v in vals]) if n == 1 else vals
        return Relational(text=words_text(cur.words[start:cur.pos]), selectors=sels, op=op, set_ref=ref,
                          values=values, spelled=sels[0].text)
    if isinstance(rhs, Braces):
        elements = [k for k, _ in split_elements(rhs, n)]
    else:
        words = [rhs]
        # `established,related`, `1.2.3.4 . 80`, `tcp flags syn / syn,ack`
        while cur.peek() in (",", ".", "/") and cur.peek(1) is not None:
            words.append(cur.take())
            words.append(cur.take())
        elements = []
        if n > 1:
            elements = [_split_element(words, n)[0]]
        elif sels[0].text == "tcp flags":
            elements = [(tuple(word_text(w) for w in words),)]
        else:
            cur_el: list[str] = []
            for x in words:
                if x == ",":
                    elements.append((tuple(cur_el),))
                    cur_el = []
                else:
                    cur_el.append(word_text(x))
            elements.append((tuple(cur_el),))
    text = words_text(cur.words[start:cur.pos])
    if n == 1:
        sel = sels[0]
        vals = [sel.parse(list(k[0])) for k in elements]
        merged = sel.merge(vals)
        if op not in ("==", "!="):
            merged = sel.ordered(op, merged)
        return Relational(text=text, selectors=sels, op=op, values=merged, spelled=sel.text)
    vals2 = [tuple(s.parse(list(k[i])) for i, s in enumerate(sels)) for k in elements]
    return Relational(text=text, selectors=sels, op=op, values=vals2, spelled=" . ".join(s.text for s in sels))


def parse_rule(words: Sequence[Word], family: str, table: Any = None) -> ParsedRule:
    """Read one rule's words (see the module's docstring).  Raises OptionError."""
    cur = Cursor(words, family, table)
    matches: list[NftMatch] = []
    statements: list[Statement] = []
    order: list[Any] = []
    lookup: Lookup | None = None
    comment = ""
    while not cur.at_end():
        w = cur.peek()
        if w == "comment":
            cur.pos += 1
            comment = cur.take_word("a comment")
            continue
        mod = REGISTRY.get(w) if isinstance(w, str) else None
        start = cur.pos
        if mod is None:
            cur.pos += 1
            while not cur.at_end() and not (isinstance(cur.peek(), str) and cur.peek() in REGISTRY):
                cur.pos += 1
            op = Opaque(text=words_text(cur.words[start:cur.pos]), spelled=str(w))
            matches.append(op)
            order.append(op)
            continue
        obj = mod.parse(cur)
        if isinstance(obj, Selector) and cur.peek() == "set":
            # a header field rewritten (`ip dscp set cs1`, `tcp option maxseg size set rt mtu`):
            # kept as written, not modelled -- the trace goes on without it
            cur.pos += 1
            if cur.take("a value") == "rt" and cur.peek() == "mtu":
                cur.pos += 1
            while cur.peek() in ("&", "|", "^", "and", "or", "xor", ".", "map") and cur.peek(1) is not None:
                cur.pos += 1
                cur.take()
            obj = meta.UnknownStatement(words_text(cur.words[start:cur.pos]))
        if isinstance(obj, Selector):
            obj = _relation(cur, obj, start)
        if isinstance(obj, Lookup):
            if lookup is not None:
                raise OptionError("two map lookups in one rule")
            lookup = obj
            order.append(obj)
        elif isinstance(obj, NftMatch):
            matches.append(obj)
            order.append(obj)
        elif isinstance(obj, nat.Nat) and obj.to is None and obj.kind in ("dnat", "snat"):
            key_start = cur.pos
            first = _selector(cur)
            sels = _selector_chain(cur, first)
            cur.expect("map")
            target = cur.take("the map's elements")
            text = words_text(cur.words[start:cur.pos])
            if isinstance(target, Braces):
                lookup = Lookup(sels, split_elements(target, len(sels)), None, text, nat=obj)
            elif isinstance(target, str) and target.startswith("@"):
                lookup = Lookup(sels, None, _set_ref(cur, target), text, nat=obj)
            else:
                raise OptionError(f"map elements expected after `{words_text(cur.words[key_start:cur.pos])}'")
            order.append(lookup)
        else:
            statements.append(obj)
            order.append(obj)
    return ParsedRule(matches, statements, lookup, comment, order)


__all__ = ["Lookup", "MODULES", "ParsedRule", "REGISTRY", "parse_rule", "split_elements"]
