"""One branch of the walk and the tree it grows: the state a branch carries through the hooks,
and how a branch ends (an outcome) or splits (a fork).

Every step module of the tracer (:mod:`.pipeline`, :mod:`.chainwalk`, :mod:`.conntrack`,
:mod:`.routesteps`, :mod:`.replies`) is a mixin over :class:`Branching`: they share the trace's
bookkeeping -- the work list, the leaves counted against the branch limit, the outcomes -- and
nothing else.  :class:`~.tracer.Tracer` composes them and builds that bookkeeping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from iptexplain.core.context import Connection
from iptexplain.core.packets import Decision, IntSet, Packets
from iptexplain.graph import Chain, Rule, Ruleset, Table
from iptexplain.host.model import HostModel
from iptexplain.netfilter import hooks as H
from iptexplain.netfilter import trace as T
from iptexplain.netfilter.edges import edge_of
from iptexplain.netfilter.routing import RouteResult, Router
from iptexplain.netfilter.trace import Condition, Fork, Outcome, Path, Step

# What Ruleset.unseen(rule) says a rule may test unseen, in words for the trace.
UNSEEN_WHY = {
    "interfaces": "interfaces hidden by the -nL listing",
    "address": "an address printed as a name that could not be read back",
    "match": "match text the listing could not read back",
    "filled": "hidden interfaces filled in from a tool's standard rules",
}

# Ruleset.hidden kinds that make a rule's match uncertain, and why.
HIDDEN_PARTS = {
    "interfaces": "the listing hides -i/-o (iptables -L without -v)",
    "names": "addresses and ports were read back from names (iptables -L without -n)",
    "matches": "some match text could not be read back",
    "options": "the listing does not print some module options",
}


MAX_BRANCHES = 256  # leaves of the trace tree before forks stop being followed


@dataclass(slots=True)
class Frame:
    """A chain being walked: the jump stack holds one per chain entered with -j."""

    chain: Chain
    index: int  # next rule to look at
    # The chains this frame's chain was reached through with -g (each goto replaces the frame):
    # with them the frames spell the walk's path in the chain graph, where a goto loop shows.
    via: tuple[str, ...] = ()


@dataclass(slots=True)
class State:
    """Where one branch of the walk is, and what it carries: its packets, its connection,
    its phase and entry in the hook, its jump stack."""

    pkts: Packets
    conn: Connection
    phase: str  # PREROUTING, ROUTE, INPUT, FORWARD, OUTPUT, REROUTE, POSTROUTING, LOCAL_ROUTE
    entry: int = 0  # index into the hook's entries
    frames: list[Frame] = field(default_factory=list)
    base: Chain | None = None  # the table's base chain (its policy ends the traversal)
    table: Table | None = None
    local_out: bool = False  # locally generated
    looped: bool = False  # came back in through lo
    route: RouteResult | None = None
    out_dst: IntSet = ()  # destination and mark OUTPUT started with (for the re-route)
    out_mark: int = 0
    notrack: bool = False
    nat_init: frozenset = frozenset()  # manip types ("DST", "SRC") already set up
    flow_state: frozenset = frozenset({"NEW"})
    # deciding rules on this path whose unseen parts (a -L listing) may change them
    uncertain: tuple[Rule, ...] = ()
    resume: tuple[Rule, Decision] | None = None  # a fork's matched branch: apply this rule next
    # rules whose hidden -i/-o this branch has already forked on (id()), and what else the
    # verdict rests on that no rule shows (a built-in chain the input lacks, a missing table)
    assumed: frozenset = frozenset()
    doubts: tuple[str, ...] = ()
    # rules (id()) this branch took as excluding its packets by a hidden -i/-o: skipped when met
    # again (a later packet of the same way)
    excluded: frozenset = frozenset()
    # built-in chains the input never showed whose policy this branch took ("filter INPUT")
    unknown: tuple[str, ...] = ()
    # The entry packets that take this branch (Outcome.origin), and the header fields rewritten
    # since the entry: a fork narrows the origin only on fields that still hold entry values.
    origin: Packets | None = None
    rewritten: frozenset = frozenset()

    def clone(self, pkts: Packets | None = None) -> "State":
        return State(
            pkts if pkts is not None else self.pkts, self.conn.copy(), self.phase, self.entry,
            [Frame(f.chain, f.index, f.via) for f in self.frames], self.base, self.table, self.local_out,
            self.looped, self.route, self.out_dst, self.out_mark, self.notrack, self.nat_init,
            self.flow_state, self.uncertain, self.resume, self.assumed, self.doubts, self.excluded,
            self.unknown, self.origin, self.rewritten,
        )

    def doubt(self, why: str) -> None:
        """The verdict will rest on something the input does not show (said once)."""
        if why not in self.doubts:
            self.doubts = self.doubts + (why,)

    def rewrite(self, before: Packets, after: Packets) -> None:
        """Record the header fields a target (or conntrack's NAT, or routing) changed."""
        self.rewritten = self.rewritten | {f for f in ORIGIN_FIELDS if getattr(before, f) != getattr(after, f)}


# The header fields of Packets that a fork may narrow: Outcome.origin follows them back to the
# packets that entered netfilter.
ORIGIN_FIELDS = ("src", "dst", "proto", "sport", "dport", "icmp", "tcpflags", "length", "ttl", "tos")


def narrow_origin(st: State, sub: State) -> None:
    """``sub`` forked from ``st``: its origin is ``st``'s, narrowed on each field the fork split
    that no rewrite has touched (a field rewritten earlier keeps the wider origin)."""
    if st.origin is None:
        return
    changes = {f: getattr(sub.pkts, f) for f in ORIGIN_FIELDS
               if f not in st.rewritten and getattr(sub.pkts, f) != getattr(st.pkts, f)}
    if ("ctstate" not in st.rewritten and sub.pkts.ctstate != st.pkts.ctstate
            and st.pkts.ctstate <= st.origin.ctstate):  # after conntrack gave the flow's states
        changes["ctstate"] = sub.pkts.ctstate
    sub.origin = st.origin.copy(**changes) if changes else st.origin


class Stop(Exception):
    """Internal: the branch ended (outcome or fork recorded on its path)."""



class Branching:
    """The trace tree's bookkeeping, shared by the step mixins (built by ``Tracer.__init__``)."""

    rs: Ruleset
    host: HostModel
    family: int
    backend: str
    router: Router
    ipsets: Any
    verbose: bool
    max_branches: int
    leaves: int
    capped: bool
    notes: list[str]
    stat_forks: set[int]  # id() of forks made by statistic-like probabilities
    finals: list[tuple[State, Outcome]]
    hidden_why: str
    missing_tables: tuple[str, ...]  # tables whose rules the input does not show (unknown, not empty)
    hidden_forks: set[int]  # id() of forks made on a rule's hidden -i/-o
    lacking: tuple[State, Path] | None  # the first way to end while the input lacks tables
    work: list[tuple[State, Path]]
    reply_depth: int  # >0 while tracing REJECT's answer (whose own REJECT is not followed)
    hook_rows: dict[str, tuple[H.HookEntry, ...]]  # each hook's entries, once computed

    def _finish(self, st: State, path: Path, kind: str, summary: str, rule: Rule | None = None,
                **kw: Any) -> None:
        whys: list[str] = []
        if st.uncertain:
            kinds = {w for r in st.uncertain for w in self._unseen(r)}
            filled = [f for r in st.uncertain if (f := self.rs.filled.get(r)) is not None]
            some = sorted({f.tool for f in filled if f.iniface or f.outiface})
            none = sorted({f.tool for f in filled if not (f.iniface or f.outiface)} - set(some))
            whys += [UNSEEN_WHY.get(w, w) for w in sorted(kinds - {"filled"})]
            if some:
                whys.append(f"hidden -i/-o filled in from {' and '.join(some)}'s standard rules")
            if none:
                whys.append(f"rules taken to have no -i/-o, as {' and '.join(none)}'s standard rules have none")
            kw["uncertain_rules"] = list(st.uncertain)
        whys += [d for d in st.doubts if d not in whys]
        whys += [d for d in self._missing_doubts(st, kind) if d not in whys]
        if whys:
            kw["uncertain"] = "; ".join(whys)
        out = Outcome(kind, rule, summary, packet=st.pkts.summary(), origin=st.origin, **kw)
        path.outcome = out
        self.finals.append((st, out))
        if self.reply_depth == 0 and self.lacking is None and (self._missing_for(st) or st.unknown):
            self.lacking = (st, path)  # the first way: where the lacking tables' ways are shown
        raise Stop

    def _lacking_ways(self, root: Path) -> None:
        """Tables the input lacks could have ended the packet's journey otherwise, whatever way
        it took: dropped by one of them, rejected, or rewritten by the missing nat table to where
        the input cannot say.  Shown once, as a fork after the first way (every way carries the
        doubt in its outcome)."""
        if self.lacking is None:
            return
        st = self.lacking[0]
        path = root
        while path.fork is not None:  # the first way (forks folded since keep their first way)
            path = path.fork.branches[0][1]
        out = path.outcome
        if out is None:
            return
        alts = self._missing_ways(st, out)
        if not alts:
            return
        lacking = self._missing_for(st) + [c for c in st.unknown if c.split()[0] not in self._missing_for(st)]
        fork = Fork("what the tables and chains the input lacks could do: " + ", ".join(lacking))
        fork.branches.append((Condition("if what the input lacks lets it through unchanged"), Path([], out)))
        fork.branches += [(c, Path([], o)) for c, o in alts]
        self.leaves += len(alts)
        path.outcome, path.fork = None, fork

    def _missing_for(self, st: State) -> list[str]:
        missing = [t for t in ("raw", "mangle", "nat", "filter") if t in self.missing_tables]
        if "NEW" not in st.flow_state and "nat" in missing:
            missing.remove("nat")  # the nat chains see a connection's first packet only
        return missing

    def _missing_ways(self, st: State, out: Outcome) -> list[tuple[Condition, Outcome]]:
        """The other ways the packet can end because the input lacks tables: dropped by one of
        them, or rewritten by the missing nat table to where the input cannot say."""
        missing = self._missing_for(st)
        why = "; ".join(self._missing_doubts(st, out.kind))
        ways: list[tuple[Condition, Outcome]] = []
        droppers = [f"the {t} table" for t in missing if t != "nat"]
        droppers += [c for c in st.unknown if c.split()[0] not in missing]
        if droppers and out.kind not in (T.DROPPED, T.REJECTED):
            who = " or ".join(droppers)
            ways.append((Condition(f"if {who} (not in the input) drops it"),
                         Outcome(T.DROPPED, None, f"dropped by {who}, which the input lacks",
                                 packet=st.pkts.summary(), uncertain=why or None)))
        if "filter" in missing and out.kind != T.REJECTED:
            ways.append((Condition("if the filter table (not in the input) rejects it"),
                         Outcome(T.REJECTED, None, "rejected by the filter table the input lacks",
                                 packet=st.pkts.summary(), uncertain=why)))
        if "nat" in missing:
            ways.append((Condition("if the nat table (not in the input) rewrites it"),
                         Outcome(T.UNDECIDED, None, "rewritten by the nat table the input lacks: where it goes "
                                 "is unknown", packet=st.pkts.summary(), uncertain=why)))
        return ways

    def _missing_doubts(self, st: State, kind: str) -> list[str]:
        """Why a verdict may differ because the input lacks whole tables (``iptables -S`` and
        ``-L`` print one table: filter without ``-t``): each missing table that runs where this
        packet went could have changed it."""
        missing = set(self._missing_for(st))
        if not missing:
            return []
        out = []
        what = {"nat": "a nat table (not in the input) can DNAT or REDIRECT it elsewhere",
                "filter": "a filter table (not in the input) can drop it",
                "mangle": "a mangle table (not in the input) can drop or re-mark it",
                "raw": "a raw table (not in the input) can drop it or exempt it from conntrack"}
        for t in ("raw", "mangle", "nat", "filter"):
            if t in missing:
                out.append(what[t])
        return out

    def _unseen(self, rule: Rule) -> frozenset[str]:
        unseen = getattr(self.rs, "unseen", None)
        return unseen(rule) if unseen is not None and self.hidden_why else frozenset()

    def _mark_uncertain(self, st: State, step: Step, rule: Rule) -> None:
        """A deciding rule the input did not show in full (an -nL listing hides -i/-o): the path
        goes on as listed, the step and every outcome after it say the kernel may differ."""
        unseen = self._unseen(rule)
        if unseen:
            filled = self.rs.filled.get(rule)
            if filled is not None:
                if filled.iniface is not None or filled.outiface is not None:
                    step.detail["uncertain"] = filled.text
                step.detail["filled"] = filled.text
            else:
                step.detail["uncertain"] = ("; ".join(UNSEEN_WHY.get(w, w) for w in sorted(unseen))
                                            + ": the kernel may not match this rule")
            if rule not in st.uncertain:
                st.uncertain = st.uncertain + (rule,)

    def _fork(self, st: State, path: Path, reason: str,
              branches: list[tuple[Condition, State, list[Step]]], stat: bool = False,
              hidden: bool = False) -> None:
        """Split the walk: each branch continues from ``st``'s point with its own state."""
        if self.leaves + len(branches) - 1 > self.max_branches:
            if not self.capped:
                self.notes.append(f"more than {self.max_branches} branches: the trace stops following forks "
                                  "(narrow the flow with --src/--dst/--sport to see the rest)")
            self.capped = True
            path.steps.append(Step(T.NOTE, st.phase, st.table.name if st.table else "", reason=f"not followed: {reason}"))
            self._finish(st, path, T.UNDECIDED, f"branch limit reached at: {reason}")
        self.leaves += len(branches) - 1
        fork = Fork(reason)
        for cond, sub, steps in branches:
            if cond.edge is None:
                cond.edge = edge_of(st.pkts, sub.pkts, self.router)
            narrow_origin(st, sub)
            p = Path(list(steps))
            fork.branches.append((cond, p))
        path.fork = fork
        if stat:
            self.stat_forks.add(id(fork))
        if hidden:
            self.hidden_forks.add(id(fork))
        # Depth-first, first branch first.
        for (_, sub, _), (_, p) in reversed(list(zip(branches, fork.branches))):
            self.work.append((sub, p))
        raise Stop

    def _entries(self, hook: str) -> tuple[H.HookEntry, ...]:
        """Who runs at ``hook``, in priority order (:class:`.pipeline.HookPipeline`)."""
        raise NotImplementedError

    def _reply_fate(self, st: State, reply: str) -> tuple[str, str] | None:
        """Where REJECT's answer goes (:class:`.replies.Replies`)."""
        raise NotImplementedError
