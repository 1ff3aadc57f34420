"""The trace: what the tracer found, as data.  Views (rich, JSON, Graphviz) only read it.

A trace is a tree.  A :class:`Path` is a run of :class:`Step` events; it ends either in an
:class:`Outcome` or in a :class:`Fork`, where the ruleset cannot decide from the flow (a
``statistic`` rule, a ``limit``, an ipset without data, a field the user left open).  Each branch
of a fork carries the :class:`Condition` that leads into it, and may fork again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

from iptexplain.core.packets import Condition
from iptexplain.ext.libxt_tcp import SYN_FLAGS, fmt_flags
from iptexplain.graph import Rule

# A flow's port: one port, or ranges in iptables' spelling (``--dport 1:1024``, multiport's
# ``--dports 22,80,8000:8080``) as inclusive (low, high) pairs; None = any.
Ports = int | tuple[tuple[int, int], ...] | None


def ports_text(v: int | tuple[tuple[int, int], ...]) -> str:
    """A flow's port as iptables spells it: ``22``, ``1:1024``, ``22,80,8000:8080``."""
    if isinstance(v, int):
        return str(v)
    return ",".join(str(lo) if lo == hi else f"{lo}:{hi}" for lo, hi in v)


def tcp_flags_text(v: tuple[int, int, bool]) -> str:
    """``--tcp-flags`` as iptables spells it: ``! --tcp-flags SYN,RST SYN``."""
    mask, comp, inv = v
    if (mask, comp) == SYN_FLAGS:
        return f"{'! ' if inv else ''}--syn"
    return f"{'! ' if inv else ''}--tcp-flags {fmt_flags(mask)} {fmt_flags(comp)}"


@dataclass(slots=True)
class Flow:
    """The packet the user describes.  ``None`` means "any": the tracer keeps the whole range."""

    family: int = 4
    proto: str | None = None  # tcp, udp, icmp, ipv6-icmp, a name or number; None = any
    src: str | None = None  # an address or a prefix ("10.0.0.0/8")
    dst: str | None = None
    sport: Ports = None
    dport: Ports = None
    iniface: str | None = None
    outiface: str | None = None
    state: str = "NEW"  # NEW, ESTABLISHED, RELATED, INVALID, UNTRACKED
    mark: int | None = None
    icmp_type: str | None = None
    from_host: bool = False  # locally generated (OUTPUT path)
    from_container: str | None = None  # name or address of a local container (a bridge peer)
    # Trace the answer to this flow instead: the reply packet of the connection the flow opens,
    # with conntrack undoing the connection's NAT (the tracer finds the connection first).
    reply: bool = False
    # The TCP segment's flags as ``--tcp-flags`` tests them: (mask, comp, inverted); None: the
    # state's usual segment (a SYN for NEW, an ACK without SYN once ESTABLISHED, FIN/RST open).
    # With --reply they describe the reply.
    tcp_flags: tuple[int, int, bool] | None = None

    def describe(self) -> str:
        parts = [self.proto or "any-proto"]
        s = self.src or "*"
        d = self.dst or "*"
        # one port after its address (*:22); a range or list spelled as the option (--dport 1:1024)
        sp = f":{self.sport}" if isinstance(self.sport, int) else ""
        dp = f":{self.dport}" if isinstance(self.dport, int) else ""
        parts.append(f"{s}{sp} → {d}{dp}")
        for opt, v in (("--sport", self.sport), ("--dport", self.dport)):
            if v is not None and not isinstance(v, int):
                parts.append(f"{opt}{'s' if len(v) > 1 else ''} {ports_text(v)}")
        if self.tcp_flags is not None:
            parts.append(tcp_flags_text(self.tcp_flags))
        if self.iniface:
            parts.append(f"in {self.iniface}")
        if self.outiface:
            parts.append(f"out {self.outiface}")
        parts.append(self.state)
        if self.mark is not None:
            parts.append(f"mark 0x{self.mark:x}")
        if self.from_host:
            parts.append("from this host")
        if self.reply:
            parts.append("(its reply)")
        return " ".join(parts)


# Step kinds, in netfilter's words.
HOOK = "hook"  # entering a hook (PREROUTING, INPUT, FORWARD, OUTPUT, POSTROUTING)
TABLE = "table"  # a table's base chain at this hook (raw, mangle, nat, filter, security)
CONNTRACK = "conntrack"  # conntrack lookup / state decided / skipped nat for non-NEW
RULE = "rule"  # a rule looked at: matched or not, and why
JUMP = "jump"  # -j CHAIN
GOTO = "goto"  # -g CHAIN
RETURN = "return"  # back to the calling chain (RETURN or falling off a user chain)
POLICY = "policy"  # the built-in chain's policy applied
VERDICT = "verdict"  # ACCEPT / DROP / REJECT / QUEUE / … for this table
REWRITE = "rewrite"  # DNAT / SNAT / MASQUERADE / REDIRECT / MARK / CONNMARK changed the packet
ROUTE = "route"  # the routing decision (local delivery or forward via IFACE)
NOTE = "note"  # anything else worth saying (loop detected, module not understood, …)


@dataclass(slots=True)
class Step:
    kind: str
    hook: str = ""
    table: str = ""
    chain: str = ""
    rule: Rule | None = None
    matched: bool | None = None  # RULE steps: did the rule match the packet
    reason: str = ""  # why: "dport 22 ≠ 9525", "in-interface docker0 excluded", …
    verdict: str | None = None
    depth: int = 0  # chain nesting depth, 0 = the table's base chain
    detail: dict[str, Any] = field(default_factory=dict)  # e.g. rewrite before/after

    @property
    def decisive(self) -> bool:
        """Steps the default view shows: everything but rules that did not match."""
        return not (self.kind == RULE and self.matched is False)


# Outcome kinds.
DELIVERED = "delivered"  # to a local socket on this host
FORWARDED = "forwarded"  # routed out of an interface (to a container, another host…)
SENT = "sent"  # locally generated and sent out
DROPPED = "dropped"
REJECTED = "rejected"
QUEUED = "queued"  # NFQUEUE/QUEUE: user space decides
UNDECIDED = "undecided"  # the tracer cannot tell (an opaque target, a loop, depth exceeded)

PASSED = (DELIVERED, FORWARDED, SENT)


@dataclass(slots=True)
class Outcome:
    kind: str
    rule: Rule | None = None  # the rule responsible (None: a policy or the routing decision)
    summary: str = ""  # "forwarded to 172.17.0.6:9525 via docker0"
    iface: str | None = None
    reply: str | None = None  # REJECT: icmp-port-unreachable / tcp-reset
    packet: dict[str, Any] = field(default_factory=dict)  # final src/dst/ports/mark after rewrites
    # The verdict rests on rules the input did not show in full (an ``iptables -nL`` listing hides
    # -i/-o): why (None: the verdict is exact), and those rules in the order they decided.
    uncertain: str | None = None
    uncertain_rules: list[Rule] = field(default_factory=list)
    # The packets, as they entered netfilter, that end here (a Packets box; None when not
    # known): what diff, reach and lint compare between the leaves of traces.
    origin: Any = None


@dataclass(slots=True)
class Fork:
    reason: str  # what could not be decided ("statistic mode random probability 0.33333")
    branches: list[tuple[Condition, "Path"]] = field(default_factory=list)


@dataclass(slots=True)
class Path:
    steps: list[Step] = field(default_factory=list)
    outcome: Outcome | None = None
    fork: Fork | None = None


@dataclass(slots=True)
class Leaf:
    """One complete way through the tree: the conditions taken, every step, and the outcome."""

    conditions: list[Condition]
    steps: list[Step]
    outcome: Outcome

    @property
    def edge(self) -> str | None:
        """Why this way is taken only by edge packets (the first such condition), else None."""
        return next((c.edge for c in self.conditions if c.edge), None)

    @property
    def probability(self) -> float | None:
        p = 1.0
        for c in self.conditions:
            if c.probability is None:
                return None
            p *= c.probability
        return p


@dataclass(slots=True)
class Trace:
    flow: Flow
    root: Path
    notes: list[str] = field(default_factory=list)  # inferences, format losses, host model facts
    host: Any = None  # the HostModel used

    def leaves(self) -> Iterator[Leaf]:
        """Every way through the tree, depth first, branches in order.  Walked with a stack, not
        by recursion: a set-wide trace of a big chain forks once per rule it splits on (a
        kube-proxy node's services), a chain of forks thousands deep."""
        todo: list[tuple[Path, list[Condition], list[Step]]] = [(self.root, [], [])]
        while todo:
            path, conds, prefix = todo.pop()
            steps = prefix + path.steps
            if path.fork is not None:
                for cond, sub in reversed(path.fork.branches):
                    todo.append((sub, conds + [cond], steps))
            elif path.outcome is not None:
                yield Leaf(conds, steps, path.outcome)

    def outcome_kinds(self) -> set[str]:
        return {leaf.outcome.kind for leaf in self.leaves()}

    @property
    def forks(self) -> bool:
        return self._has_fork(self.root)

    def _has_fork(self, p: Path) -> bool:
        return p.fork is not None
