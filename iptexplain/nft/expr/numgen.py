"""``numgen random mod N [offset K]`` and ``jhash``/``symhash``: a number the packet does not
decide.  Kube-proxy's nftables mode picks a service endpoint with ``numgen random mod N vmap {
0 : goto ep1, 1 : goto ep2, … }``: each element is a branch with its probability (the map
element's share of the N values), chosen once per connection as statistic's cascade is."""

from __future__ import annotations

from typing import Sequence

from iptexplain.netfilter.context import MatchContext
from iptexplain.netfilter.packets import Decision, IntSet, Packets, fmt_set, intersect
from iptexplain.nft.expr.base import Cursor, Selector, Word, int_words, number

KEYWORDS = ("numgen", "jhash", "symhash")


class Numgen(Selector):
    """The generated number; ``decide`` gives the chance that it falls in the values, out of
    the values still possible (``pool``: earlier elements of the same map took theirs)."""

    def __init__(self, text: str, mod: int, offset: int, random: bool) -> None:
        self.text, self.mod, self.offset, self.random = text, mod, offset, random
        self.pool: IntSet = ((offset, offset + mod - 1),)

    def parse(self, words: Sequence[Word]) -> IntSet:
        return int_words(words, number, 32)

    def probability(self, value: IntSet) -> float:
        def size(s: IntSet) -> int:
            return sum(hi - lo + 1 for lo, hi in s)
        total = size(self.pool)
        return size(intersect(value, self.pool)) / total if total else 0.0

    def decide(self, pkts: Packets, ctx: MatchContext, value, invert: bool) -> Decision:
        p = self.probability(value)
        if invert:
            p = 1 - p
        shown = fmt_set(value)
        if p >= 1.0:
            return Decision.all(pkts, f"{self.text} is {shown}")
        if p <= 0.0:
            return Decision.none(pkts, f"{self.text} cannot be {shown}")
        if not self.random:
            return Decision.fork(pkts, f"{self.text} {shown}", f"{self.text} is {shown} (a hash of the packet)",
                                 f"{self.text} is not {shown}")
        return Decision.fork(pkts, f"{self.text} {shown}", f"random choice taken (p={p:.5g})",
                             f"random choice not taken (p={1 - p:.5g})", p)


def parse(cur: Cursor) -> Selector:
    start = cur.pos
    kind = cur.take_word()
    if kind == "numgen":
        mode = cur.take_word("random or inc")
        random = mode == "random"
    else:
        random = False
        # jhash ip saddr . tcp dport mod 2 seed 0x… / symhash mod 2
        while cur.peek() not in ("mod", None):
            cur.take()
    cur.expect("mod")
    mod = number(cur.take_word("a modulus"))
    offset = 0
    while cur.peek() in ("seed", "offset"):
        w = cur.take_word()
        v = number(cur.take_word("a number"))
        if w == "offset":
            offset = v
    return Numgen(" ".join(str(x) for x in cur.words[start:cur.pos]), mod, offset, random)
