"""Stateful tests that stop a rule by history: ``limit rate [over] N/UNIT [burst M packets]``,
``quota [over] N UNIT``, ``meter NAME { KEY limit rate … }``, ``add|update @set { KEY … }`` with a
limit.  The packets before this one decide, so each is a fork: on a first packet a rate limit
finds its bucket full (the matching branch first, as for ``-m limit``)."""

from __future__ import annotations

from typing import Any

from iptexplain.nft.expr.base import Braces, Cursor, Fork, Quoted, words_text
from iptexplain.nft.expr.meta import NoEffect

KEYWORDS = ("limit", "quota", "meter", "add", "update", "flow")


def parse(cur: Cursor) -> Any:
    start = cur.pos
    kw = cur.take_word()
    if kw in ("limit", "quota") and cur.peek() == "name":
        # a named stateful object of the table (`limit name "ssh-rate"`)
        cur.pos += 1
        name = cur.take_word("an object name")
        text = words_text(cur.words[start:cur.pos])
        return Fork(text=text, yes=f"within the {kw} {name}", no=f"over the {kw} {name}", spelled=kw)
    if kw == "flow":
        # `flow add @ft`: the connection is offloaded to a flowtable once established; its later
        # packets skip the hooks (the first packet, traced here, goes through them all)
        cur.take_if("add")
        ft = cur.take_word("a flowtable")
        return NoEffect(words_text(cur.words[start:cur.pos]),
                        note=f"the connection is offloaded to flowtable {ft} once established: its later "
                        "packets skip the hooks")
    if kw == "limit":
        cur.expect("rate")
        over = cur.take_if("over")
        rate = [cur.take_word("a rate")]
        # `10/second`, `10 mbytes/second`
        if cur.peek() is not None and isinstance(cur.peek(), str) and "/" in str(cur.peek()):
            rate.append(cur.take_word())
        burst = ""
        if cur.take_if("burst"):
            burst = cur.take_word("a burst")
            if cur.peek() in ("packets", "bytes", "kbytes", "mbytes"):
                burst += " " + cur.take_word()
        text = words_text(cur.words[start:cur.pos])
        r = " ".join(rate) + (f" burst {burst}" if burst else "")
        under, above = f"under the rate limit {r}", f"over the rate limit {r}"
        return Fork(text=text, yes=above if over else under, no=under if over else above, spelled="limit")
    if kw == "quota":
        over = cur.take_if("over")
        amount = cur.take_word("an amount")
        if cur.peek() in ("bytes", "kbytes", "mbytes", "gbytes"):
            amount += " " + cur.take_word()
        if cur.take_if("used"):
            cur.take()
            if cur.peek() in ("bytes", "kbytes", "mbytes", "gbytes"):
                cur.take()
        text = words_text(cur.words[start:cur.pos])
        under, above = f"within the quota {amount}", f"over the quota {amount}"
        return Fork(text=text, yes=above if over else under, no=under if over else above, spelled="quota")
    # meter NAME [size N] { KEY limit rate … } and add/update @set { KEY [limit rate …] }
    name = cur.take_word("a name")
    while cur.peek() is not None and not isinstance(cur.peek(), Braces):
        cur.take()
    body = cur.take("{ … }")
    text = words_text(cur.words[start:cur.pos])
    inner = " ".join(str(w) for e in getattr(body, "elements", ()) for w in e)
    if " limit " in f" {inner} " or " ct count " in f" {inner} ":
        return Fork(text=text, yes=f"{name}: under its limit for this key", no=f"{name}: over its limit for this key",
                    spelled=kw)
    return NoEffect(text, note=f"{name} learns this packet's key (the set is the host's run-time state)")


__all__ = ["Quoted", "parse"]
