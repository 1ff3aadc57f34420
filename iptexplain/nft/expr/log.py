"""``counter``, ``log`` and ``comment``: statements that change nothing on the packet's way
(``log`` writes to the kernel log and the rule goes on, as ``-j LOG`` does)."""

from __future__ import annotations

from typing import Any

from iptexplain.nft.expr.base import Cursor, Quoted, words_text
from iptexplain.nft.expr.meta import NoEffect

KEYWORDS = ("counter", "log")

LOG_OPTIONS = ("prefix", "level", "flags", "group", "snaplen", "queue-threshold")
COUNTER_WORDS = ("packets", "bytes")


def parse(cur: Cursor) -> Any:
    start = cur.pos
    kw = cur.take_word()
    if kw == "counter":
        if cur.peek() == "name":
            cur.pos += 1
            cur.take()
        named = words_text(cur.words[start:cur.pos])
        while cur.peek() in COUNTER_WORDS:
            cur.pos += 1
            cur.take()
        return NoEffect(named)  # its values change with every packet (`nft -s` drops them)
    while cur.peek() in LOG_OPTIONS:
        cur.pos += 1
        cur.take()
        while cur.peek() == ",":
            cur.pos += 1
            cur.take()
    prefix = next((w.text for w in cur.words[start:cur.pos] if isinstance(w, Quoted)), "")
    return NoEffect(words_text(cur.words[start:cur.pos]),
                    note=f"logged{(' with prefix ' + repr(prefix)) if prefix else ''}; the rule goes on")
