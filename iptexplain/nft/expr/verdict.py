"""Verdicts: ``accept``, ``drop``, ``continue``, ``return``, ``jump CHAIN``, ``goto CHAIN``,
``queue [num N] [bypass]`` and ``reject [with …]``.

``accept`` ends the base chain's traversal only: the next base chain on the hook still runs
(netfilter-facts: an accept in one table is not final); ``drop`` and ``reject`` are final.
"""

from __future__ import annotations

from iptexplain.netfilter.context import ACCEPT, CONTINUE, DROP, QUEUE, REJECT, RETURN, Effect, MatchContext
from iptexplain.netfilter.packets import Packets
from iptexplain.nft.expr.base import Cursor, Statement, words_text

KEYWORDS = ("accept", "drop", "continue", "return", "jump", "goto", "queue", "reject")

SIMPLE = {"accept": ACCEPT, "drop": DROP, "continue": CONTINUE, "return": RETURN}

# nft's reject codes as the tracer names the answer (icmpx: the family's own code).
ICMP_CODES = {
    "net-unreachable": "icmp-net-unreachable", "host-unreachable": "icmp-host-unreachable",
    "prot-unreachable": "icmp-proto-unreachable", "port-unreachable": "icmp-port-unreachable",
    "net-prohibited": "icmp-net-prohibited", "host-prohibited": "icmp-host-prohibited",
    "admin-prohibited": "icmp-admin-prohibited",
}
ICMPV6_CODES = {
    "no-route": "icmp6-no-route", "admin-prohibited": "icmp6-adm-prohibited",
    "addr-unreachable": "icmp6-addr-unreachable", "port-unreachable": "icmp6-port-unreachable",
    "policy-fail": "icmp6-policy-fail", "reject-route": "icmp6-reject-route",
}
ICMPX = {"port-unreachable": "port-unreachable", "admin-prohibited": "admin-prohibited",
         "no-route": "no-route", "host-unreachable": "host-unreachable"}


class Verdict(Statement):
    """A verdict; ``chain`` is set for jump and goto (the tracer follows those itself)."""

    def __init__(self, text: str, kind: str, chain: str | None = None, queue: str | None = None) -> None:
        self.text, self.kind, self.chain, self.queue = text, kind, chain, queue

    def apply(self, pkts: Packets, ctx: MatchContext) -> Effect:
        if self.kind == "queue":
            return Effect(QUEUE, queue=self.queue or "0")
        return Effect(SIMPLE[self.kind])


class Reject(Statement):
    """``reject [with tcp reset | icmp[v6|x] [type] CODE]``: dropped and answered."""

    def __init__(self, text: str, how: str, code: str) -> None:
        self.text, self.how, self.code = text, how, code

    def reply(self, pkts: Packets) -> str:
        fam = pkts.family
        if self.how == "tcp":
            return "tcp-reset"
        if self.how == "icmp" and fam == 4:
            return ICMP_CODES.get(self.code, "icmp-" + self.code)
        if self.how == "icmpv6" and fam == 6:
            return ICMPV6_CODES.get(self.code, "icmp6-" + self.code)
        code = ICMPX.get(self.code, "port-unreachable") if self.how == "icmpx" else "port-unreachable"
        if fam == 6:
            return {"port-unreachable": "icmp6-port-unreachable", "admin-prohibited": "icmp6-adm-prohibited",
                    "no-route": "icmp6-no-route", "host-unreachable": "icmp6-addr-unreachable"}[code]
        return {"port-unreachable": "icmp-port-unreachable", "admin-prohibited": "icmp-admin-prohibited",
                "no-route": "icmp-net-unreachable", "host-unreachable": "icmp-host-unreachable"}[code]

    def apply(self, pkts: Packets, ctx: MatchContext) -> Effect:
        if self.how == "tcp" and 6 not in {p for lo, hi in pkts.proto for p in range(lo, min(hi, 6) + 1)}:
            return Effect(REJECT, reply=self.reply(pkts))
        return Effect(REJECT, reply=self.reply(pkts))


def parse(cur: Cursor) -> Statement:
    start = cur.pos
    kw = cur.take_word()
    if kw in SIMPLE:
        return Verdict(kw, kw)
    if kw in ("jump", "goto"):
        chain = cur.take_word("a chain name")
        return Verdict(f"{kw} {chain}", kw, chain=chain)
    if kw == "queue":
        num = None
        while cur.peek() in ("num", "to", "flags", "bypass", "fanout", "bypass,fanout", "fanout,bypass"):
            w = cur.take_word()
            if w in ("num", "to"):
                num = cur.take_word("a queue number")
            elif w == "flags":
                cur.take()
                while cur.peek() == ",":
                    cur.pos += 1
                    cur.take()
        return Verdict(words_text(cur.words[start:cur.pos]), "queue", queue=num)
    how, code = "", "port-unreachable"
    if cur.take_if("with"):
        how = cur.take_word("tcp, icmp, icmpv6 or icmpx")
        if how == "tcp":
            cur.expect("reset")
        else:
            cur.take_if("type")
            code = cur.take_word("a reject code")
    return Reject(words_text(cur.words[start:cur.pos]), how, code)
