"""NAT statements: ``dnat``, ``snat``, ``masquerade``, ``redirect`` -- a new connection's
binding, set up in a ``type nat`` chain (the kernel runs those only for a connection's first
packet) and kept by conntrack for every later packet, as for the iptables targets.

``dnat [ip|ip6] to ADDR[:PORT]``, ranges ``10.0.0.1-10.0.0.3:8000-8010``, ``[2001:db8::1]:80``,
``snat to …``, ``masquerade [to :PORTS] [random|fully-random|persistent]``, ``redirect [to
:PORT]``.  A NAT statement's verdict is ACCEPT (nf_nat_setup_info answers NF_ACCEPT); in an
inet table, ``dnat ip to`` on an IPv6 packet is NFT_BREAK: the rule stops, the chain goes on.
A map (``dnat to ip daddr map { … }``) is read as one rule piece per element by the reader.
"""

from __future__ import annotations

from iptexplain.core.addr import parse_ip
from iptexplain.core.context import Effect, MatchContext
from iptexplain.core.errors import OptionError
from iptexplain.core.packets import IntSet, Packets, span
from iptexplain.core import nat as NAT
from iptexplain.numbers import decimal
from iptexplain.nft.expr.base import BREAK, Cursor, Statement, word_text, words_text

KEYWORDS = ("dnat", "snat", "masquerade", "redirect")

FLAGS = ("random", "fully-random", "persistent", "random,persistent", "persistent,random")


def parse_target(text: str, family: int) -> tuple[IntSet | None, IntSet | None]:
    """``10.0.0.1-10.0.0.3:80-90``, ``:8080``, ``[2001:db8::1]:80``, ``2001:db8::1`` -> sets."""
    addr_t, port_t = text, ""
    if text.startswith("["):
        addr_t, _, rest = text[1:].partition("]")
        port_t = rest[1:] if rest.startswith(":") else ""
    elif family == 4 or text.startswith(":"):
        addr_t, _, port_t = text.partition(":")
    addrs = ports = None
    if addr_t:
        lo_t, _, hi_t = addr_t.partition("-")
        try:
            lo = parse_ip(lo_t, family)[1]
            hi = parse_ip(hi_t, family)[1] if hi_t else lo
        except OptionError as e:
            raise OptionError(f"NAT address `{addr_t}': {e}") from None
        addrs = span(lo, hi)
    if port_t:
        lo_p, _, hi_p = port_t.partition("-")
        try:
            ports = span(decimal(lo_p, "port", 65535), decimal(hi_p, "port", 65535) if hi_p
                         else decimal(lo_p, "port", 65535))
        except OptionError:
            raise OptionError(f"NAT port `{port_t}'") from None
    return addrs, ports


class Nat(Statement):
    """One NAT statement; ``to`` is the target as written (None: masquerade/redirect without)."""

    uses_conntrack = True

    def __init__(self, text: str, kind: str, family: int | None, to: str | None, flags: tuple[str, ...]) -> None:
        self.text, self.kind, self.family, self.to, self.flags = text, kind, family, to, flags

    def with_target(self, to: str, text: str) -> "Nat":
        return Nat(text, self.kind, self.family, to, self.flags)

    def apply(self, pkts: Packets, ctx: MatchContext) -> Effect:
        fam = self.family
        if fam is not None and fam != pkts.family:
            return Effect(BREAK, note=f"{self.kind} for IPv{fam} on an IPv{pkts.family} packet")
        fully = any("fully-random" in f for f in self.flags)
        if self.kind == "masquerade":
            ports = parse_target(self.to, pkts.family)[1] if self.to else None
            return NAT.masquerade(pkts, ctx, (ports[0][0], ports[-1][1]) if ports else None, fully)
        if self.kind == "redirect":
            ports = parse_target(self.to, pkts.family)[1] if self.to else None
            return NAT.redirect(pkts, ctx, (ports[0][0], ports[-1][1]) if ports else None)
        addrs, ports = parse_target(self.to or "", pkts.family)
        if self.kind == "dnat":
            return NAT.rewrite(pkts, "DNAT", addrs, ports)
        if ports is None and fully:
            ports = NAT.random_ports(pkts.sport)
        return NAT.rewrite(pkts, "SNAT", addrs, ports)


def parse(cur: Cursor) -> Statement:
    """The statement up to its target; a ``map`` target is left at the cursor for the reader."""
    start = cur.pos
    kind = cur.take_word()
    family = None
    if cur.peek() in ("ip", "ip6"):
        family = 4 if cur.take_word() == "ip" else 6
        # `dnat ip addr . port to …`: the map's data is an address and a port
        if cur.peek() == "addr":
            cur.pos += 1
            cur.expect(".")
            cur.expect("port")
    to = None
    if cur.take_if("to"):
        nxt = cur.peek()
        if nxt is not None and isinstance(nxt, str) and _is_target(nxt, cur.peek(1)):
            to = word_text(cur.take())
        else:
            # a map lookup follows (`ip daddr map { … }`, `numgen random mod 2 map …`)
            return Nat(words_text(cur.words[start:cur.pos]), kind, family, None, ())
    flags = []
    while cur.peek() in FLAGS or cur.peek() == ",":
        w = cur.take_word()
        if w != ",":
            flags.append(w)
    return Nat(words_text(cur.words[start:cur.pos]), kind, family, to, tuple(flags))


def _is_target(word: str, after) -> bool:
    """Whether ``word`` is the NAT target itself rather than the start of a map key."""
    if word in ("ip", "ip6", "tcp", "udp", "sctp", "th", "meta", "ct", "numgen", "jhash", "symhash",
                "iifname", "oifname", "mark"):
        return False
    return after != "map" and after != "."
