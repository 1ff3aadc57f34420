"""What the input did not show, as the trace sees it: the tables it lacks, and the forks on a
rule's hidden ``-i``/``-o`` (an ``iptables -nL`` listing) whose ways end alike.

A rule of an ``-nL`` listing may carry an interface match the listing does not print.  When such
a rule would decide the packet's way (a jump, a verdict, a rewrite), the chain walk
(:mod:`.chainwalk`) forks: one way where its hidden match admits the packet (the rule as listed),
one where it excludes it (the walk goes on with the next rule).  Many such forks end alike -- the
rule was a RETURN at the end of a chain, or what it skipped decides the same -- and
:func:`merge_alike` folds them back into their first way, so the tree shows forks only where the
outcome differs; the folded way's outcome keeps saying that its path rests on those rules.
"""

from __future__ import annotations

from iptexplain.graph import TABLE_ORDER, Ruleset
from iptexplain.netfilter.trace import Outcome, Path

MAX_HIDDEN_FORKS = 6  # hidden -i/-o forks on one way; beyond, rules are followed as listed


def missing_tables(rs: Ruleset, family: int) -> tuple[str, ...]:
    """The tables of ``family`` whose rules the input does not show: unknown, not empty.  A whole
    ruleset (iptables-save, a snapshot, a live host) lacks none; ``-S`` / ``-L`` text shows one
    table per command (filter without ``-t``), so the others are unknown."""
    ask = getattr(rs, "missing_tables", None)
    if ask is not None:
        return tuple(ask(family))
    if rs.format not in ("S", "listing") or family not in rs.families():
        return ()
    shown = {t.name for t in rs.tables_of(family)}
    return tuple(n for n in TABLE_ORDER if n not in shown and n != "security")


def _leaves(path: Path) -> list[Outcome]:
    if path.fork is None:
        return [path.outcome] if path.outcome is not None else []
    return [o for _, p in path.fork.branches for o in _leaves(p)]


def _ends(path: Path) -> frozenset:
    """How the ways below ``path`` end: kind, interface, reply and final packet of each."""
    return frozenset((o.kind, o.iface, o.reply, tuple(sorted(o.packet.items()))) for o in _leaves(path))


def merge_alike(path: Path, hidden_forks: set[int]) -> None:
    """Fold every hidden -i/-o fork whose branches end the same ways into its first branch
    (bottom-up): whether the hidden match holds, the packet can end exactly as it can anyway."""
    if path.fork is None or not hidden_forks:  # a whole ruleset hides nothing
        return
    for _, p in path.fork.branches:
        merge_alike(p, hidden_forks)
    if id(path.fork) not in hidden_forks:
        return
    ends = [_ends(p) for _, p in path.fork.branches]
    if not ends[0] or any(e != ends[0] for e in ends[1:]):
        return
    first = path.fork.branches[0][1]
    path.steps.extend(first.steps)
    path.fork, path.outcome = first.fork, first.outcome
    for o in _leaves(path):
        if o.uncertain and "every way ends so" not in o.uncertain:
            o.uncertain += " -- whether or not the hidden -i/-o match, every way ends so (only the path may differ)"
