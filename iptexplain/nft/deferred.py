"""Chains and big element lists kept as text until the trace reaches them: ``nft list ruleset``
of a kube-proxy node read for a trace.

A 10,000-service kube-proxy node in nftables mode lists 210,000 lines: 25,000 chains
(``service-…``, ``endpoint-…``, ``external-…``) and verdict maps of 10,000 elements
(``service-ips``).  A trace of one flow reads a dozen chains and looks one element up.  This
reader, like :mod:`iptexplain.parse.deferred` for iptables-save, only confirms the layout nft
itself prints, with regular expressions over the text and no Python work per line:

* ``table FAMILY NAME {`` at a line start, its blocks one tab in (``\\tchain NAME {`` …
  ``\\t}``), two tabs for what is inside;
* a chain whose body has no declaration (no ``type … hook …``, no ``comment``) is made at once
  from its header, its rule lines kept as text; its ``rules`` (and ``written``) are read by the
  grammar the first time they are asked for, with the line numbers and errors of an eager read
  (:func:`iptexplain.nft.reader.chain_rules`);
* everything else -- the table's attributes, base chains' declarations, sets, maps and
  stateful objects -- is read by the grammar at once, from a *skeleton* of the text in which
  the deferred parts are blank lines (so every line keeps its number);
* an ``elements = { … }`` list of a set or map is kept as text too, and read when its
  elements are first asked for: the usual shapes (``10.96.0.10 . tcp . 53 : goto service-…``,
  with ``comment "…"``) by splitting the text, anything else by the grammar; a rule that looks
  a big map up is walked in :class:`~iptexplain.nft.pieces.LazyPiece`\\ s, one per element,
  made when the tracer's index of the chain picks one by the packet's destination and port.

A rule read late gets the checks the eager reader makes (its words, its jump target), with the
same ``FILE:LINE`` errors, raised then; an error in a chain no question reaches is not reported
(the ruleset carries a note saying so).  ``iptexplain show`` reads the text eagerly, and
:meth:`~iptexplain.graph.Ruleset.parse_all` reads everything.

Anything the scan does not expect (CR line ends, line continuations, a rule line holding
``;``, blank lines inside a chain, a block not closed by ``\\t}``, a chain or table listed
twice, a skeleton the grammar refuses) makes it give up: the caller reads the text with the
eager reader, which reports or reads it exactly.
"""

from __future__ import annotations

import re
from dataclasses import fields
from functools import lru_cache
from typing import Any

from lark import Tree
from lark.exceptions import UnexpectedInput

from iptexplain.core.errors import InputError, OptionError
from iptexplain.graph import Chain, Ruleset
from iptexplain.nft.expr import _split_element
from iptexplain.nft.model import NftChain, NftSet, NftTable
from iptexplain.nft.pieces import LazyPiece
from iptexplain.nft.reader import (_lines, _syntax_message, _words, add_table, chain_head, chain_rules,
                                   check_jumps, finish, managed_tables, parser, read_nft, split_elements,
                                   table_head)
from iptexplain.parse.gc_pause import _no_gc

_RULES = Chain.__dict__["rules"]
_WRITTEN = NftChain.__dict__["written"]
_ELEMENTS = NftSet.__dict__["elements"]

# One line of a table's body, at one tab: a chain/set/map block's header, another block (a
# flowtable, a stateful object: read by the grammar), an attribute, a blank line, the table's end.
_ITEM = re.compile(r"(?P<block>\t(?P<kind>chain|set|map) (?P<name>[^\s{}();,\"#]+) \{(?: # handle (?P<handle>[0-9]+))?\n)"
                   r"|(?P<other>\t[a-z][^\n{}]*\{[^\n{}]*\n)"
                   r"|(?P<attr>\t(?:comment|flags) [^\n]*\n)"
                   r"|(?P<blank>[ \t]*\n)"
                   r"|(?P<end>\}\n)")
_TABLE = re.compile(r"table [^\n{}#]*\{(?: # handle [0-9]+)?\n")
_TOP = re.compile(r"[ \t]*(?:#[^\n]*)?\n")  # blank lines and comments (`# Warning: …') between tables
_DECL = re.compile(r"\t\t(?:type |policy |comment \")[^\n]*\n")
_DECL_LATER = re.compile(r"\n\t\t(?:type|policy|comment) ")
_BLANK = re.compile(r"\n[ \t]*\n")
_SHALLOW = re.compile(r"\n(?!\t\t)")
_COMMENT = re.compile(r'comment "[^"\n]*"')
DEFER_ELEMENTS = 2048  # element lists shorter than this (characters) are read at once


class GiveUp(Exception):
    """The text is not in the layout ``nft list ruleset`` prints: read it eagerly."""


class DeferredNftChain(NftChain):
    """An :class:`~iptexplain.nft.model.NftChain` whose rule lines are kept as text until
    ``rules`` or ``written`` is first asked for; ``size`` and ``may_use`` answer from the text."""

    __slots__ = ("_body", "_book", "_count")

    def __init__(self, name: str, table: str, line: int, handle: int | None, book: "NftBook",
                 body: tuple[int, int, int] | None) -> None:
        NftChain.__init__(self, name, table, False, line=line, handle=handle)
        self._book = book
        self._body = body  # (start, end, first line) of the rule lines in the book's text
        self._count = -1

    def _read(self) -> None:
        if self._body is not None:
            self._book.read_chain(self)

    @property
    def rules(self) -> list:  # type: ignore[override]
        self._read()
        return _RULES.__get__(self, Chain)

    @rules.setter
    def rules(self, value: list) -> None:
        _RULES.__set__(self, value)

    @property
    def written(self) -> list:  # type: ignore[override]
        self._read()
        return _WRITTEN.__get__(self, NftChain)

    @written.setter
    def written(self, value: list) -> None:
        _WRITTEN.__set__(self, value)

    @property
    def read(self) -> bool:
        return self._body is None

    @property
    def size(self) -> int:
        """Rules as walked once read (a map's pieces); before, the rule lines."""
        if self._body is None:
            return len(_RULES.__get__(self, Chain))
        return self.rule_lines

    @property
    def rule_lines(self) -> int:
        """The rules as written (``written``), without reading them."""
        if self._body is None:
            return len(_WRITTEN.__get__(self, NftChain))
        if self._count < 0:
            start, end, _first = self._body
            self._count = self._book.text.count("\n", start, end)
        return self._count

    def may_use(self, names: frozenset[str]) -> bool:
        """Whether a rule may use one of ``names`` (``ct``, ``dnat``: whether a rule may turn
        conntrack on) -- no when its text does not hold the word; read chains answer from
        their rules."""
        if self._body is None:
            return bool(_RULES.__get__(self, Chain))
        start, end, _first = self._body
        return start != end and _words_re(names).search(self._book.text, start, end) is not None


@lru_cache(maxsize=8)
def _words_re(names: frozenset[str]) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(re.escape(n) for n in sorted(names)) + r")\b")


class DeferredNftSet(NftSet):
    """A set or map whose ``elements = { … }`` text is read when its elements are first asked
    for (by the splitter for the usual shapes, the grammar otherwise)."""

    __slots__ = ("_pending", "_book")

    @property
    def elements(self) -> list:  # type: ignore[override]
        if self._pending is not None:
            self._book.read_elements(self)
        return _ELEMENTS.__get__(self, NftSet)

    @elements.setter
    def elements(self, value: list) -> None:
        _ELEMENTS.__set__(self, value)


class NftBook:
    """The text and what reading a deferred part needs: the tables, the source name, whether
    the text was written from ``nft -j`` JSON (lines are then 0, errors quote the rule)."""

    def __init__(self, rs: Ruleset, text: str, source: str, json: bool) -> None:
        self.rs = rs
        self.text = text
        self.source = source
        self.json = json
        self.tables: dict[str, NftTable] = {}

    def rule_count(self) -> int:
        """Rules as written (a map-driven rule is one), without reading a chain."""
        return sum(c.rule_lines if isinstance(c, DeferredNftChain) else len(c.written)
                   for t in self.rs.nft_tables for c in t.chains.values())

    def error(self, message: str, line: int | None) -> InputError:
        """``FILE:LINE: message``; for JSON input, the message with the rule as nft prints it
        and no line (as :func:`iptexplain.nft.json_reader.read_nft_json` reports)."""
        if not self.json:
            return InputError(message, self.source, line)
        at = ""
        if line:
            start = 0
            for _ in range(line - 1):
                start = self.text.find("\n", start) + 1
            at = self.text[start:self.text.find("\n", start)].strip()
        return InputError(message + (f" (in `{at}')" if at else ""), self.source, None)

    def fail(self, e: OptionError, line: int) -> InputError:
        return self.error(f"{e}", line)

    def _parse(self, wrapped: str, offset: int) -> Tree:
        try:
            return parser().parse(wrapped)
        except UnexpectedInput as e:
            line = getattr(e, "line", None)
            raise self.error(_syntax_message(e, wrapped), line + offset if line else None) from None

    def read_chain(self, chain: DeferredNftChain) -> None:
        """Read a chain's rule lines with the grammar and the eager reader's code."""
        start, end, first = chain._body  # type: ignore[misc]
        chain._body = None
        table = self.tables[chain.table]
        if start == end:
            return
        # The rule lines alone in a table and chain of their own: line 3 is the first.
        tree = self._parse("table t {\nchain c {\n" + self.text[start:end] + "\t}\n}\n", first - 3)
        try:
            chain_rules(_chain_of(tree), table, chain, self.source, first - 3, lazy=self.fail)
            check_jumps([r for r in _RULES.__get__(chain, Chain) if not isinstance(r, LazyPiece)], table,
                        self.source)
        except InputError as e:
            raise self.error(e.message, e.line) from None
        if self.json:
            for r in (*_RULES.__get__(chain, Chain), *_WRITTEN.__get__(chain, NftChain)):
                r.line = 0

    def read_elements(self, s: DeferredNftSet) -> None:
        start, end, first = s._pending  # type: ignore[misc]
        s._pending = None
        n = max(1, len(s.key_types))
        inner = self.text[start:end]
        split = _split_fast(inner)
        if split is not None:
            _ELEMENTS.__set__(s, [_split_element(words, n) for words in split])
            return
        tree = self._parse("table t {\nset s {\nelements = { " + inner + " }\n}\n}\n", first - 3)
        braces = next(w for ln in _lines(_set_of(tree)) for w in _words(ln.children) if hasattr(w, "elements"))
        _ELEMENTS.__set__(s, split_elements(braces, n))


def _chain_of(tree: Tree) -> Tree:
    return next(c for c in tree.children[0].children if isinstance(c, Tree) and c.data == "chain")


def _set_of(tree: Tree) -> Tree:
    return next(c for c in tree.children[0].children if isinstance(c, Tree) and c.data == "set")


def _split_fast(inner: str) -> list[list[str]] | None:
    """An element list's words, element by element, when the text has only the usual shapes:
    words, ``.``, ``:``, commas between elements and quoted comments (``comment "ns/svc:p"``);
    None for anything else (parentheses, nested braces, other strings, a line without its
    comma), which the grammar reads."""
    if any(c in inner for c in "{}();#\\"):
        return None
    if '"' in inner:
        inner, k = _COMMENT.subn("comment _", inner)
        if '"' in inner:
            return None
    parts = inner.split(",")
    if parts and not parts[-1].strip():
        parts.pop()  # a comma after the last element
    out = []
    for p in parts:
        words = p.split()
        if not words or "\n" in p.strip():
            return None
        out.append(words)
    return out


def read_nft_deferred(text: str, source: str = "<input>", json: bool = False) -> Ruleset:
    """Scan ``nft list ruleset`` text (see the module's docstring); raise :class:`GiveUp` when
    it is not in nft's own layout."""
    if not text.endswith("\n"):
        text += "\n"
    if "\r" in text or "\\\n" in text:
        raise GiveUp
    rs = Ruleset(source=source, format="nft")
    book = NftBook(rs, text, source, json)
    skeleton: list[str] = []
    tables: list[list[Any]] = []  # [(name, line, handle, body, decls?) per chain, sets to defer]
    pos = 0
    line = 1
    size = len(text)
    with _no_gc(freeze=True):
        while pos < size:
            m = _TOP.match(text, pos)
            if m is not None:
                skeleton.append(m.group())
                pos = m.end()
                line += 1
                continue
            m = _TABLE.match(text, pos)
            if m is None:
                raise GiveUp
            skeleton.append(m.group())
            pos = m.end()
            line += 1
            chains: list[tuple] = []
            sets: dict[str, tuple[int, int, int]] = {}
            tables.append([chains, sets])
            seen: set[str] = set()
            while True:
                m = _ITEM.match(text, pos)
                if m is None:
                    raise GiveUp
                kind = m.lastgroup
                if kind == "end":
                    skeleton.append("}\n")
                    pos = m.end()
                    line += 1
                    break
                if kind in ("attr", "blank"):
                    skeleton.append(m.group())
                    pos = m.end()
                    line += 1
                    continue
                head_end = m.end()
                close = text.find("\n\t}\n", head_end - 1)
                if close < 0:
                    raise GiveUp
                end = close + 1  # the block's `\t}` line starts here
                if _SHALLOW.search(text, head_end - 1, end - 1) is not None:
                    raise GiveUp  # a line inside the block at less than two tabs: another layout
                block_lines = text.count("\n", head_end, end)
                if kind == "other":
                    skeleton.append(text[pos:end + 3])
                elif m.group("kind") == "chain":
                    name = m.group("name")
                    if name in seen:
                        raise GiveUp
                    seen.add(name)
                    p = head_end
                    d = _DECL.match(text, p)
                    while d is not None:
                        p = d.end()
                        d = _DECL.match(text, p)
                    if p != end and (_DECL_LATER.search(text, p - 1, end) or _BLANK.search(text, p - 1, end)
                                     or text.find(";", p, end) >= 0):
                        raise GiveUp
                    first = line + 1 + text.count("\n", head_end, p)
                    handle = int(m.group("handle")) if m.group("handle") else None
                    if p == head_end:
                        skeleton.append("\n" * (block_lines + 2))
                    else:
                        skeleton.append(text[pos:p] + "\n" * text.count("\n", p, end) + "\t}\n")
                    chains.append((name, line, handle, (p, end, first), text[head_end:p]))
                else:  # a set or map: its big element list kept as text
                    i = text.find("\t\telements = { ", head_end, end)
                    j = text.find(" }\n", i, end) if i >= 0 else -1
                    inner_start = i + len("\t\telements = { ")
                    if j - inner_start >= DEFER_ELEMENTS and text.find("{", inner_start, j) < 0 \
                            and text.find("}", inner_start, j) < 0:
                        name = m.group("name")
                        sets[name] = (inner_start, j, line + 1 + text.count("\n", head_end, i))
                        skeleton.append(text[pos:inner_start] + "\n" * text.count("\n", inner_start, j)
                                        + text[j:end + 3])
                    else:
                        skeleton.append(text[pos:end + 3])
                line += block_lines + 2
                pos = end + 3
        try:
            tree = parser().parse("".join(skeleton))
        except UnexpectedInput:
            raise GiveUp from None
        table_trees = [t for t in tree.children if isinstance(t, Tree) and t.data == "table"]
        if len(table_trees) != len(tables):
            raise GiveUp
        managed = managed_tables(text)
        seen_tables: set[tuple[str, str]] = set()
        try:
            for t, (chains, sets) in zip(table_trees, tables):
                table = table_head(t, source, managed)
                for name, span in sets.items():
                    s = table.sets.get(name)
                    if s is None or s.elements:
                        raise GiveUp
                    lazy = DeferredNftSet(**{f.name: getattr(s, f.name) for f in fields(NftSet)})
                    lazy._pending = span
                    lazy._book = book
                    table.sets[name] = lazy
                heads = iter([c for c in t.children if isinstance(c, Tree) and c.data == "chain"])
                for name, cline, handle, body, decls in chains:
                    c = DeferredNftChain(name, table.name, cline, handle, book, body)
                    if decls:
                        chain_head(next(heads), table, source, c)
                        if c.hook is None and "\t\tpolicy " in decls:
                            raise GiveUp  # a policy line in a regular chain: the eager reader refuses it
                    table.chains[name] = c
                if next(heads, None) is not None:
                    raise GiveUp
                book.tables[table.name] = table
                add_table(rs, table, seen_tables, source)
        except InputError:
            raise GiveUp from None
        finish(rs, source, link=False)
    rs.deferred = book
    rs.note("lazy", "large input: rules were checked only in the chains this run looked at; "
                    "`iptexplain show` on the same input checks every line, as nft -c would")
    if json:
        rs.format = "nft-json"
        for table in rs.nft_tables:
            table.line = 0
            for c in table.chains.values():
                c.line = 0
            for s in table.sets.values():
                s.line = 0
        for n in rs.notes:
            n.line = None
    return rs


def read_nft_lazy(text: str, source: str = "<input>", lazy: bool = False) -> Ruleset:
    """:func:`read_nft_deferred` for a trace (``lazy``), the eager reader otherwise or when the
    text is not in nft's own layout."""
    if lazy:
        try:
            return read_nft_deferred(text, source)
        except GiveUp:
            pass
    return read_nft(text, source)


__all__ = ["DeferredNftChain", "DeferredNftSet", "GiveUp", "NftBook", "read_nft_deferred", "read_nft_lazy"]
