"""The free text at the end of a listing row, read back into matches and a target: each
module reads its own words (``from_listing`` in ``iptexplain/ext``); this dispatches on the words
the modules declare."""
from __future__ import annotations

from iptexplain.core.errors import OptionError
from iptexplain.ext import MATCHES, load_all, target_class
from iptexplain.ext.base import ChainJump, ListingTail, Match, Target
from iptexplain.graph import STANDARD_VERDICTS
from iptexplain.parse.listing_rows import ListingTarget, ListingText
from iptexplain.parse.rulespec import IPTABLES_MATCHES, IPTABLES_TARGETS

# ---------------------------------------------------------------------------------------------
# The free-text tail: dispatch on the words the modules declare.


class TailReader:
    """Turns a row's tail into (goto, matches, target, unread text), one module at a time."""

    def __init__(self) -> None:
        # Every module is loaded when the first row is read (index()), not at import: a deferred
        # listing (iptexplain.parse.listing_deferred) may read no row at all.
        self._index: dict[str, list[type[Match]]] = {}
        self._indexed = -1
        self._cache: dict[tuple, tuple] = {}
        self._jumps: dict[str, ChainJump] = {}

    def _load(self) -> None:
        """Load the modules whose listing keywords the index must hold: all of them."""
        load_all()

    def index(self) -> dict[str, list[type[Match]]]:
        if self._indexed < 0:
            self._load()
        if self._indexed != len(MATCHES):
            idx: dict[str, list[type[Match]]] = {}
            for cls in dict.fromkeys(MATCHES.values()):
                for kw in cls.listing_keywords:
                    idx.setdefault(kw, []).append(cls)
            self._index, self._indexed = idx, len(MATCHES)
        return self._index

    def _candidates(self, word: str) -> list[type[Match]]:
        idx = self.index()
        hit = idx.get(word)
        if hit is not None:
            return hit
        if word.startswith("/*"):
            return idx.get("/*", [])
        k = word.find(":")
        if k > 0:
            return idx.get(word[: k + 1], []) or idx.get(word[:k], [])
        return []

    def _match_at(self, tail: ListingTail) -> Match | None:
        w = tail.peek()
        if w == "!":
            w = tail.peek(1)
        if w is None:
            return None
        cands = self._candidates(w)
        start = tail.pos
        best: tuple[int, Match, list[str]] | None = None
        for cls in cands:
            tail.pos = start
            n_losses = len(tail.losses)
            try:
                m = cls.from_listing(tail)
            except (OptionError, ValueError, IndexError, KeyError):
                del tail.losses[n_losses:]
                continue
            if best is None or tail.pos > best[0]:
                best = (tail.pos, m, tail.losses[n_losses:])  # type: ignore[assignment]
            del tail.losses[n_losses:]
            if len(cands) == 1:
                break
        if best is None:
            tail.pos = start
            return None
        tail.pos = best[0]
        tail.losses += best[2]
        return best[1]

    @staticmethod
    def _target_from(cls: type[Target], name: str, tail: ListingTail) -> Target | None:
        start = tail.pos
        try:
            t = cls.from_listing(tail)
        except (OptionError, ValueError, IndexError, KeyError, NotImplementedError):
            tail.pos = start
            return None
        if not tail.at_end():
            tail.pos = start
            return None
        return t  # type: ignore[return-value]

    def read(self, text: str, target_name: str, family: int, proto: str | None) -> tuple:
        key = (text, target_name, family, proto)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        out = self._read(text, target_name, family, proto)
        if len(self._cache) < 200_000:
            self._cache[key] = out
        return out

    def _read(self, text: str, target_name: str, family: int, proto: str | None) -> tuple:
        tail = ListingTail(text, family, proto)
        goto = tail.take_if("[goto]")
        matches: list[Match] = []
        unread: list[str] = []
        while not tail.at_end():
            m = self._match_at(tail)
            if m is None:
                break
            matches.append(m)

        # The target: its name is the target column; its words (if it prints any) end the row.
        target: Target | None
        cls = None
        if target_name == "":
            target = None
        elif target_name in STANDARD_VERDICTS:
            target = target_class("standard").build([], spelled=target_name)  # type: ignore[union-attr]
        elif (cls := target_class(target_name)) is not None and cls.has_listing_face():
            target = None
        elif cls is not None or target_name in IPTABLES_TARGETS:
            target = ListingTarget(opaque_name=target_name, spelled=target_name)
            cls = None
        else:
            target = self._jumps.get(target_name)
            if target is None:
                target = self._jumps[target_name] = ChainJump(chain=target_name)

        if cls is not None:
            # Find where the target's words begin: right here, or after text no module read.
            start = tail.pos
            for j in range(start, len(tail.words) + 1):
                tail.pos = j
                t = self._target_from(cls, target_name, tail)
                if t is not None:
                    target = t
                    if j > start:
                        unread.append(" ".join(tail.words[start:j]))
                        matches.append(_opaque(tail.words[start:j]))
                    break
            else:
                rest = " ".join(tail.words[start:])
                target = ListingTarget(opaque_name=target_name, spelled=target_name, text=rest)
                if rest:
                    unread.append(rest)
            tail.pos = len(tail.words)
        elif not tail.at_end():
            rest = tail.words[tail.pos:]
            if isinstance(target, ListingTarget) and not (rest[0].lower() in IPTABLES_MATCHES and rest[0] != target_name):
                target = ListingTarget(opaque_name=target_name, spelled=target_name, text=" ".join(rest))
            else:
                matches.append(_opaque(rest))
            unread.append(" ".join(rest))
        return goto, tuple(matches), target, tuple(unread), tuple(dict.fromkeys(tail.losses))


def _opaque(words: list[str]) -> ListingText:
    first = words[0].lstrip("!").rstrip(":").lower() if words else ""
    name = first if first in IPTABLES_MATCHES else "unknown"
    return ListingText(raw=tuple(words), opaque_name=name, spelled=name, text=" ".join(words))


_TAILS = TailReader()
