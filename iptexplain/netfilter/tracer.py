"""The tracer: a described flow's real path through netfilter, forking where the ruleset cannot
decide.

The walk follows the kernel, not the man page:

* hooks and tables in priority order (:mod:`.hooks`): nat INPUT runs after filter INPUT, raw
  PREROUTING runs before conntrack and DNAT;
* the input routing decision between PREROUTING and INPUT/FORWARD is taken on the destination
  *after* DNAT (:mod:`.routing`), a locally generated packet is routed before OUTPUT and
  re-routed when OUTPUT changed its destination or mark, and a packet for the host's own
  address leaves by ``lo`` and comes back through PREROUTING and INPUT;
* conntrack: the nat table is consulted once per manipulation type and connection (the first
  packet); later packets, and packets looped back, keep the connection's NAT without it;
* chains: jump pushes, goto replaces, RETURN and falling off a user chain pop, a built-in chain
  ends in its policy; ACCEPT ends one table's traversal, not the journey.

The tracer pushes a *set* of packets (:class:`.packets.Packets`).  A match that splits the set
forks the trace; each branch carries the :class:`~.trace.Condition` that leads into it.  Matches
and targets answer through their own modules' ``decide()`` / ``apply()``; the tracer knows
only the pipeline.

The work is split by job: :mod:`.pipeline` (phases and the hook table), :mod:`.chainwalk`
(chains and verdicts), :mod:`.conntrack` (connections and nat-once), :mod:`.routesteps`
(routing, re-routing, loopback), :mod:`.replies` (REJECT's answer, ``--reply``),
:mod:`.facts` (the big-chain index), :mod:`.flowstate` (the first packets),
:mod:`.cascades` (kube-proxy's random choice).  :class:`Tracer` puts them together and drives
the work list; :func:`trace_flow` is the public entry.
"""

from __future__ import annotations

from typing import Any

from iptexplain.core.addr import int_to_ip
from iptexplain.core.packets import IntSet, fmt_set, single
from iptexplain.graph import Ruleset
from iptexplain.host.infer import complete_host
from iptexplain.host.model import HostModel
from iptexplain.netfilter import hooks as H
from iptexplain.netfilter.branch import HIDDEN_PARTS, MAX_BRANCHES, State, Stop
from iptexplain.netfilter.cascades import flatten_cascades
from iptexplain.netfilter.facts import conntrack_in_use, facts_of, forget_facts
from iptexplain.netfilter.flowstate import initial_state
from iptexplain.netfilter.hidden import merge_alike, missing_tables
from iptexplain.netfilter.pipeline import HookPipeline
from iptexplain.netfilter.replies import Replies
from iptexplain.netfilter.routing import Router
from iptexplain.netfilter.trace import Flow, Fork, Outcome, Path, Trace


class Tracer(HookPipeline, Replies):
    """One walk of one family's packets through a ruleset on a host: the step mixins' state,
    and the work list of branches still to follow (depth-first)."""

    def __init__(self, ruleset: Ruleset, host: HostModel, family: int, *, ipsets: Any = None,
                 verbose: bool = True, max_branches: int = MAX_BRANCHES, backend: str = "nft") -> None:
        self.rs = ruleset
        self.backend = backend
        self.host = host
        self.family = family
        self.router = Router(host, family)
        self.ipsets = ipsets
        self.verbose = verbose
        self.max_branches = max_branches
        self.leaves = 0
        self.capped = False
        self.notes: list[str] = []
        self.tables = {t.name: t for t in ruleset.tables_of(family)}
        self.hook_rows: dict[str, tuple[H.HookEntry, ...]] = {}  # see HookPipeline._entries
        self.conntrack_on = conntrack_in_use(ruleset, family)
        facts = facts_of(ruleset)
        self.indexes = facts.indexes
        self.headers = facts.headers
        self.stat_forks: set[int] = set()  # id() of forks made by statistic-like probabilities
        self.finals: list[tuple[State, Outcome]] = []
        self.reply_depth = 0  # >0 while tracing REJECT's answer (whose own REJECT is not followed)
        # What the input format could not show (Ruleset.hidden): a rule that matched as listed may
        # not match as it really is (an -L listing without -v hides -i/-o; without -n, names).
        hidden = getattr(ruleset, "hidden", set()) or set()
        self.hidden_why = "; ".join(w for k, w in HIDDEN_PARTS.items() if k in hidden)
        self.missing_tables = missing_tables(ruleset, family)
        self.hidden_forks: set[int] = set()
        self.lacking: tuple[State, Path] | None = None
        self.named_dst: str | None = None  # the destination the user named (trace_flow sets it)
        self.work: list[tuple[State, Path]] = []

    # -- driver ---------------------------------------------------------------------------------

    def run(self, state: State) -> Path:
        if state.origin is None:
            state.origin = state.pkts.copy(ctstate=state.flow_state)
        root = Path()
        self.leaves = 1
        self.work = [(state, root)]
        try:
            self._bridged_without_iptables(state, root)
        except Stop:
            return root
        while self.work:
            st, path = self.work.pop()
            try:
                self._walk(st, path)
            except Stop:
                pass
        flatten_cascades(root, self.stat_forks)
        merge_alike(root, self.hidden_forks)
        self._lacking_ways(root)
        return root


# ---------------------------------------------------------------------------------------------
# The public entry.


def trace_flow(ruleset: Ruleset, flow: Flow, host: HostModel | None = None, *, ipsets: Any = None,
               verbose: bool = True, max_branches: int = MAX_BRANCHES, backend: str | None = None) -> Trace:
    """Walk ``flow`` through ``ruleset`` on ``host`` and return the trace tree.

    ``host`` is completed from the ruleset where it says nothing (every inference is in
    ``Trace.notes``).  ``backend`` ("nft" or "legacy", default: the ruleset's ``backend``
    attribute when it has one, else nft) decides where the security table runs.  ``ipsets`` maps set names to the contents of an ``ipset save`` dump;
    without it ``-m set`` forks.  ``verbose`` records every rule that did not match (the views'
    "why not" detail); off, only the decisive steps are kept.
    """
    host_given = host is not None  # a caller's host model, even an inferred one, is taken as known
    if "interfaces" in (getattr(ruleset, "hidden", None) or ()):
        # the tools' rule shapes (patterns, dataclasses: ~10 ms of imports) only for a listing
        # that hid the rules' interfaces
        from iptexplain.parse.toolshapes import fill_in

        if fill_in(ruleset, host):
            forget_facts(ruleset)  # rules changed: their cached deciders are stale
    host = complete_host(host, ruleset, flow)
    notes: list[str] = list(host.notes)
    hidden = [w for k, w in HIDDEN_PARTS.items() if k in (getattr(ruleset, "hidden", None) or ())]
    if hidden:
        notes.append("the input does not show every rule exactly (" + "; ".join(hidden) + "): the path "
                     "follows the rules as listed, and each deciding rule is marked uncertain -- "
                     "iptables-save or iptables -nvL gives the exact answer")
    if flow.family not in ruleset.families() and ruleset.families():
        notes.append(f"the ruleset has no IPv{flow.family} tables: nothing filters this flow "
                     f"(it has IPv{', IPv'.join(map(str, ruleset.families()))})")
    backend = backend or getattr(ruleset, "backend", None) or "nft"
    tr = Tracer(ruleset, host, flow.family, ipsets=ipsets, verbose=verbose, max_branches=max_branches,
                backend=backend)
    if "security" in tr.tables and "nat" in tr.tables:
        notes.append(f"{backend} backend: security runs {'after' if backend == 'nft' else 'before'} nat INPUT"
                     + (" (iptables-nft registers it at priority 150)" if backend == "nft" else ""))
    if flow.reply:
        root = Tracer.trace_reply(ruleset, flow, host, notes, ipsets, verbose, max_branches, backend)
        return Trace(flow, root, notes, host)
    st = initial_state(flow, host, tr.router, notes)
    if "NEW" not in st.flow_state and st.flow_state & {"ESTABLISHED", "RELATED"}:
        bindings = Tracer.connection_bindings(ruleset, flow, host, ipsets, backend)
        if len(bindings) > 1:
            # The connection's first packet could have gone several ways (kube-proxy's random
            # endpoint choice, made once per connection): one branch per binding it keeps.
            branches = []
            for nat, cond in bindings:
                sub = Tracer(ruleset, host, flow.family, ipsets=ipsets, verbose=verbose,
                             max_branches=max_branches, backend=backend)
                s2 = initial_state(flow, host, sub.router, [])
                s2.conn.nat = {k: dict(v) for k, v in nat.items()}
                branches.append((cond, sub.run(s2)))
                notes.extend(n for n in sub.notes if n not in notes)
            notes.append("the connection's first packet could get different NAT bindings: one branch each")
            return Trace(flow, Path(fork=Fork("the connection's NAT, chosen by its first packet", branches)),
                         notes, host)
        if bindings and bindings[0][0]:
            nat = bindings[0][0]
            st.conn.nat = {k: dict(v) for k, v in nat.items()}
            notes.append("the connection's first packet got " + ", ".join(
                f"{k} to {', '.join(f'{f} {_set_text(v, f, flow.family)}' for f, v in b.items())}"
                for k, b in nat.items() if b) + "; this packet keeps it")
    if flow.dst and not host_given and not flow.from_host and single(st.pkts.dst) is not None:
        tr.named_dst = flow.dst.split("/")[0]
    root = tr.run(st)
    notes.extend(tr.notes)
    return Trace(flow, root, notes, host)


def _set_text(s: IntSet, f: str, family: int) -> str:
    if f in ("src", "dst"):
        return fmt_set(s, lambda v: int_to_ip(v, family), 3)
    return fmt_set(s)
