"""Payload expressions: header fields of the packet (``ip saddr``, ``ip6 daddr``, ``tcp dport``,
``udp sport``, ``sctp dport``, ``th dport``, ``icmp type``, ``icmpv6 type``, ``ip protocol``,
``ip6 nexthdr``, ``tcp flags``, ``ip length``, ``ip ttl``, ``ip6 hoplimit``).

The kernel checks a field's protocol before reading it: ``tcp dport 22`` matches TCP packets
only (nft adds ``meta l4proto tcp``), and ``ip saddr`` in an inet table matches IPv4 packets
only (``meta nfproto ipv4``).  Header fields the packet box does not hold (``ip id``, ``ether
saddr``, ``vlan id``…) are understood as words and fork.
"""

from __future__ import annotations

from typing import Any, Sequence

from iptexplain.core.addr import int_to_ip, parse_address, parse_ip
from iptexplain.core.errors import OptionError
from iptexplain.core.packets import (Decision, IntSet, Packets, fmt_set, masked_set, normalize, point, proto_text,
                                     span, union)
from iptexplain.core.protocols import PROTO_NUMBERS, canonical_proto
from iptexplain.ext.base import SERVICES
from iptexplain.nft.expr.base import (Cursor, FieldSelector, ForkSelector, Selector, Word, int_words, number,
                                      word_text)
from iptexplain.numbers import decimal, is_decimal, shown, strtoul

KEYWORDS = ("ip", "ip6", "tcp", "udp", "udplite", "sctp", "dccp", "th", "icmp", "icmpv6", "ether",
            "vlan", "arp", "ah", "esp", "comp", "igmp", "gre", "rt", "hbh", "frag", "dst", "mh")

PORT_PROTOS = {"tcp": 6, "udp": 17, "udplite": 136, "sctp": 132, "dccp": 33}

# nft's names of ICMP and ICMPv6 types (src/proto.c: icmp_type_tbl, icmp6_type_tbl).
ICMP_TYPES = {
    "echo-reply": 0, "destination-unreachable": 3, "source-quench": 4, "redirect": 5,
    "echo-request": 8, "router-advertisement": 9, "router-solicitation": 10, "time-exceeded": 11,
    "parameter-problem": 12, "timestamp-request": 13, "timestamp-reply": 14, "info-request": 15,
    "info-reply": 16, "address-mask-request": 17, "address-mask-reply": 18,
}
ICMPV6_TYPES = {
    "destination-unreachable": 1, "packet-too-big": 2, "time-exceeded": 3, "parameter-problem": 4,
    "echo-request": 128, "echo-reply": 129, "mld-listener-query": 130, "mld-listener-report": 131,
    "mld-listener-done": 132, "mld-listener-reduction": 132, "nd-router-solicit": 133,
    "nd-router-advert": 134, "nd-neighbor-solicit": 135, "nd-neighbor-advert": 136,
    "nd-redirect": 137, "router-renumbering": 138, "ind-neighbor-solicit": 141,
    "ind-neighbor-advert": 142, "mld2-listener-report": 143,
}
TCP_OPTION_FIELDS = ("kind", "length", "size", "count", "left", "right", "tsval", "tsecr", "value",
                     "subtype")
TCP_FLAGS = {"fin": 0x01, "syn": 0x02, "rst": 0x04, "psh": 0x08, "ack": 0x10, "urg": 0x20,
             "ecn": 0x40, "cwr": 0x80}


def _proto_value(text: str) -> int:
    if is_decimal(text):
        return decimal(text, "protocol", 255)
    name = canonical_proto(text)
    if name is None or name not in PROTO_NUMBERS:
        raise OptionError(f"unknown protocol `{text}'")
    return PROTO_NUMBERS[name]


class AddrSelector(Selector):
    """``ip saddr`` / ``ip6 daddr``: an address, a prefix or a range."""

    def __init__(self, text: str, field: str, family: int, need_family: bool) -> None:
        self.text, self.field, self.family = text, field, family
        self.bits = 32 if family == 4 else 128
        self.index_field: str | None = field  # the packet's own address (see NftRule.raw_keys)
        self.need_family = need_family

    def parse(self, words: Sequence[Word]) -> IntSet:
        t = "".join(word_text(w) for w in words)
        if "-" in t and "/" not in t:
            lo_t, _, hi_t = t.partition("-")
            try:
                lo, hi = parse_ip(lo_t, self.family)[1], parse_ip(hi_t, self.family)[1]
            except OptionError:
                raise OptionError(f"{self.text}: bad address range `{t}'") from None
            return span(lo, hi)
        try:
            a = parse_address(t, self.family)
        except OptionError as e:
            raise OptionError(f"{self.text}: {e}") from None
        s = masked_set(a.value, a.mask, self.bits)
        if s is None:
            raise OptionError(f"{self.text}: mask of `{t}' too scattered")
        return s

    def show(self, value: IntSet) -> str:
        return fmt_set(value, lambda v: int_to_ip(v, self.family), 3)

    def applies(self, pkts: Packets) -> Decision:
        if pkts.family != self.family:
            return Decision.none(pkts, f"not an IPv{self.family} packet ({self.text})")
        return Decision.all(pkts, "")

    def decide(self, pkts: Packets, ctx, value, invert: bool) -> Decision:
        if pkts.family != self.family:
            return Decision.none(pkts, f"not an IPv{self.family} packet ({self.text})")
        return Decision.split(pkts, self.field, value, invert, self.text, show=self.show)


def nft_port(text: str) -> int:
    """A port as nft reads one: a service name, or a number as its scanner reads numbers
    (``010`` is 8 and ``0x16`` is 22 there, checked with nft 1.0.9), up to 65535."""
    if text in SERVICES:
        return SERVICES[text]
    try:
        return strtoul(text, "port", 65535)
    except OptionError:
        raise OptionError(f"invalid port/service `{shown(text)}' specified") from None


def _icmp_parser(table: dict[str, int]):
    def one(t: str) -> int:
        if t in table:
            return table[t]
        return number(t)
    return one


class IcmpTypeSelector(FieldSelector):
    """``icmp type`` / ``icmpv6 type``: the box holds ``type << 8 | code``."""

    def parse(self, words: Sequence[Word]) -> IntSet:
        t = "".join(word_text(w) for w in words)
        lo_t, sep, hi_t = t.partition("-") if t not in self.names else (t, "", "")
        lo = self.names[lo_t] if lo_t in self.names else number(lo_t)
        hi = (self.names[hi_t] if hi_t in self.names else number(hi_t)) if sep else lo
        return span(lo << 8, hi << 8 | 0xFF)

    def show(self, value: IntSet) -> str:
        rev = {v: k for k, v in self.names.items()}
        parts = []
        for lo, hi in value[:4]:
            a, b = lo >> 8, hi >> 8
            parts.append(rev.get(a, str(a)) if a == b else f"{a}-{b}")
        return ",".join(parts)


class TcpFlagsSelector(FieldSelector):
    """``tcp flags syn``, ``tcp flags syn / syn,ack`` (value / mask), ``tcp flags & (…) == …``."""

    mask = 0xFF

    def parse(self, words: Sequence[Word]) -> IntSet:
        text = "".join(word_text(w) for w in words).replace("(", "").replace(")", "")
        value_t, _, mask_t = text.partition("/")
        value = tcp_flags(value_t)
        if mask_t:
            s = masked_set(value, tcp_flags(mask_t), 8)
            assert s is not None
            return s
        if self.mask != 0xFF:
            s = masked_set(value, self.mask, 8)
            assert s is not None
            return s
        # A bare flag list on a bitmask type: any of those bits set.
        out: IntSet = ()
        for bit in range(8):
            if value >> bit & 1:
                s = masked_set(1 << bit, 1 << bit, 8)
                assert s is not None
                out = union(out, s)
        return out if value else point(0)

    def masked(self, mask: int) -> Selector:
        s = TcpFlagsSelector(self.text, "tcpflags", 8, proto=point(6))
        s.mask = mask
        return s


def tcp_flags(text: str) -> int:
    v = 0
    for f in text.replace("|", ",").split(","):
        f = f.strip()
        if not f:
            continue
        v |= TCP_FLAGS[f] if f in TCP_FLAGS else number(f)
    return v


class VersionSelector(Selector):
    """``ip version 4`` / ``ip6 version 6``: the header's version field is the packet's IP
    family (LXD writes ``ip version 4 oifname "lxdbr0" accept`` in its inet table).  In an inet
    table nft adds the family check (``meta nfproto``), so the other family never matches."""

    def __init__(self, text: str, family: int) -> None:
        self.text = text
        self.family = family
        self.bits = 4

    def parse(self, words: Sequence[Word]) -> IntSet:
        return int_words(words, number, 4)

    def decide(self, pkts: Packets, ctx: Any, value: Any, invert: bool) -> Decision:
        if pkts.family != self.family:
            return Decision.none(pkts, f"not an IPv{self.family} packet ({self.text})")
        hit = any(lo <= self.family <= hi for lo, hi in value) != invert
        shown = f"{self.text} {'!= ' if invert else ''}{fmt_set(value)}"
        return Decision.all(pkts, shown) if hit else Decision.none(pkts, f"not {shown}")


def parse(cur: Cursor) -> Selector:
    """A payload selector: ``PROTO FIELD``."""
    proto = cur.take_word()
    fld = cur.peek()
    fld = fld if isinstance(fld, str) else None
    fam_dep = cur.family in ("inet", "bridge", "netdev")
    if proto in ("ip", "ip6"):
        fam = 4 if proto == "ip" else 6
        if fld in ("saddr", "daddr"):
            cur.pos += 1
            return AddrSelector(f"{proto} {fld}", "src" if fld == "saddr" else "dst", fam, fam_dep)
        if fld == "version":
            cur.pos += 1
            return VersionSelector(f"{proto} version", fam)
        if fld in ("protocol", "nexthdr"):
            cur.pos += 1
            return FieldSelector(f"{proto} {fld}", "proto", 8, _proto_value, proto_text, family=fam)
        if fld in ("length", "ttl", "hoplimit", "dscp", "tos"):
            cur.pos += 1
            box = {"length": ("length", 16), "ttl": ("ttl", 8), "hoplimit": ("ttl", 8)}.get(fld)
            if box is not None:
                return FieldSelector(f"{proto} {fld}", box[0], box[1], number, fmt_set, family=fam)
            return ForkSelector(f"{proto} {fld}")
    elif proto in PORT_PROTOS or proto == "th":
        if fld in ("sport", "dport"):
            cur.pos += 1
            p = point(PORT_PROTOS[proto]) if proto in PORT_PROTOS else None
            if proto == "th":
                p = normalize([(n, n) for n in PORT_PROTOS.values()])
            return FieldSelector(f"{proto} {fld}", fld, 16, nft_port, fmt_set, proto=p)
        if proto == "tcp" and fld == "option":
            # `tcp option maxseg size`, `tcp option sack-perm`: options the box does not hold
            cur.pos += 1
            name = cur.take_word("a TCP option")
            text = f"tcp option {name}"
            if cur.peek() in TCP_OPTION_FIELDS:
                text += f" {cur.take_word()}"
            return ForkSelector(text)
        if proto == "tcp" and fld == "flags":
            cur.pos += 1
            return TcpFlagsSelector("tcp flags", "tcpflags", 8, proto=point(6))
    elif proto in ("icmp", "icmpv6") and fld == "type":
        cur.pos += 1
        names = ICMP_TYPES if proto == "icmp" else ICMPV6_TYPES
        s = IcmpTypeSelector(f"{proto} type", "icmp", 16, proto=point(1 if proto == "icmp" else 58),
                             family=4 if proto == "icmp" else 6)
        s.names = names  # type: ignore[attr-defined]
        s.shower = s.show
        return s
    # A field the box does not hold: understood as words, decided by a fork.
    if fld is not None:
        cur.pos += 1
        return ForkSelector(f"{proto} {fld}")
    raise OptionError(f"`{proto}' needs a header field")
