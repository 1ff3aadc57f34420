"""Read ``nft list ruleset`` text into the rule graph (:mod:`iptexplain.nft.model`).

The grammar (``grammar.lark``, LALR) gives the blocks; this module builds tables, chains, sets
and maps from them and hands each rule's words to the expression modules
(:func:`iptexplain.nft.expr.parse_rule`).  Handles (``nft -a``) are kept; counter values
(absent with ``nft -s``) are not needed.  Bad input raises :class:`~iptexplain.core.errors.InputError`
at its line: ``FILE:LINE: what is wrong``.

A table that iptables-nft manages (``# Warning: table ip filter is managed by iptables-nft``)
is read like the others; its xtables extensions (``xt target CT``) are shown but not understood,
since nft does not print their options (see :mod:`iptexplain.nft.expr.xt`).
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from typing import Any, Callable, Iterator

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from iptexplain.core.errors import InputError, OptionError
from iptexplain.graph import Counters, Ruleset
from iptexplain.nft.expr import Lookup, parse_rule, split_elements
from iptexplain.nft.expr.base import Braces, Cursor, Quoted, words_text
from iptexplain.nft.pieces import LazyPiece, pieces, written
from iptexplain.nft.model import (FAMILIES, HOOKS, NftChain, NftRule, NftSet, NftTable, new_rule,
                                  priority_value)
from iptexplain.parse.detect import NFT_RE

MANAGED_RE = re.compile(r"^# Warning: table (\S+) (\S+) is managed by (\S+), do not touch!", re.M)


@lru_cache(maxsize=1)
def parser() -> Lark:
    """The grammar's LALR parser, built once per process; lark keeps the built tables in its
    cache file (keyed by the grammar's hash), so a later process loads them instead of
    building them (~80 ms)."""
    text = resources.files("iptexplain.nft").joinpath("grammar.lark").read_text()
    try:
        return Lark(text, parser="lalr", maybe_placeholders=False, cache=True)
    except OSError:  # no writable temporary directory: build it each time
        return Lark(text, parser="lalr", maybe_placeholders=False)


def looks_like_nft(text: str) -> bool:
    """Whether ``text`` is nft's ruleset text (a ``table FAMILY NAME {`` block)."""
    return NFT_RE.search(text[:200_000]) is not None


def read_nft(text: str, source: str = "<input>") -> Ruleset:
    """``nft list ruleset`` text -> a :class:`~iptexplain.graph.Ruleset` whose ``nft_tables``
    hold the tables (in the order printed, the order their base chains were registered)."""
    if not text.endswith("\n"):
        text += "\n"
    try:
        tree = parser().parse(text)
    except UnexpectedInput as e:
        raise InputError(_syntax_message(e, text), source, getattr(e, "line", None)) from None
    rs = Ruleset(source=source, format="nft")
    seen: set[tuple[str, str]] = set()
    managed = managed_tables(text)
    for t in tree.children:
        if isinstance(t, Tree) and t.data == "table":
            add_table(rs, _table(t, source, managed), seen, source)
    return finish(rs, source)


def managed_tables(text: str) -> dict[tuple[str, str], str]:
    """(family, name) -> the tool a ``# Warning: table … is managed by …`` line names."""
    return {(m.group(1), m.group(2)): m.group(3) for m in MANAGED_RE.finditer(text)}


def add_table(rs: Ruleset, table: NftTable, seen: set[tuple[str, str]], source: str) -> None:
    key = (table.nft_family, table.nft_name)
    if key in seen:
        raise InputError(f"table {table.name} is listed twice", source, table.line)
    seen.add(key)
    rs.nft_tables.append(table)


def finish(rs: Ruleset, source: str, link: bool = True) -> Ruleset:
    """The checks and notes of a whole ruleset, once its tables are read."""
    if not rs.nft_tables:
        raise InputError("no nft table found", source, None)
    if link:
        rs.link()
    for table in rs.nft_tables:
        if not table.ip_families:
            rs.note("fidelity", f"table {table.name}: the {table.nft_family} family hooks outside IP "
                    "(ARP, the bridge layer, a device's ingress) and is not traced", table.line)
        if table.managed_by:
            rs.note("fidelity", f"table {table.name} is managed by {table.managed_by}: its xtables "
                    "extensions are printed without options (iptables-save shows them)", table.line)
    return rs


def _syntax_message(e: UnexpectedInput, text: str) -> str:
    if isinstance(e, UnexpectedEOF):
        return "the text ends inside a block (a `}' is missing)"
    if isinstance(e, UnexpectedToken) and e.token.type == "$END":
        return "the text ends inside a block (a `}' is missing)"
    if isinstance(e, UnexpectedToken):
        tok = e.token
        shown = "end of line" if tok.type == "_NL" else f"`{tok}'"
        return f"unexpected {shown} (column {e.column}): not what `nft list ruleset' prints here"
    if isinstance(e, UnexpectedCharacters):
        line = text.splitlines()[e.line - 1] if 0 < e.line <= len(text.splitlines()) else ""
        return f"unexpected character `{line[e.column - 1:e.column]}' (column {e.column})"
    return str(e).splitlines()[0]


# ---------------------------------------------------------------------------------------------
# The tree.


def _line(node: Any) -> int:
    if isinstance(node, Token):
        return node.line or 0
    for c in node.children:
        n = _line(c)
        if n:
            return n
    return 0


def _words(children: list[Any]) -> list[Any]:
    """Tree atoms -> words: str, Quoted, Braces, ","."""
    out: list[Any] = []
    for c in children:
        if isinstance(c, Token):
            if c.type == "STRING":
                out.append(Quoted(_unquote(str(c))))
            elif c.type == "HANDLE":
                continue
            else:
                out.append(str(c))
        elif isinstance(c, Tree) and c.data == "braces":
            out.append(Braces(tuple(tuple(_words(e.children)) for e in c.children
                                    if isinstance(e, Tree) and e.data == "element")))
        elif isinstance(c, Tree) and c.data == "element":
            out.extend(_words(c.children))
    return out


def _unquote(s: str) -> str:
    return s[1:-1].replace('\\"', '"').replace("\\\\", "\\")


def _handle(node: Tree) -> int | None:
    for c in node.children:
        if isinstance(c, Tree) and c.data == "handle":
            return int(str(c.children[0]).split()[-1])
    return None


def _lines(node: Tree) -> Iterator[Tree]:
    for c in node.children:
        if isinstance(c, Tree) and c.data == "line":
            yield c


def _table(t: Tree, source: str, managed: dict[tuple[str, str], str]) -> NftTable:
    table = table_head(t, source, managed)
    chains = [it for it in t.children if isinstance(it, Tree) and it.data == "chain"]
    for it in chains:
        c = chain_head(it, table, source)
        if c.name in table.chains:
            raise InputError(f"chain {c.name} is listed twice in table {table.name}", source, c.line)
        table.chains[c.name] = c
    for it in chains:
        chain_rules(it, table, table.chains[str(it.children[0])], source)
    for c in table.chains.values():
        check_jumps(c.rules, table, source)
    return table


def check_jumps(rules: list[NftRule], table: NftTable, source: str) -> None:
    """A rule that jumps or goes to a chain the table does not have is refused, as nft does."""
    for r in rules:
        j = r.jump
        if j is not None and j not in table.chains:
            raise InputError(f"rule jumps to chain {j}, which table {table.name} does not have",
                             source, r.line)


def table_head(t: Tree, source: str, managed: dict[tuple[str, str], str]) -> NftTable:
    """A table with its attributes, sets and maps (read first: chains refer to them by name)."""
    toks = [c for c in t.children if isinstance(c, Token)]
    if len(toks) == 1:
        family, name = "ip", str(toks[0])  # `table NAME` means family ip
    else:
        family, name = str(toks[0]), str(toks[1])
    line = toks[0].line or 0
    if family not in FAMILIES:
        raise InputError(f"unknown table family `{family}'", source, line)
    # family 4 for the graph's key; inet tables serve both (see NftTable.ip_families)
    table = NftTable(f"{family} {name}", 6 if family == "ip6" else 4, line=line, nft_family=family,
                     nft_name=name, handle=_handle(t), managed_by=managed.get((family, name), ""))
    for it in t.children:  # sets and maps first: chains refer to them by name
        if not isinstance(it, Tree):
            continue
        if it.data in ("set", "map"):
            s = _set(it, table, source)
            table.sets[s.name] = s
        elif it.data == "attr":
            words = _words(it.children[1:])
            if str(it.children[0]) == "comment" and words:
                table.comment = str(words[0])
            else:
                table.flags = tuple(str(w) for w in words if w != ",")
    return table


def _set(it: Tree, table: NftTable, source: str) -> NftSet:
    name = str(it.children[0])
    s = NftSet(name, table.name, kind=it.data, line=_line(it), handle=_handle(it))
    for ln in _lines(it):
        words = _words(ln.children)
        if not words:
            continue
        key = str(words[0])
        rest = words[1:]
        if key == "type":
            text = words_text(rest)
            k, _, d = text.partition(" : ")
            s.key_types = tuple(x.strip() for x in k.split(" . "))
            s.data_type = d.strip()
        elif key == "typeof":
            text = words_text(rest)
            k, _, d = text.partition(" : ")
            s.typeof = k.strip()
            s.key_types = tuple(x.strip() for x in k.split(" . "))
            s.data_type = d.strip()
            if d.strip() in ("verdict",):
                s.data_type = "verdict"
        elif key == "flags":
            s.flags = frozenset(str(w) for w in rest if w != ",")
        elif key == "elements":
            braces = next((w for w in rest if isinstance(w, Braces)), None)
            if braces is None:
                raise InputError(f"set {name}: `elements = {{ … }}' expected", source, _line(ln))
            s.elements = split_elements(braces, max(1, len(s.key_types)))
        elif key == "timeout":
            s.timeout = words_text(rest)
        elif key == "comment" and rest:
            s.comment = str(rest[0])
    return s


def chain_head(it: Tree, table: NftTable, source: str, c: NftChain | None = None) -> NftChain:
    """The chain ``it`` declares (a base chain's type, hook, priority and policy), in ``c`` when
    given (a chain whose rules are read later: :mod:`iptexplain.nft.deferred`)."""
    name = str(it.children[0])
    if c is None:
        c = NftChain(name, table.name, False, line=_line(it), handle=_handle(it))
    for ln in _lines(it):
        words = _words(ln.children)
        if words and words[0] == "type":
            _base_chain(c, words, table, source, _line(ln))
        elif words and words[0] == "policy" and c.hook is not None:
            # `type filter hook input priority 0; policy drop;`: the policy after the `;`
            if len(words) != 2 or words[1] not in ("accept", "drop"):
                raise InputError(f"chain {name}: policy accept or drop expected", source, _line(ln))
            c.policy = str(words[1]).upper()
        elif words and words[0] == "comment" and len(words) == 2:
            c.comment = str(words[1])
    return c


def _base_chain(c: NftChain, words: list[Any], table: NftTable, source: str, line: int) -> None:
    """``type filter hook input [device X] priority filter + 10; policy drop;``"""
    cur = Cursor(words)
    try:
        cur.expect("type")
        c.nft_type = cur.take_word("a chain type")
        cur.expect("hook")
        hook = cur.take_word("a hook")
        if hook not in HOOKS:
            raise OptionError(f"unknown hook `{hook}'")
        c.hook = HOOKS[hook]
        devices: list[str] = []
        while cur.peek() in ("device", "devices"):
            cur.pos += 1
            cur.take_if("=")
            d = cur.take("a device")
            devices += [str(x) for e in d.elements for x in e] if isinstance(d, Braces) else [str(d)]
        c.devices = tuple(devices)
        cur.expect("priority")
        pr: list[str] = []
        while cur.peek() is not None and cur.peek() != "policy":
            pr.append(cur.take_word())
        c.priority_text = " ".join(pr)
        try:
            c.priority = priority_value(pr, table.nft_family)
        except ValueError as e:
            raise OptionError(str(e)) from None
        if cur.take_if("policy"):
            pol = cur.take_word("accept or drop")
            if pol not in ("accept", "drop"):
                raise OptionError(f"policy `{pol}': accept or drop expected")
            c.policy = pol.upper()
        else:
            c.policy = "ACCEPT"
    except OptionError as e:
        raise InputError(f"chain {c.name}: {e}", source, line) from None
    c.builtin = True


def chain_rules(it: Tree, table: NftTable, c: NftChain, source: str, offset: int = 0,
                lazy: Callable[[OptionError, int], Exception] | None = None) -> None:
    """Read the rules of chain ``it`` into ``c`` (``offset``: what to add to the tree's line
    numbers, for a chain's text read on its own; ``lazy``: a big map's pieces are made when
    looked at, and this makes the error a bad element raises then, see
    :mod:`iptexplain.nft.pieces`)."""
    number = 0
    for ln in _lines(it):
        words = _words(ln.children)
        if not words or words[0] == "type" or (words[0] == "policy" and c.hook is not None):
            continue
        if words[0] == "comment" and len(words) == 2:
            c.comment = str(words[1])
            continue
        line = _line(ln) + offset
        number += 1
        text = _text(words)
        try:
            parsed = parse_rule(words, table.nft_family, table)
            ps = pieces(parsed, table, c, text, line, number, source, _handle(ln), lazy)
        except OptionError as e:
            raise InputError(f"{e}", source, line) from None
        one = ps[0] if len(ps) == 1 and not isinstance(ps[0], LazyPiece) and not ps[0].piece else None
        w = one if one is not None else written(parsed, table, c, text, line, number, source, _handle(ln))
        w.counters = _counters(words)
        c.written.append(w)
        c.rules.extend(ps)


def _counters(words: list[Any]) -> Counters | None:
    """``counter packets 12 bytes 720`` -> its values (None without, or with ``nft -s``)."""
    for i, w in enumerate(words):
        if w == "counter" and i + 4 < len(words) and words[i + 1] == "packets" and words[i + 3] == "bytes":
            p, b = words[i + 2], words[i + 4]
            return Counters(int(p), int(b)) if isinstance(p, str) and p.isdigit() and \
                isinstance(b, str) and b.isdigit() else None
    return None


def _text(words: list[Any]) -> str:
    """The rule as nft prints it, without counter values (they change; `nft -s` drops them)."""
    out: list[Any] = []
    i = 0
    while i < len(words):
        w = words[i]
        if w in ("packets", "bytes") and out and out[-1] in ("counter", "packets", "bytes") and i + 1 < len(words):
            i += 2
            continue
        out.append(w)
        i += 1
    return words_text(out)


__all__ = ["Lookup", "looks_like_nft", "read_nft"]
