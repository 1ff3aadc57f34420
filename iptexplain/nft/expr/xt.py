"""``xt match NAME`` / ``xt target NAME``: an xtables extension inside an iptables-nft table,
which ``nft list ruleset`` prints without its options.  Its meaning is not in the dump: an xt
match forks and an xt target's effect is unknown, as for an iptables module nobody knows
(read such tables with ``iptables-save`` to trace them exactly)."""

from __future__ import annotations

from iptexplain.netfilter.context import UNKNOWN, Effect, MatchContext
from iptexplain.netfilter.packets import Packets
from iptexplain.nft.expr.base import Cursor, Opaque, Statement, words_text

KEYWORDS = ("xt",)


class XtTarget(Statement):
    understood = False

    def __init__(self, text: str) -> None:
        self.text = text

    def apply(self, pkts: Packets, ctx: MatchContext) -> Effect:
        return Effect(UNKNOWN, note=f"`{self.text}': an xtables target whose options nft does not print "
                      "(read this table with iptables-save)")


def parse(cur: Cursor):
    start = cur.pos
    cur.expect("xt")
    kind = cur.take_word("match or target")
    cur.take_word("an extension name")
    text = words_text(cur.words[start:cur.pos])
    if kind == "target":
        return XtTarget(text)
    return Opaque(text=text, spelled=text)
