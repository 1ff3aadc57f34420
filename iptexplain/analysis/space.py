"""Regions of packet space: the boxes (:class:`~iptexplain.core.packets.Packets`) that the
tracer's leaves carry as ``Outcome.origin``, compared, merged, said in words, and turned back into
concrete packets and flows.

The analyses (diff, reach, lint) never sample to find an answer: they trace a whole entry set,
take each leaf's origin box (the entry packets that end there), and intersect boxes of different
traces.  Sampling is only for checking (``sample_flows``), and for the one example packet a class
shows.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterator

from iptexplain.analysis.scenarios import Scenario
from iptexplain.core.addr import int_to_ip, parse_address, parse_ip
from iptexplain.core.packets import (U8, U16, IntSet, Packets, contains, fmt_icmp, fmt_set, intersect,
                                     single, subtract, union)
from iptexplain.core.protocols import PROTO_NAMES
from iptexplain.netfilter.trace import Flow

# The fields a box region is made of (the tracer narrows these at its forks), and ctstate.
FIELDS = ("src", "dst", "proto", "sport", "dport", "icmp", "tcpflags", "length", "ttl", "tos")
PORT_PROTOS = frozenset({6, 17, 33, 132, 136})
ICMP_PROTOS = frozenset({1, 58})
TCP_FLAG_NAMES = ((0x01, "FIN"), (0x02, "SYN"), (0x04, "RST"), (0x08, "PSH"), (0x10, "ACK"), (0x20, "URG"))


def meet(a: Packets, b: Packets) -> Packets | None:
    """The packets in both boxes, or None when there are none."""
    changes: dict[str, object] = {}
    for f in FIELDS:
        x, y = getattr(a, f), getattr(b, f)
        if x == y:
            continue
        s = intersect(x, y)
        if not s:
            return None
        changes[f] = s
    if a.ctstate != b.ctstate:
        st = a.ctstate & b.ctstate
        if not st:
            return None
        changes["ctstate"] = st
    return a.copy(**changes) if changes else a


def covers(a: Packets, b: Packets) -> bool:
    """Every packet of ``b`` is in ``a``."""
    for f in FIELDS:
        x, y = getattr(a, f), getattr(b, f)
        if x != y and subtract(y, x):
            return False
    return b.ctstate <= a.ctstate


def merge_boxes(boxes: list[Packets]) -> list[Packets]:
    """Fewer boxes for the same packets: two boxes equal but in one field become one box with
    the union of that field (repeated until nothing merges); a box inside another goes."""
    out = list(boxes)
    changed = True
    while changed and len(out) > 1:
        changed = False
        i = 0
        while i < len(out):
            j = i + 1
            while j < len(out):
                m = _merge_two(out[i], out[j])
                if m is not None:
                    out[i] = m
                    del out[j]
                    changed = True
                else:
                    j += 1
            i += 1
    return out


def _merge_two(a: Packets, b: Packets) -> Packets | None:
    if covers(a, b):
        return a
    if covers(b, a):
        return b
    diff = [f for f in FIELDS if getattr(a, f) != getattr(b, f)]
    if a.ctstate != b.ctstate:
        if diff:
            return None
        return a.copy(ctstate=a.ctstate | b.ctstate)
    if len(diff) != 1:
        return None
    f = diff[0]
    return a.copy(**{f: union(getattr(a, f), getattr(b, f))})


def size(s: IntSet) -> int:
    return sum(hi - lo + 1 for lo, hi in s)


# ---------------------------------------------------------------------------------------------
# Words.


def cidrs(s: IntSet, bits: int) -> list[tuple[int, int]]:
    """An address set as (network, prefix length) blocks, in order."""
    out = []
    for lo, hi in s:
        while lo <= hi:
            plen = bits
            # the largest block starting at lo that fits in [lo, hi]
            while plen > 0:
                step = 1 << (bits - plen + 1)
                if lo % step or lo + step - 1 > hi:
                    break
                plen -= 1
            out.append((lo, plen))
            lo += 1 << (bits - plen)
    return out


def _hull_holes(s: IntSet, family: int) -> tuple[str, str, IntSet] | None:
    """``("10.244.0.0/16", "10.244.0.0/24", the holes)`` when ``s`` is one block with one or two
    holes (and more than two blocks as CIDRs), else None."""
    bits = 32 if family == 4 else 128
    blocks = cidrs(s, bits)
    if len(blocks) > 2:
        lo, hi = s[0][0], s[-1][1]
        plen = bits - (lo ^ hi).bit_length()
        net = lo >> (bits - plen) << (bits - plen) if plen < bits else lo
        hull = ((net, net | ((1 << (bits - plen)) - 1)),)
        holes = cidrs(subtract(hull, s), bits)
        if 0 < len(holes) <= 2:
            show = lambda v, p: int_to_ip(v, family) + ("" if p == bits else f"/{p}")  # noqa: E731
            return show(net, plen), ",".join(show(v, p) for v, p in holes), subtract(hull, s)
    return None


def addr_words(s: IntSet, family: int, limit: int = 3) -> str:
    """An address set as CIDR blocks; a block with a few holes as "10.244.0.0/16 but
    10.244.0.0/24"."""
    bits = 32 if family == 4 else 128
    hh = _hull_holes(s, family)
    if hh is not None:
        return f"{hh[0]} but {hh[1]}"
    blocks = cidrs(s, bits)
    parts = [int_to_ip(v, family) + ("" if p == bits else f"/{p}") for v, p in blocks[:limit]]
    if len(blocks) > limit:
        parts.append(f"… ({len(blocks)} blocks)")
    return ",".join(parts) if parts else "∅"


def set_words(s: IntSet, whole: IntSet, show, limit: int = 4) -> str:
    """A set, or "not X" when what is missing from ``whole`` is shorter to say."""
    rest = subtract(whole, s)
    if rest and len(rest) < len(s):
        return "not " + show(rest, limit)
    return show(s, limit)


def proto_words(s: IntSet) -> str:
    def show(x: IntSet, limit: int) -> str:
        names = []
        for lo, hi in x[:limit]:
            names += [PROTO_NAMES.get(v, str(v)) for v in range(lo, hi + 1)] if hi - lo < 4 else [f"{lo}-{hi}"]
        return ",".join(names[:6]) + (",…" if len(names) > 6 or len(x) > limit else "")

    if s == ((0, 255),):
        return "any protocol"
    return set_words(s, ((0, 255),), show)


def flags_words(s: IntSet) -> str:
    vals = [v for lo, hi in s for v in range(lo, hi + 1)]
    if len(vals) == 1:
        return "+".join(n for b, n in TCP_FLAG_NAMES if vals[0] & b) or "none"
    return f"{len(vals)} flag combinations"


def box_words(box: Packets, entry: Packets | None = None, entry_words: dict[str, str] | None = None,
              names: list[tuple[IntSet, str]] | None = None) -> str:
    """``tcp from 10.0.0.0/8 to 198.51.100.1:22``: a box in words, each field said only where it
    narrows the ``entry`` box (whose own words, like "any address via eth0", ``entry_words``
    gives)."""
    fam = box.family
    ew = entry_words or {}

    def narrowed(f: str) -> bool:
        return entry is None or getattr(box, f) != getattr(entry, f)

    def addr(f: str) -> str:
        if not narrowed(f):
            return ew.get(f, "any")
        have = getattr(box, f)
        for s, name in names or ():
            if have == s:
                return name
            if have and not subtract(have, s) and len(cidrs(subtract(s, have), box.bits)) <= 2 \
                    and len(cidrs(have, box.bits)) > 2:
                return f"{name} but {addr_words(subtract(s, have), fam)}"
        whole = getattr(entry, f) if entry is not None else ((0, (1 << box.bits) - 1),)
        full = ((0, (1 << box.bits) - 1),)
        # "any address via eth0 but 10.0.0.0/8": the fewest blocks outside the box that, taken
        # from the entry set, leave exactly the box
        blocks = [(v, p) for v, p in cidrs(subtract(full, have), box.bits)
                  if intersect(((v, v + (1 << (box.bits - p)) - 1),), whole)]
        if entry is not None and blocks and len(blocks) < len(cidrs(have, box.bits)):
            rest = tuple((v, v + (1 << (box.bits - p)) - 1) for v, p in blocks)
            hh = _hull_holes(rest, fam)
            if hh is not None and not subtract(hh[2], whole):
                # not "any … but 10.42.0.0/16 but 10.42.0.7": what is outside the block, or in a hole
                return f"{ew.get(f, 'any')} outside {hh[0]}, or {hh[1]}"
            return f"{ew.get(f, 'any')} but {addr_words(rest, fam)}"
        return addr_words(have, fam)

    p = single(box.proto)
    words = [proto_words(box.proto)]
    src, dst = addr("src"), addr("dst")
    ported = bool(box.proto) and all(v in PORT_PROTOS for lo, hi in box.proto for v in range(lo, min(hi, lo + 8) + 1))
    if ported and box.sport != U16:
        src += ":" + set_words(box.sport, U16, lambda x, n: fmt_set(x, limit=n))
    if ported and box.dport != U16:
        dst += ":" + set_words(box.dport, U16, lambda x, n: fmt_set(x, limit=n))
    words.append(f"from {src} to {dst}")
    if p in ICMP_PROTOS and box.icmp != U16:
        words.append(f"type {fmt_icmp(box.icmp)}")
    if p == 6 and narrowed("tcpflags") and box.tcpflags != U8:
        words.append(f"flags {flags_words(box.tcpflags)}")
    for f, what in (("length", "length"), ("ttl", "ttl"), ("tos", "tos")):
        if narrowed(f) and getattr(box, f) != (U16 if f == "length" else U8):
            words.append(f"{what} {fmt_set(getattr(box, f))}")
    if entry is not None and box.ctstate != entry.ctstate:
        words.append(",".join(sorted(box.ctstate)))
    return " ".join(words)


MARTIANS = {4: ("0.0.0.0/8", "127.0.0.0/8", "224.0.0.0/3"), 6: ("::1/128", "::/128", "ff00::/8")}


def without_martians(box: Packets, loopback: bool) -> Packets | None:
    """The box without the destinations the kernel's input routing drops before any rule can
    decide (``ip_route_input``: 0/8, 127/8 from outside, multicast and class E) -- they are not
    reachable, and never a difference.  Packets on lo keep them."""
    if loopback or box.from_host:
        return box

    dst = box.dst
    for text in MARTIANS[box.family]:
        a = parse_address(text, box.family)
        dst = subtract(dst, ((a.first(), a.last()),))
    if not dst:
        return None
    return box.copy(dst=dst) if dst != box.dst else box


# ---------------------------------------------------------------------------------------------
# Concrete packets.

PREFERRED = {
    "proto": (6, 17, 1, 58),
    "sport": (40000, 50000, 1024),
    "dport": (80, 443, 22, 8080, 53, 1024),
    "icmp": (8 << 8, 128 << 8),
    "tcpflags": (0x02, 0x10),
    "length": (60, 100),
    "ttl": (64,),
    "tos": (0,),
}
NICE_ADDRS = {4: ("203.0.113.7", "198.51.100.7", "192.0.2.7", "10.1.2.3", "172.16.5.4", "192.168.1.20",
                  "8.8.8.8"),
              6: ("2001:db8::7", "2001:db8:1::7", "fd00::7")}


def pick(s: IntSet, f: str, family: int) -> int:
    """One value of a set: a familiar one when the set has it (203.0.113.7, port 40000, SYN)."""
    if f in ("src", "dst"):
        for a in NICE_ADDRS[family]:
            v = parse_ip(a, family)[1]
            if contains(s, v):
                return v
        for lo, hi in s:  # not a network or broadcast-looking address where there is a choice
            for v in (lo, lo + 1, lo + 2):
                if v <= hi and v & 0xFF not in (0, 255):
                    return v
        return s[0][0]
    for v in PREFERRED.get(f, ()):
        if contains(s, v):
            return v
    return s[0][0]


def example(box: Packets, prefer: dict[str, list[int]] | None = None) -> Packets:
    """One concrete packet of the box (``prefer``: values to take where the box has them, as
    the address of the interface the packet arrives on)."""
    def value(f: str) -> int:
        for v in (prefer or {}).get(f, ()):
            if contains(getattr(box, f), v):
                return v
        return pick(getattr(box, f), f, box.family)

    values = {f: value(f) for f in FIELDS}
    if values["src"] == values["dst"]:
        # a packet to its own sender says little: another destination where the box has one
        other = next((v for lo, hi in box.dst for v in (lo, lo + 1, lo + 2, hi) if lo <= v <= hi
                      and v != values["src"] and v & 0xFF not in (0, 255)), None)
        if other is not None:
            values["dst"] = other
    return box.copy(**{f: ((v,) * 2,) for f, v in values.items()},
                    ctstate=frozenset({sorted(box.ctstate)[0]}) if box.ctstate else box.ctstate)


def sample(box: Packets, rng: random.Random) -> Packets:
    """A random concrete packet of the box (the property tests' probe)."""
    def draw(s: IntSet) -> int:
        total = size(s)
        k = rng.randrange(total)
        for lo, hi in s:
            if k <= hi - lo:
                return lo + k
            k -= hi - lo + 1
        raise AssertionError(s)  # pragma: no cover

    return box.copy(**{f: ((draw(getattr(box, f)),) * 2,) for f in FIELDS},
                    ctstate=frozenset({rng.choice(sorted(box.ctstate))}))


def packet_words(p: Packets) -> str:
    """A concrete packet: ``tcp 203.0.113.7:40000 → 198.51.100.1:22``."""
    fam = p.family
    proto = single(p.proto)
    name = PROTO_NAMES.get(proto, str(proto))
    src = int_to_ip(single(p.src), fam)
    dst = int_to_ip(single(p.dst), fam)
    if fam == 6 and proto in PORT_PROTOS:
        src, dst = f"[{src}]", f"[{dst}]"
    if proto in PORT_PROTOS:
        src += f":{single(p.sport)}"
        dst += f":{single(p.dport)}"
    out = f"{name} {src} → {dst}"
    if proto in ICMP_PROTOS:
        t = single(p.icmp)
        out += f" type {t >> 8}/{t & 0xFF}"
    return out


def packet_flow(p: Packets, scenario: Flow, whole_src: bool = True) -> Flow:
    """The concrete packet ``p`` (one value per field) of an entry scenario, as a Flow that
    ``trace_flow`` takes.  A source left open on a host's own packet stays open (routing
    chooses it) unless the box it was drawn from narrows it (``whole_src`` False)."""
    fam = p.family
    proto = single(p.proto)
    icmp = single(p.icmp)
    src = int_to_ip(single(p.src), fam)
    if scenario.from_host and scenario.src is None and p.extra.get("src_open") and whole_src:
        src = None
    return Flow(
        family=fam, proto=PROTO_NAMES.get(proto, str(proto)), src=src, dst=int_to_ip(single(p.dst), fam),
        sport=single(p.sport) if proto in PORT_PROTOS else None,
        dport=single(p.dport) if proto in PORT_PROTOS else None,
        iniface=scenario.iniface, state=sorted(p.ctstate)[0] if p.ctstate else scenario.state,
        mark=scenario.mark, icmp_type=f"{icmp >> 8}/{icmp & 0xFF}" if proto in ICMP_PROTOS else None,
        from_host=scenario.from_host, from_container=scenario.from_container,
    )


@dataclass
class Region:
    """A union of boxes (what a class of packets is)."""

    boxes: list[Packets]

    def __iter__(self) -> Iterator[Packets]:
        return iter(self.boxes)


class PacketClass:
    """What a class of packets found by an analysis (a diff's changed packets, lint's undone
    ones) says of itself: its boxes in words, one example packet, and the flow that sends it.
    The class holds ``scenario``, ``boxes``, ``entry``, ``entry_words``, ``names`` and
    ``prefer_dst`` (the address of the entry interface, preferred for the example)."""

    scenario: Scenario
    boxes: list[Packets]
    entry: Packets | None
    entry_words: dict[str, str]
    names: list
    prefer_dst: list[int]

    def words(self, limit: int = 3) -> list[str]:
        return [box_words(b, self.entry, self.entry_words, self.names) for b in self.boxes[:limit]]

    @property
    def example(self) -> Packets:
        return example(self.boxes[0], {"dst": self.prefer_dst})

    def example_flow(self) -> Flow:
        b = self.boxes[0]
        return packet_flow(self.example, self.scenario.flow, whole_src=b.src == ((0, (1 << b.bits) - 1),))

    def example_words(self) -> str:
        return packet_words(self.example)
