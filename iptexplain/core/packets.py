"""Sets of packets: what the tracer pushes through the rules instead of one packet.

A :class:`Packets` is a *box*: one set per header field (source and destination addresses, ports,
protocol, ICMP type, TCP flags, length, TTL, TOS, conntrack state) plus the values the kernel
always knows exactly for a packet at a hook (interfaces, nfmark, connmark).  A concrete flow is a
box where every set holds one point; a field the user left open is the field's full range.  A
match splits a box into the part it accepts and the part it refuses (:class:`Decision`); where both
are non-empty the tracer forks, and each branch carries the :class:`Condition` that led to it.

Integer sets are tuples of disjoint, sorted, inclusive ``(low, high)`` intervals: plain ints and
tuples, because a kube-proxy trace looks at thousands of rules and must stay well under 50 ms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from iptexplain.core.addr import int_to_ip
from iptexplain.core.protocols import PROTO_NAMES

@dataclass(slots=True)
class Condition:
    """What must hold for a branch of a fork: a label, and a probability when one is known."""

    text: str
    probability: float | None = None
    # Why every packet of this branch is an edge case, invalid or exceptional on the wire (source
    # port 0, a martian source, a broadcast destination…: :mod:`iptexplain.netfilter.edges`); None:
    # ordinary packets.
    edge: str | None = None


IntSet = tuple[tuple[int, int], ...]

EMPTY: IntSet = ()
U8: IntSet = ((0, 0xFF),)
U16: IntSet = ((0, 0xFFFF),)
U32: IntSet = ((0, 0xFFFFFFFF),)

CT_STATES = ("NEW", "ESTABLISHED", "RELATED", "INVALID", "UNTRACKED")


# ---------------------------------------------------------------------------------------------
# Interval sets.


def point(v: int) -> IntSet:
    return ((v, v),)


def span(lo: int, hi: int) -> IntSet:
    return ((lo, hi),) if lo <= hi else EMPTY


def normalize(ivs: Iterable[tuple[int, int]]) -> IntSet:
    """Sort and merge overlapping or adjacent intervals."""
    out: list[list[int]] = []
    for lo, hi in sorted(ivs):
        if lo > hi:
            continue
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1][1] = hi
        else:
            out.append([lo, hi])
    return tuple((a, b) for a, b in out)


def intersect(a: IntSet, b: IntSet) -> IntSet:
    if not a or not b:
        return EMPTY
    if len(a) == 1 and len(b) == 1:  # the common case: a point against a range
        lo = max(a[0][0], b[0][0])
        hi = min(a[0][1], b[0][1])
        return ((lo, hi),) if lo <= hi else EMPTY
    out = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo = max(a[i][0], b[j][0])
        hi = min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def subtract(a: IntSet, b: IntSet) -> IntSet:
    if not a or not b:
        return a
    out = []
    j = 0
    for lo, hi in a:
        cur = lo
        while j < len(b) and b[j][1] < cur:
            j += 1
        k = j
        while k < len(b) and b[k][0] <= hi:
            if b[k][0] > cur:
                out.append((cur, b[k][0] - 1))
            cur = max(cur, b[k][1] + 1)
            if cur > hi:
                break
            k += 1
        if cur <= hi:
            out.append((cur, hi))
    return tuple(out)


def union(a: IntSet, b: IntSet) -> IntSet:
    return normalize(a + b)


def single(a: IntSet) -> int | None:
    """The one value of a one-point set, else None."""
    if len(a) == 1 and a[0][0] == a[0][1]:
        return a[0][0]
    return None


def contains(a: IntSet, v: int) -> bool:
    for lo, hi in a:
        if lo <= v <= hi:
            return True
        if lo > v:
            return False
    return False


MAX_MASK_INTERVALS = 4096


def masked_set(value: int, mask: int, bits: int) -> IntSet | None:
    """All ``x`` of ``bits`` bits with ``x & mask == value`` as intervals; None if too many.

    A prefix mask gives one interval; a non-contiguous mask (``10.0.0.0/255.0.255.0``) gives one
    interval per combination of the free bits above its lowest set bit.
    """
    value &= mask
    full = (1 << bits) - 1
    free = full ^ mask
    # The free bits below the lowest set mask bit form each interval's width.
    low_free = (mask & -mask) - 1 if mask else full
    high_free = free & ~low_free
    n = bin(high_free).count("1")
    if n > 12:
        return None
    positions = [i for i in range(bits) if high_free >> i & 1]
    out = []
    for combo in range(1 << n):
        base = value
        for k, pos in enumerate(positions):
            if combo >> k & 1:
                base |= 1 << pos
        out.append((base, base | low_free))
    return normalize(out)


def prefix_set(value: int, mask: int, bits: int) -> IntSet:
    s = masked_set(value, mask, bits)
    if s is None:  # pragma: no cover - masks with > 12 scattered free bits are never written
        raise ValueError("mask too scattered")
    return s


def fmt_icmp(a: IntSet) -> str:
    """ICMP ``type << 8 | code`` sets as ``type/code`` (or ``type`` for all its codes)."""
    parts = []
    for lo, hi in a[:4]:
        if lo & 0xFF == 0 and hi & 0xFF == 0xFF and lo >> 8 == hi >> 8:
            parts.append(str(lo >> 8))
        elif lo == hi:
            parts.append(f"{lo >> 8}/{lo & 0xFF}")
        else:
            parts.append(f"{lo >> 8}/{lo & 0xFF}-{hi >> 8}/{hi & 0xFF}")
    return ",".join(parts) + (",…" if len(a) > 4 else "")


def fmt_set(a: IntSet, fmt=str, limit: int = 4) -> str:
    """``22``, ``1024-65535``, ``22,80,443``; long sets are cut with "…"."""
    parts = [fmt(lo) if lo == hi else f"{fmt(lo)}-{fmt(hi)}" for lo, hi in a[:limit]]
    if len(a) > limit:
        parts.append("…")
    return ",".join(parts) if parts else "∅"


# ---------------------------------------------------------------------------------------------
# The box.

@dataclass(slots=True)
class Packets:
    """A set of packets at one point of their journey, as a box of per-field sets.

    ``icmp`` holds ``type << 8 | code``.  ``ctstate`` is a frozenset of conntrack states.
    Interfaces are the names the kernel has at this hook (``None``: no such device here, as
    the out-interface in PREROUTING).  ``mark``/``connmark`` are exact: a packet enters the
    stack with mark 0 and every change is a rule the tracer applies.
    """

    family: int
    src: IntSet
    dst: IntSet
    proto: IntSet  # IP protocol numbers (IPv6: the upper-layer protocol)
    sport: IntSet = U16
    dport: IntSet = U16
    icmp: IntSet = U16
    tcpflags: IntSet = U8
    length: IntSet = U16
    ttl: IntSet = U8
    tos: IntSet = U8
    ctstate: frozenset = frozenset({"NEW"})
    iniface: str | None = None
    outiface: str | None = None
    physindev: str | None = None  # bridge port the packet came in on (br_netfilter)
    physoutdev: str | None = None
    mark: int = 0
    connmark: int = 0
    fragment: bool = False
    from_host: bool = False  # locally generated (owner, OUTPUT)
    extra: dict[str, Any] = field(default_factory=dict)  # uid/gid/secmark/… for modules

    def copy(self, **changes: Any) -> "Packets":
        c = Packets(
            self.family, self.src, self.dst, self.proto, self.sport, self.dport, self.icmp,
            self.tcpflags, self.length, self.ttl, self.tos, self.ctstate, self.iniface,
            self.outiface, self.physindev, self.physoutdev, self.mark, self.connmark,
            self.fragment, self.from_host, dict(self.extra),
        )
        for k, v in changes.items():
            setattr(c, k, v)
        return c

    @property
    def bits(self) -> int:
        return 32 if self.family == 4 else 128

    def addr_text(self, name: str) -> str:
        value = getattr(self, name)
        label = self.extra.get("labels", {}).get(name)
        if label is not None and label[0] == value:
            return label[1]
        return fmt_set(value, lambda v: int_to_ip(v, self.family), limit=3)

    def summary(self) -> dict[str, Any]:
        """The fields a view shows for an outcome (final addresses and ports after rewrites)."""
        out: dict[str, Any] = {"src": self.addr_text("src"), "dst": self.addr_text("dst")}
        p = single(self.proto)
        out["proto"] = PROTO_NAMES.get(p, str(p)) if p is not None else fmt_set(self.proto)
        if p in (6, 17, 132, 33, 136):
            out["sport"] = fmt_set(self.sport)
            out["dport"] = fmt_set(self.dport)
        if self.mark:
            out["mark"] = f"0x{self.mark:x}"
        if self.connmark:
            out["connmark"] = f"0x{self.connmark:x}"
        out["ctstate"] = ",".join(s for s in CT_STATES if s in self.ctstate)
        return out


# ---------------------------------------------------------------------------------------------
# What a match says about a set of packets.


@dataclass(slots=True)
class Decision:
    """A match's answer: the part of ``pkts`` it accepts, the part it refuses, and why.

    ``matched``/``unmatched`` are None when that part is empty.  When both are present the
    tracer forks; ``yes``/``no`` are the conditions of the two branches.  An undecidable match
    (``limit``, ``statistic``, an ipset without data) returns the whole set on both sides with
    ``undecidable=True`` and the conditions that label the fork; ``probability`` is the chance
    of the matched side when the module knows it (``statistic --mode random``).
    """

    matched: Packets | None
    unmatched: Packets | None
    reason: str = ""
    yes: Condition | None = None
    no: Condition | None = None
    undecidable: bool = False
    probability: float | None = None
    # Further refused parts (a rule of several tests refuses a union of boxes), each with the
    # condition of its branch; ``unmatched``/``no`` is the first of them.
    rest: list[tuple[Packets, Condition | None]] = field(default_factory=list)
    # What a fork on this decision is about: the tests that split (without those that passed).
    label: str = ""

    def refused(self) -> list[tuple[Packets, Condition | None]]:
        """Every refused part with the condition of its branch."""
        if self.unmatched is None:
            return []
        return [(self.unmatched, self.no)] + self.rest

    @staticmethod
    def against(pkts: Packets, have: IntSet, accept: IntSet, invert: bool, what: str,
                show: str) -> "Decision":
        """Decide on a value the box does not hold (a conntrack tuple already rewritten):
        where it is known to lie on one side the answer is exact, otherwise a fork."""
        inside = intersect(have, accept)
        outside = subtract(have, inside) if inside else have
        if invert:
            inside, outside = outside, inside
        if not outside:
            return Decision(pkts, None, f"{what} {'!' if invert else ''}{show}")
        if not inside:
            return Decision(None, pkts, f"{what} not {'!' if invert else ''}{show}")
        return Decision.fork(pkts, f"{what} {show}", f"{what} {'not ' if invert else ''}in {show}",
                             f"{what} {'' if invert else 'not '}in {show}")

    @staticmethod
    def conjunction(pkts: Packets, tests: Sequence) -> "Decision":
        """All tests of one module, in order: the kernel stops at the first that fails."""
        if not tests:
            return Decision.all(pkts, "")
        if len(tests) == 1:
            return tests[0](pkts)
        matched, refused, taken = conjoin(pkts, tests)
        yes_texts: list[str] = []
        prob: float | None = None
        undecidable = False
        parts: list[tuple[Packets, Condition | None]] = []
        for d in taken:
            undecidable |= d.undecidable
            if d.matched is not None and d.unmatched is not None:
                if d.no is not None:
                    pre = " and ".join(yes_texts)
                    parts.append((d.unmatched, Condition((pre + " and " if pre else "") + d.no.text,
                                                         d.no.probability)))
                if d.yes is not None:
                    yes_texts.append(d.yes.text)
                if d.probability is not None:
                    prob = (prob or 1.0) * d.probability
            elif d.matched is None:
                parts.append((d.unmatched, None))
        reasons = "; ".join(d.reason for d in taken if d.reason)
        if matched is None:
            reason = taken[-1].reason
        else:
            reason = reasons
        yes = Condition(" and ".join(yes_texts), prob) if yes_texts else None
        label = "; ".join(d.label or d.reason for d in taken if d.matched is not None and d.unmatched is not None)
        if not parts:
            return Decision(matched, None, reason, yes, None, undecidable, prob, label=label)
        first, rest = parts[0], parts[1:]
        return Decision(matched, first[0], reason, yes, first[1], undecidable, prob, rest, label)

    @staticmethod
    def all(pkts: Packets, reason: str) -> "Decision":
        return Decision(pkts, None, reason)

    @staticmethod
    def none(pkts: Packets, reason: str) -> "Decision":
        return Decision(None, pkts, reason)

    @staticmethod
    def fork(pkts: Packets, reason: str, yes: str, no: str, probability: float | None = None) -> "Decision":
        """The ruleset cannot decide: both sides hold every packet, each with its condition."""
        return Decision(
            pkts, pkts, reason,
            Condition(yes, probability), Condition(no, None if probability is None else 1 - probability),
            undecidable=True, probability=probability,
        )

    @staticmethod
    def split(pkts: Packets, name: str, accept: IntSet, invert: bool, what: str,
              show=fmt_set) -> "Decision":
        """Split on one integer-set field: packets whose ``name`` lies in ``accept`` match
        (outside it with ``invert``).  ``what`` names the field for the reasons ("dport")."""
        have = getattr(pkts, name)
        inside = intersect(have, accept)
        outside = subtract(have, inside) if inside else have
        if invert:
            inside, outside = outside, inside
        acc = show(accept)
        hv = show(have)
        exact = single(have) is not None and single(accept) is not None
        if not outside:
            if exact and not invert:
                return Decision(pkts, None, f"{what} {hv}")
            return Decision(pkts, None, f"{what} {hv} {'∉' if invert else '∈'} {acc}")
        if not inside:
            if exact and not invert:
                return Decision(None, pkts, f"{what} {hv} ≠ {acc}")
            return Decision(None, pkts, f"{what} {hv} {'∈' if invert else '∉'} {acc}")
        return Decision(
            pkts.copy(**{name: inside}), pkts.copy(**{name: outside}),
            f"{what} {'!' if invert else ''}{acc}",
            Condition(f"{what} {'not in' if invert else 'in'} {acc}"),
            Condition(f"{what} {'in' if invert else 'not in'} {acc}"),
        )

    @staticmethod
    def states(pkts: Packets, name: str, accept: frozenset, invert: bool, what: str) -> "Decision":
        have: frozenset = getattr(pkts, name)
        inside = have & accept
        outside = have - accept
        if invert:
            inside, outside = outside, inside
        acc = ",".join(sorted(accept))
        hv = ",".join(sorted(have))
        if not outside:
            return Decision(pkts, None, f"{what} {hv} {'∉' if invert else '∈'} {acc}")
        if not inside:
            return Decision(None, pkts, f"{what} {hv} {'∈' if invert else '∉'} {acc}")
        return Decision(
            pkts.copy(**{name: inside}), pkts.copy(**{name: outside}), f"{what} {'!' if invert else ''}{acc}",
            Condition(f"{what} {','.join(sorted(inside))}"), Condition(f"{what} {','.join(sorted(outside))}"),
        )


def conjoin(pkts: Packets, deciders: Sequence) -> tuple[Packets | None, list[tuple[Packets, Decision]], list[Decision]]:
    """Run a rule's matches in order (the kernel stops at the first that fails).

    Returns the packets every match accepts, the refused parts each with the decision that
    refused them, and the decisions along the accepted side (for reasons).
    """
    refused: list[tuple[Packets, Decision]] = []
    taken: list[Decision] = []
    cur: Packets | None = pkts
    for d in deciders:
        dec = d(cur)
        taken.append(dec)
        if dec.unmatched is not None:
            refused.append((dec.unmatched, dec))
        cur = dec.matched
        if cur is None:
            break
    return cur, refused, taken


def proto_text(s: IntSet) -> str:
    """A set of IP protocol numbers in iptables' words (``tcp``, ``udp,47``)."""
    return fmt_set(s, lambda v: PROTO_NAMES.get(v, str(v)))
