"""The words of a rule laid out in plain characters, for ``show``: cells of ``(text, style)``
pieces, wrapped at word boundaries and folded to the console's width, once per rule (see
:mod:`.show` for why the layout is done by hand and not by rich's ``Table``)."""

from __future__ import annotations

from iptexplain.ext.base import ChainJump, Extension, extension_name
from iptexplain.graph import Counters, IPHeader, Rule

NOT_UNDERSTOOD_STYLE = "bold magenta"
MAX_REFERENCES_SHOWN = 6

Piece = tuple[str, str]  # (text, style name; "" is unstyled)
Words = list[Piece]  # a cell: words, wrapped at word boundaries
Line = list[Piece]  # one output line, never wider than the console


def human(n: int) -> str:
    """A counter as ``iptables -v`` prints it: exact below 100000, then K, M, G, T."""
    if n < 100_000:
        return str(n)
    for unit in ("K", "M", "G", "T"):
        n //= 1000
        if n < 100_000:
            return f"{n}{unit}"
    return f"{n}P"


def _counters_text(c: Counters | None) -> str:
    return "" if c is None else f"{human(c.packets)} pkts {human(c.bytes)} bytes"


_VERDICT_STYLES = {"ACCEPT": "green", "DROP": "red", "REJECT": "red", "RETURN": "yellow"}


def _verdict_style(name: str) -> str:
    return _VERDICT_STYLES.get(name, "cyan")


def _pieces(words: Words) -> Line:
    """Words on one line as pieces: plain words and the blanks between words gathered."""
    out: Line = []
    buf: list[str] = []
    for j, (w, st) in enumerate(words):
        if j:
            buf.append(" ")
        if st:
            if buf:
                out.append(("".join(buf), ""))
                buf = []
            out.append((w, st))
        else:
            buf.append(w)
    if buf:
        out.append(("".join(buf), ""))
    return out


class Cell:
    """A rule's or a target's words, with their one-line text and pieces made once: most rows
    fit on one line, and then only ``text`` (its width) and ``pieces`` are read."""

    __slots__ = ("_words", "_parts", "text", "pieces", "plain")

    def __init__(self, words: Words | None, text: str, pieces: Line, parts: list[Cell] | None = None) -> None:
        self._words = words
        self._parts = parts
        self.text = text
        self.pieces = pieces
        self.plain = not pieces or (len(pieces) == 1 and not pieces[0][1])

    @classmethod
    def of(cls, words: Words) -> Cell:
        return cls(words, " ".join([w for w, _ in words]), _pieces(words))

    @classmethod
    def concat(cls, parts: list[Cell]) -> Cell:
        """The cells one after the other (a rule: its header, then each match)."""
        if len(parts) == 1:
            return parts[0]
        text = " ".join([p.text for p in parts])
        for p in parts:
            if not p.plain:
                return cls(None, text, _pieces([w for p in parts for w in p.words]), parts)
        return cls(None, text, [(text, "")])

    @classmethod
    def plain_words(cls, words: list[str]) -> Cell:
        """Unstyled words: their list is made from the text only if the cell must be wrapped."""
        text = " ".join(words)
        return cls(None, text, [(text, "")] if text else [])

    @property
    def words(self) -> Words:
        if self._words is None:
            if self._parts is not None:
                self._words = [w for p in self._parts for w in p.words]
            else:  # plain: the text is the words joined by single blanks
                self._words = [(w, "") for w in self.text.split(" ")] if self.text else []
        return self._words


class CellCache:
    """The cells of each header, match and target, made once per view.

    The parser shares one object between all the rules that spell a header or a module alike
    (``-m tcp --dport 443``, ``-j KUBE-MARK-MASQ``: most of a kube-proxy dump), so their cells are
    cached by identity.  The object is kept beside its cell, so that its identity cannot be
    reused while it is cached; the cache is emptied when it grows past ``LIMIT`` (the shared
    objects come back at once, the unique ones -- comments, endpoints -- are not worth keeping)."""

    LIMIT = 8192

    def __init__(self) -> None:
        self._cells: dict[int, tuple[object, Cell]] = {}
        self.get = self._cells.get  # (object, cell) by id(object), for the hot loop in cells()

    def _put(self, obj: object, cell: Cell) -> Cell:
        if len(self._cells) >= self.LIMIT:
            self._cells.clear()
        self._cells[id(obj)] = (obj, cell)
        return cell

    def header(self, h: IPHeader) -> Cell:
        hit = self._cells.get(id(h))
        if hit is not None:
            return hit[1]
        return self._put(h, Cell.plain_words(h.save_args()))

    def match(self, m: Extension) -> Cell:
        hit = self._cells.get(id(m))
        if hit is not None:
            return hit[1]
        # A quoted comment is one argument but wraps like prose.
        if m.understood:
            text = " ".join(m.save())
            if "  " in text or text[:1] == " " or text[-1:] == " ":  # blanks collapse, as words
                return self._put(m, Cell.plain_words([x for x in text.split(" ") if x]))
            return self._put(m, Cell(None, text, [(text, "")] if text else []))
        st = NOT_UNDERSTOOD_STYLE
        words = [(x, st) for w in m.save() for x in w.split(" ") if x]
        if not m.understood:
            words.append(("(not understood)", NOT_UNDERSTOOD_STYLE))
        return self._put(m, Cell.of(words))

    def target(self, t: Extension) -> Cell:
        hit = self._cells.get(id(t))
        if hit is not None:
            return hit[1]
        name = extension_name(t)
        words = [(name, _verdict_style(name) if t.understood else NOT_UNDERSTOOD_STYLE)]
        words += [(x, "") for w in t.save_args() for x in w.split(" ") if x]
        if not t.understood:
            words.append(("(not understood)", NOT_UNDERSTOOD_STYLE))
        return self._put(t, Cell.of(words))


_EVERY_PACKET = Cell.of([("(every packet)", "dim")])
_NO_TARGET = Cell.of([("(no target: counts only)", "dim")])


def cells(rule: Rule, cache: CellCache) -> tuple[Cell, Cell]:
    """The rule cell and the target cell of one rule."""
    if getattr(rule, "parts", None) is not None:
        return _own_cells(rule)
    get = cache.get
    hit = get(id(rule.header))
    h = hit[1] if hit is not None else cache.header(rule.header)
    parts = [h] if h.text else []
    for m in rule.matches:
        hit = get(id(m))
        parts.append(hit[1] if hit is not None else cache.match(m))
    rule_cell = Cell.concat(parts) if parts else _EVERY_PACKET
    t = rule.target
    if t is None:
        target = _NO_TARGET
    elif isinstance(t, ChainJump):
        text = ("↪ " if rule.goto else "→ ") + t.chain
        words = [(text, "bold blue")]
        target = Cell(words, text, words)
    else:
        target = cache.target(t)
    return rule_cell, target


def _own_cells(rule: Rule) -> tuple[Cell, Cell]:
    """A rule of another language (nft) as that language prints it: its expressions, then its
    statements and verdict; what is not understood is highlighted."""
    matches, target, comments = rule.parts()  # type: ignore[attr-defined]
    if getattr(rule, "piece", "") or len(matches.split()) != sum(len(m.nft_text().split()) for m in rule.matches):
        words = [(x, "") for x in matches.split()]
    else:
        words = [(x, "" if m.understood else NOT_UNDERSTOOD_STYLE) for m in rule.matches
                 for x in m.nft_text().split()]
    if any(not m.understood for m in rule.matches):
        words.append(("(not understood)", NOT_UNDERSTOOD_STYLE))
    words += [(x, "dim") for c in comments for x in f'comment "{c}"'.split()]
    rule_cell = Cell.of(words) if words else _EVERY_PACKET
    t = rule.target
    if t is None and not target:
        return rule_cell, _NO_TARGET
    if t is None:
        return rule_cell, Cell.of([(x, "") for x in target.split()])
    verdict = getattr(t, "verdict_stmt", None)
    vwords = verdict.text.split() if verdict is not None else []
    tw = target.split()
    style = _verdict_style(vwords[0].upper()) if vwords and tw[-len(vwords):] == vwords else ""
    out = [(x, style if style and i >= len(tw) - len(vwords) else "") for i, x in enumerate(tw)]
    if not t.understood:
        out.append(("(not understood)", NOT_UNDERSTOOD_STYLE))
    return rule_cell, Cell.of(out)


def rule_cells(rule: Rule, cache: CellCache | None = None) -> tuple[Words, Words]:
    """(rule words, target words) of one rule.  A module iptexplain does not understand carries
    the highlight style and the words ``(not understood)``.  The lists may be shared: read them,
    do not change them."""
    rule_cell, target = cells(rule, cache or CellCache())
    return rule_cell.words, target.words


def _wrap(words: Words, width: int) -> list[tuple[Line, int]]:
    """Greedy word wrap; a word longer than the column is cut.  Each line as its pieces (plain
    words and blanks gathered, as :func:`_pieces` gives them) and its width."""
    out: list[tuple[Line, int]] = []
    line: Line = []
    buf: list[str] = []
    used = 0
    for w, st in words:
        while len(w) > width:
            if used:
                if buf:
                    line.append(("".join(buf), ""))
                out.append((line, used))
                line, buf, used = [], [], 0
            out.append(([(w[:width], st)], width))
            w = w[width:]
        if not w:
            continue
        if used:
            if used + 1 + len(w) > width:
                if buf:
                    line.append(("".join(buf), ""))
                out.append((line, used))
                line, buf, used = [], [], 0
            else:
                buf.append(" ")
                used += 1
        if st:
            if buf:
                line.append(("".join(buf), ""))
                buf = []
            line.append((w, st))
        else:
            buf.append(w)
        used += len(w)
    if used or not out:
        if buf:
            line.append(("".join(buf), ""))
        out.append((line, used))
    return out


def _wrap_plain(text: str, width: int) -> list[tuple[Line, int]]:
    """:func:`_wrap` of unstyled words given as their text (words joined by single blanks):
    the same lines, found with ``str.rfind``."""
    out: list[tuple[Line, int]] = []
    start, n = 0, len(text)
    while n - start > width:
        cut = text.rfind(" ", start, start + width + 1)
        if cut > start:
            out.append(([(text[start:cut], "")], cut - start))
            start = cut + 1
        else:  # a word longer than the column: cut it
            out.append(([(text[start:start + width], "")], width))
            start += width
    if start < n or not out:
        out.append(([(text[start:], "")] if start < n else [], n - start))
    return out


def _wrap_text(text: str, width: int) -> list[str]:
    """:func:`_wrap_plain`'s lines as strings (for the plain writer)."""
    out: list[str] = []
    start, n = 0, len(text)
    while n - start > width:
        cut = text.rfind(" ", start, start + width + 1)
        if cut > start:
            out.append(text[start:cut])
            start = cut + 1
        else:  # a word longer than the column: cut it
            out.append(text[start:start + width])
            start += width
    if start < n or not out:
        out.append(text[start:])
    return out


def _slice(line: Line, start: int, end: int) -> Line:
    """The pieces of ``line`` between two character offsets."""
    out: Line = []
    pos = 0
    for text, st in line:
        nxt = pos + len(text)
        if nxt > start and pos < end:
            out.append((text[max(start - pos, 0):end - pos], st))
        pos = nxt
        if pos >= end:
            break
    return out


def fold(line: Line, width: int) -> list[Line]:
    """A line of prose (a title, a note, the summary) cut at blanks to fit ``width``; the blanks
    at a break are dropped and a word longer than the width is cut."""
    text = "".join(t for t, _ in line)
    n = len(text)
    if n <= width:
        return [line]
    width = max(width, 1)
    out: list[Line] = []
    start = 0
    while start < n:
        if n - start <= width:
            end = nxt = n
        else:
            cut = text.rfind(" ", start, start + width + 1)
            end = nxt = cut if cut > start else start + width
        while end > start and text[end - 1] == " ":
            end -= 1
        out.append(_slice(line, start, end))
        start = nxt
        while start < n and text[start] == " ":
            start += 1
    return out


def _crop(line: Line, width: int) -> Line:
    return _slice(line, 0, width) if sum(len(t) for t, _ in line) > width else line
