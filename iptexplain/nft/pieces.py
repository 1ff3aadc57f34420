"""A rule as the tracer walks it: whole, or one *piece* per element of the map it looks up.

A rule whose verdict or NAT target comes from a map (``ip daddr . meta l4proto . th dport vmap
@service-ips``) is walked as one piece per element, in element order (:mod:`iptexplain.nft.model`).
kube-proxy's ``service-ips`` map has an element per service port: 10,000 pieces, of which a
trace of one flow looks at one -- the tracer's index of a big chain
(:class:`iptexplain.netfilter.facts.ChainIndex`) picks the piece by the packet's destination
and port.  A :class:`LazyPiece` is such a piece made from its element's words only: its
``raw_keys`` (what the index needs) come from the key's words, and its matches and verdict are
made, exactly as an eager piece's, the first time they are looked at.  The deferred reader
(:mod:`iptexplain.nft.deferred`) makes them; :meth:`iptexplain.graph.Ruleset.parse_all` makes
every one (``parsed`` / ``parse()``), with the error an eager read would raise.
"""

from __future__ import annotations

from dataclasses import dataclass
from socket import inet_aton
from typing import Any, Callable

from iptexplain.core.errors import OptionError
from iptexplain.core.packets import subtract
from iptexplain.graph import EMPTY_HEADER, Rule
from iptexplain.nft.expr import Lookup, ParsedRule
from iptexplain.nft.expr import verdict as V
from iptexplain.nft.expr.base import Action, Cursor, Relational, Statement, words_text
from iptexplain.nft.expr.numgen import Numgen
from iptexplain.nft.model import NftChain, NftRule, NftTable, new_rule

LAZY_MIN = 64  # maps with fewer elements are made into pieces at once


def _action(statements: list[Statement]) -> Action | None:
    if not statements:
        return None
    verdict = next((s for s in statements if isinstance(s, (V.Verdict, V.Reject))), None)
    unknown = next((s for s in statements if not s.understood), None)
    # the name a report of what is not understood gives (`ip dscp set`, `xt target CT`)
    name = unknown.text.split(" set ")[0] + (" set" if " set " in unknown.text else "") if unknown is not None \
        else (verdict or statements[-1]).text.split()[0]
    return Action(statements=tuple(statements), verdict_stmt=verdict, spelled=name)


def _rule(parsed_matches: list[Any], statements: list[Statement], table: NftTable, c: NftChain, text: str,
          line: int, number: int, source: str, handle: int | None, comment: str, piece: str = "",
          exprs: tuple = ()) -> NftRule:
    return new_rule(table.name, c.name, tuple(parsed_matches), _action(statements), text=text,
                    line=line, number=number, source=source, handle=handle, comment=comment,
                    exprs=exprs, piece=piece)


def written(parsed: ParsedRule, table: NftTable, c: NftChain, text: str, line: int, number: int,
            source: str, handle: int | None) -> NftRule:
    """The rule as written, for views that list rules (a map-driven rule is walked in pieces)."""
    return _rule([m for m in parsed.matches], list(parsed.statements), table, c, text, line, number, source,
                 handle, parsed.comment, exprs=tuple(parsed.order))


@dataclass(slots=True)
class _Rule:
    """What every piece of one map-driven rule shares."""

    parsed: ParsedRule
    table: NftTable
    chain: NftChain
    text: str
    line: int
    number: int
    source: str
    handle: int | None
    # raise the error an eager read would have raised for a piece (FILE:LINE, or the JSON's form)
    fail: Callable[[OptionError, int], Exception] | None = None
    # whether the key alone says what raw_keys() answers (no other match requires an address or
    # a port exactly)
    keys_from_key: bool = False


def _piece(r: _Rule, key: tuple, data: tuple, sels: tuple) -> tuple[NftRule, Any]:
    """One element's piece (``sels``: the key's selectors, a fresh numgen per piece), and the
    value of its key's first field."""
    lk = r.parsed.lookup
    vals = [s.parse(list(k)) for s, k in zip(sels, key)]
    key_text = " . ".join(" ".join(k) for k in key)
    rel = Relational(text=f"{' . '.join(s.text for s in sels)} {key_text}", selectors=sels, op="==",
                     values=vals[0] if len(sels) == 1 else [tuple(vals)], spelled=sels[0].text)
    data_text = words_text(list(data))
    if lk.nat is not None:
        stmt: Statement = lk.nat.with_target(_nat_target(data), f"{lk.nat.text} {data_text}")
    else:
        cur = Cursor(list(data))
        stmt = V.parse(cur)
        if not cur.at_end():
            raise OptionError(f"vmap element `{key_text} : {data_text}': one verdict expected")
    stmts: list[Statement] = []
    matches: list[Any] = []
    for o in r.parsed.order:
        if o is lk:
            matches.append(rel)
            stmts.append(stmt)
        elif isinstance(o, Statement):
            stmts.append(o)
        else:
            matches.append(o)
    return _rule(matches, stmts, r.table, r.chain, r.text, r.line, r.number, r.source, r.handle, r.parsed.comment,
                 piece=f"{key_text} : {data_text}", exprs=tuple(r.parsed.order)), vals[0]


def pieces(parsed: ParsedRule, table: NftTable, c: NftChain, text: str, line: int, number: int,
           source: str, handle: int | None, lazy: Callable[[OptionError, int], Exception] | None = None
           ) -> list[NftRule]:
    """The rule walked whole, or one piece per element of its map.  ``lazy``: pieces of a big
    named map are :class:`LazyPiece`\\ s, made when looked at; ``lazy`` makes the exception a
    bad element raises then."""
    lk = parsed.lookup
    if lk is None:
        return [_rule(parsed.matches, parsed.statements, table, c, text, line, number, source, handle,
                      parsed.comment, exprs=tuple(parsed.order))]
    elements = lk.elements
    if elements is None:
        ref = lk.set_ref
        if lk.nat is None and not ref.is_vmap:
            raise OptionError(f"@{ref.name} is not a verdict map")
        elements = ref.elements
    r = _Rule(parsed, table, c, text, line, number, source, handle, lazy)
    sels0 = lk.selectors
    if lazy is not None and len(elements) >= LAZY_MIN and not isinstance(sels0[0], Numgen):
        r.keys_from_key = not any(_requires(m) for m in parsed.matches)
        return [LazyPiece(r, key, data) for key, data in elements]
    out: list[NftRule] = []
    pool = None
    for key, data in elements:
        sels = sels0
        if isinstance(sels[0], Numgen):
            ng = sels[0]
            fresh = Numgen(ng.text, ng.mod, ng.offset, ng.random)
            if pool is not None:
                fresh.pool = pool
            sels = (fresh,) + sels[1:]
        piece, first = _piece(r, key, data, sels)
        if isinstance(sels[0], Numgen):
            pool = subtract(sels[0].pool, first)
        out.append(piece)
    if not out:
        # an empty map: the lookup never finds the key, the rule never matches
        rel = Relational(text=lk.text, selectors=lk.selectors, op="==", values=(), spelled=lk.selectors[0].text)
        out.append(_rule(parsed.matches + [rel], [], table, c, text, line, number, source, handle,
                         parsed.comment, piece="(empty map)", exprs=tuple(parsed.order)))
    return out


def _requires(m: Any) -> bool:
    """Whether match ``m`` may give NftRule.raw_keys an exact destination or port."""
    sels = getattr(m, "selectors", ())
    if not sels or getattr(m, "op", "") != "==" or getattr(m, "set_ref", None) is not None:
        return False
    return any(getattr(s, "index_field", None) is not None for s in sels)


def _nat_target(data: tuple[Any, ...]) -> str:
    """A NAT map's data as a target: ``10.0.0.1 . 8080`` -> ``10.0.0.1:8080``."""
    parts = [str(w) for w in data if w != "."]
    if len(parts) == 2:
        addr, port = parts
        return (f"[{addr}]" if ":" in addr else addr) + f":{port}"
    return parts[0] if parts else ""


_MATCHES = Rule.__dict__["matches"]
_TARGET = Rule.__dict__["target"]
_GOTO = Rule.__dict__["goto"]
_VERDICT_CHAIN = NftRule.__dict__["verdict_chain"]
_PIECE = NftRule.__dict__["piece"]


class LazyPiece(NftRule):
    """One element's piece of a big map-driven rule, made from the element's words when its
    matches, verdict or text are first looked at (see the module's docstring)."""

    __slots__ = ("_of",)

    def __init__(self, r: _Rule, key: tuple, data: tuple) -> None:
        # Not NftRule.__init__: 10,000 of these are made per kube-proxy map, most never read.
        self._of: tuple | None = (r, key, data)
        self.table = r.table.name
        self.chain = r.chain.name
        self.header = EMPTY_HEADER
        self.counters = None
        self.line = r.line
        self.number = r.number
        self.source = r.source
        self.handle = r.handle
        self.text = r.text
        self.comment = r.parsed.comment
        self.exprs = tuple(r.parsed.order)

    @property
    def parsed(self) -> bool:
        return self._of is None

    def parse(self) -> None:
        """Make the piece now (a no-op once made); raise what an eager read raises."""
        of = self._of
        if of is None:
            return
        r, key, data = of
        try:
            made, _first = _piece(r, key, data, r.parsed.lookup.selectors)
        except OptionError as e:
            if r.fail is None:
                raise
            raise r.fail(e, r.line) from None
        j = made.verdict_chain
        if j is not None and j not in r.table.chains:
            e = OptionError(f"rule jumps to chain {j}, which table {r.table.name} does not have")
            if r.fail is None:
                raise e
            raise r.fail(e, r.line) from None
        _MATCHES.__set__(self, made.matches)
        _TARGET.__set__(self, made.target)
        _GOTO.__set__(self, made.goto)
        _VERDICT_CHAIN.__set__(self, made.verdict_chain)
        _PIECE.__set__(self, made.piece)
        self._of = None

    def _get(slot):  # noqa: N805 -- builds the properties below
        def get(self):  # noqa: ANN001, ANN202
            if self._of is not None:
                self.parse()
            return slot.__get__(self, NftRule)

        def put(self, value) -> None:  # noqa: ANN001
            if self._of is not None:
                self.parse()
            slot.__set__(self, value)

        return property(get, put)

    matches = _get(_MATCHES)
    target = _get(_TARGET)
    goto = _get(_GOTO)
    verdict_chain = _get(_VERDICT_CHAIN)
    piece = _get(_PIECE)
    del _get

    def raw_keys(self, bits: int = 32) -> tuple[int | None, int | None]:
        """From the element's key words while unread (an IPv4 address, a port number);
        otherwise as any rule (the piece is made)."""
        of = self._of
        if of is not None and of[0].keys_from_key:
            r, key, _data = of
            dst = dport = None
            for s, k in zip(r.parsed.lookup.selectors, key):
                field = getattr(s, "index_field", None)
                if field is None:
                    continue
                if len(k) != 1:
                    break
                w = k[0]
                if field == "dport" and w.isdigit() and len(w) <= 5:
                    dport = int(w)
                elif field == "dst" and s.bits == bits == 32 and w.count(".") == 3 and w.replace(".", "").isdigit():
                    try:
                        dst = int.from_bytes(inet_aton(w), "big")
                    except OSError:
                        break
                else:
                    break
            else:
                return dst, dport
        return NftRule.raw_keys(self, bits)


__all__ = ["LAZY_MIN", "LazyPiece", "pieces", "written"]
