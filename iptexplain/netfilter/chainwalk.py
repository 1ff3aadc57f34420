"""The walk of one table's chains at one hook: rule by rule, jump pushes, goto replaces, RETURN
and falling off a user chain pop, a built-in chain ends in its policy; ACCEPT ends one table's
traversal, not the journey; a loop or a missing chain ends the branch undecided.

A rule answers through its matches' ``decide()`` and its target's ``apply()`` only: the walk
never asks what kind of rule it is.
"""

from __future__ import annotations

from bisect import bisect_left

from iptexplain.ext.base import ChainJump, OpaqueMatch, OpaqueTarget, extension_name
from iptexplain.graph import Chain, Rule
from iptexplain.netfilter import hooks as H
from iptexplain.netfilter import trace as T
from iptexplain.netfilter.branch import Branching, Frame, State
from iptexplain.netfilter.context import ACCEPT, CONTINUE, DROP, QUEUE, REJECT, RETURN, Effect, MatchContext
from iptexplain.netfilter.conntrack import nat_table_done
from iptexplain.netfilter.facts import INDEX_MIN_RULES, ChainIndex
from iptexplain.netfilter.hidden import MAX_HIDDEN_FORKS
from iptexplain.netfilter.ipheader import header_deciders
from iptexplain.netfilter.packets import Decision, Packets, single
from iptexplain.netfilter.rewrites import rewrite_steps
from iptexplain.netfilter.routing import BITS
from iptexplain.netfilter.trace import Condition, Path, Step

MAX_DEPTH = 64  # chain nesting the tracer follows before giving up (loops are caught earlier)
MAX_PATH = 1024  # chains on one path, gotos included (a goto does not nest, so MAX_DEPTH misses it)


class ChainWalk(Branching):
    """Chains, rules and verdicts (mixed into :class:`~.tracer.Tracer`)."""

    indexes: dict[int, ChainIndex | None]
    headers: dict[int, list]

    def _index(self, chain: Chain) -> ChainIndex | None:
        key = id(chain)
        if key not in self.indexes:
            self.indexes[key] = ChainIndex(chain, BITS[self.family]) if chain.size >= INDEX_MIN_RULES else None
        return self.indexes[key]

    def _traverse(self, st: State, path: Path) -> None:
        """Walk the current table's chains until a verdict ends the table's traversal."""
        hook = st.phase
        table = st.table.name
        ctx = MatchContext(self.family, hook, table, "", self.router, self.ipsets, st.conn)
        if st.resume is not None:
            rule, dec = st.resume
            st.resume = None
            ctx.chain, ctx.rule = rule.chain, rule
            self._matched(st, path, rule, dec, ctx, len(st.frames) - 1)
        while st.frames:
            fr = st.frames[-1]
            chain = fr.chain
            rules = chain.rules
            depth = len(st.frames) - 1
            at = fr.index
            # Skip the rules written for other destinations (kube-proxy's big dispatch chains).
            idx = self._index(chain)
            d = dp = None
            if idx is not None:
                d = single(st.pkts.dst)
                dp = single(st.pkts.dport)
            if (d is not None or dp is not None) and fr.index < len(rules):
                cands = idx.candidates(d, dp)
                k = bisect_left(cands, fr.index)
                nxt = cands[k] if k < len(cands) else len(rules)
                if nxt > fr.index:
                    skipped = nxt - fr.index
                    if self.verbose:
                        path.steps.append(Step(T.NOTE, hook, table, chain.name, depth=depth,
                                               reason=f"rules {fr.index + 1}–{nxt} of {chain.name}: {skipped} rule"
                                               f"{'s' if skipped > 1 else ''} for other destinations or ports, not matching",
                                               detail={"skipped": skipped, "first": fr.index + 1, "last": nxt}))
                    fr.index = nxt
            gap = next((g for g in chain.gaps if at <= g <= fr.index), None) if chain.gaps else None
            if gap is not None:
                # Past a place where the input left rules out (an elision, a cut-off paste):
                # one of them may have matched.
                st.doubt(f"the input leaves out rules of {table} {chain.name} after its rule {gap}; "
                         "one of them may decide this packet")
            if fr.index >= len(rules):
                st.frames.pop()
                if not st.frames:  # the base chain ended (or a chain it went to with -g)
                    self._policy(st, path, st.base, depth)
                    return
                path.steps.append(Step(T.RETURN, hook, table, chain.name, depth=depth,
                                       reason=f"end of {chain.name}: back to {st.frames[-1].chain.name}"))
                continue
            rule = rules[fr.index]
            fr.index += 1
            if st.excluded and id(rule) in st.excluded:
                if self.verbose:
                    path.steps.append(Step(T.RULE, hook, table, chain.name, rule, False,
                                           "taken on this way to have a hidden -i/-o that excludes these packets",
                                           depth=depth))
                continue
            ctx.chain = chain.name
            ctx.rule = rule
            dec = self._decide(rule, st.pkts, ctx)
            matched = dec.matched
            refused = dec.refused()
            if matched is None:
                if self.verbose:
                    path.steps.append(Step(T.RULE, hook, table, chain.name, rule, False, dec.reason, depth=depth))
                # No packet matches: all of them go on.  (Not ``refused[0]``: a rule of several
                # tests refuses a union of parts -- `-d X -p udp` against tcp packets refuses
                # "not X" and "X, not udp" -- and keeping only the first part lost the others.)
                continue
            if refused:
                effect = self._target_effect(rule, matched, ctx)
                if effect is not None and _no_effect(effect):
                    # LOG, NFLOG, a counter rule…: both sides continue alike, no need to fork.
                    cond = dec.yes.text if dec.yes else dec.reason
                    path.steps.append(Step(T.RULE, hook, table, chain.name, rule, True,
                                           f"for packets with {cond}", depth=depth,
                                           detail={"partial": True, "note": effect.note}))
                    continue
                branches = []
                yes = dec.yes or Condition(dec.reason)
                sub = st.clone(matched)
                sub.resume = (rule, dec)
                branches.append((yes, sub, []))
                for part, cond in refused:
                    s2 = st.clone(part)
                    branches.append((cond or Condition(f"not: {dec.reason}"), s2,
                                     [Step(T.RULE, hook, table, chain.name, rule, False,
                                           (cond.text if cond else dec.reason), depth=depth)]))
                self._fork(st, path, _fork_reason(rule, dec), branches,
                           stat=dec.probability is not None and dec.undecidable)
            self._matched(st, path, rule, dec, ctx, depth)
            if not st.frames:
                return

    def _decide(self, rule: Rule, pkts: Packets, ctx: MatchContext) -> Decision:
        hdr = self.headers.get(id(rule))
        if hdr is None:
            hdr = self.headers[id(rule)] = header_deciders(rule.header)
        if not rule.matches:
            return Decision.conjunction(pkts, hdr)
        tests = list(hdr)
        for m in rule.matches:
            tests.append(lambda p, m=m: _decide_match(m, p, ctx))
        return Decision.conjunction(pkts, tests)

    def _target_effect(self, rule: Rule, pkts: Packets, ctx: MatchContext) -> Effect | None:
        t = rule.target
        if t is None:
            return Effect(CONTINUE, note="no target: counts only")
        if isinstance(t, (ChainJump, OpaqueTarget)) or rule.jump is not None:
            return None
        apply = getattr(t, "apply", None)
        if apply is None:
            return None
        return apply(pkts, ctx)

    def _hidden_fork(self, st: State, path: Path, rule: Rule, dec: Decision, ctx: MatchContext,
                     depth: int) -> None:
        """A rule that would decide this packet's way but may test an interface the listing hid
        (``iptables -nL``): fork -- as listed (its hidden match admits the packet), or not (the
        walk goes on with the next rule).  Returns when there is nothing to fork on."""
        if id(rule) in st.assumed or "interfaces" not in self._unseen(rule):
            return
        if rule.jump is None:
            eff = self._target_effect(rule, st.pkts, ctx)
            if eff is None or _no_effect(eff):
                return  # LOG, a counter: decides nothing
        if len(st.assumed) >= MAX_HIDDEN_FORKS:
            st.uncertain = st.uncertain + (rule,)
            path.steps.append(Step(T.NOTE, st.phase, st.table.name, rule.chain, rule, depth=depth,
                                   reason=f"more than {MAX_HIDDEN_FORKS} rules on this way may test hidden -i/-o: "
                                   "not followed further"))
            self._finish(st, path, T.UNDECIDED, f"more than {MAX_HIDDEN_FORKS} rules on this way may test "
                         "interfaces the listing hid (read iptables -nvL or iptables-save)", rule)
        hook, table, chain = st.phase, st.table.name, st.frames[-1].chain.name
        where = f"{table} {chain} #{rule.number}"
        yes = st.clone()
        yes.assumed = st.assumed | {id(rule)}
        yes.resume = (rule, dec)
        no = st.clone()
        no.assumed = yes.assumed
        no.excluded = st.excluded | {id(rule)}
        no.uncertain = st.uncertain + (rule,)
        why = "its hidden -i/-o (not shown by iptables -nL) exclude this packet"
        skip = Step(T.RULE, hook, table, chain, rule, False, why, depth=depth,
                    detail={"uncertain": f"interfaces hidden by the -nL listing: {why}"})
        self._fork(st, path, f"{where}: its -i/-o, if any, are hidden by the listing",
                   [(Condition(f"if {where}'s hidden -i/-o admit this packet (as listed)"), yes, []),
                    (Condition(f"if {where} has a hidden -i/-o that excludes this packet"), no, [skip])],
                   hidden=True)

    def _matched(self, st: State, path: Path, rule: Rule, dec: Decision, ctx: MatchContext, depth: int) -> None:
        self._hidden_fork(st, path, rule, dec, ctx, depth)
        hook, table, chain = st.phase, st.table.name, st.frames[-1].chain.name
        reason = dec.reason or "matches every packet"
        step = Step(T.RULE, hook, table, chain, rule, True, reason, depth=depth)
        path.steps.append(step)
        t = rule.target
        if t is None:
            return
        target_chain = rule.jump
        if target_chain is not None:
            self._mark_uncertain(st, step, rule)
            if not isinstance(t, ChainJump) and getattr(t, "apply", None) is not None:
                # nft: the statements before a jump act first (`meta mark set 0x1 jump x`)
                self._apply_effect(st, path, rule, t.apply(st.pkts, ctx), depth)
            tchain = st.table.chains.get(target_chain)
            if tchain is not None and not tchain.listed:
                st.doubt(f"{table} {target_chain} is not in the input (only jumped to): its rules are unknown "
                         "(taken as empty)")
            if tchain is None:
                path.steps.append(Step(T.NOTE, hook, table, chain, rule, depth=depth,
                                       reason=f"chain {target_chain} does not exist"))
                self._finish(st, path, T.UNDECIDED, f"jump to missing chain {target_chain}", rule)
            # the walk's path in the chain graph, gotos included: `-A A -g B`, `-A B -g A` loops
            # although the frame stack never holds A and B at once
            names = [n for f in st.frames for n in (*f.via, f.chain.name)]
            if target_chain in names:
                path.steps.append(Step(T.NOTE, hook, table, chain, rule, depth=depth,
                                       reason=f"loop: {' → '.join(names + [target_chain])}"))
                self._finish(st, path, T.UNDECIDED, f"chain loop through {target_chain} (iptables refuses to load it)", rule)
            if len(st.frames) >= MAX_DEPTH:
                self._finish(st, path, T.UNDECIDED, f"chains nested deeper than {MAX_DEPTH}", rule)
            if len(names) >= MAX_PATH:
                self._finish(st, path, T.UNDECIDED, f"a path of more than {MAX_PATH} chains (jumps and gotos)", rule)
            if rule.goto:
                path.steps.append(Step(T.GOTO, hook, table, chain, rule, depth=depth,
                                       reason=f"goto {target_chain}: its end returns to the chain above",
                                       detail={"to": target_chain}))
                here = st.frames[-1]
                st.frames[-1] = Frame(tchain, 0, (*here.via, here.chain.name))
            else:
                path.steps.append(Step(T.JUMP, hook, table, chain, rule, depth=depth, reason=f"jump to {target_chain}",
                                       detail={"to": target_chain}))
                st.frames.append(Frame(tchain, 0))
            return
        if isinstance(t, OpaqueTarget) or getattr(t, "apply", None) is None:
            name = extension_name(t)
            path.steps.append(Step(T.NOTE, hook, table, chain, rule, depth=depth,
                                   reason=f"target {name} not understood: its effect is unknown"))
            self._finish(st, path, T.UNDECIDED, f"target {name} not understood", rule)
        eff = t.apply(st.pkts, ctx)
        if not (eff.verdict == CONTINUE and eff.pkts is None and eff.nat is None and not eff.notrack
                and not eff.ct_changes):
            # A rule that changes nothing (LOG, a counter) decides nothing, hidden parts or not.
            self._mark_uncertain(st, step, rule)
        self._apply_effect(st, path, rule, eff, depth)
        v = eff.verdict
        if v == CONTINUE:
            return
        if v == ACCEPT:
            path.steps.append(Step(T.VERDICT, hook, table, chain, rule, verdict="ACCEPT", depth=depth,
                                   reason=f"ACCEPT ends the {table} table's {hook} traversal; the journey goes on"))
            st.frames = []
            return
        if v == DROP:
            path.steps.append(Step(T.VERDICT, hook, table, chain, rule, verdict="DROP", depth=depth,
                                   reason=eff.note or "DROP"))
            self._finish(st, path, T.DROPPED, f"dropped by {table} {chain} rule {rule.number}"
                         + (f": {eff.note}" if eff.note else ""), rule)
        if v == REJECT:
            path.steps.append(Step(T.VERDICT, hook, table, chain, rule, verdict="REJECT", depth=depth,
                                   reason=f"dropped, answered with {eff.reply} (a new packet sent through OUTPUT; "
                                   "the kernel's trace shows DROP)"))
            fate = self._reply_fate(st, eff.reply or "")
            if fate:
                path.steps.append(Step(T.NOTE, hook, table, chain, rule, depth=depth, reason=fate[0],
                                       detail={"reply_outcome": fate[1]}))
            what = f"rejected by {table} {chain} rule {rule.number} with {eff.reply}"
            if fate and fate[1] == T.DROPPED:
                # The answer never leaves the host: for the sender this is a drop.
                self._finish(st, path, T.DROPPED, f"{what}, but {fate[0]}: the sender sees no answer", rule,
                             reply=eff.reply)
            self._finish(st, path, T.REJECTED, what + (f"; {fate[0]}" if fate and fate[1] not in T.PASSED else ""),
                         rule, reply=eff.reply)
        if v == RETURN:
            depth_now = len(st.frames) - 1
            path.steps.append(Step(T.RETURN, hook, table, chain, rule, verdict="RETURN", depth=depth,
                                   reason="RETURN" + (f" to {st.frames[-2].chain.name}" if depth_now > 0 else
                                                      f" in a base chain: the policy of {st.base.name} applies")))
            st.frames.pop()
            if not st.frames:
                self._policy(st, path, st.base, 0)
            return
        if v == QUEUE:
            path.steps.append(Step(T.VERDICT, hook, table, chain, rule, verdict="QUEUE", depth=depth,
                                   reason=f"queued to user space (queue {eff.queue}): the program there decides"
                                   + (f"; {eff.note}" if eff.note else "")))
            self._queue_fork(st, path, rule)
        why = eff.note or f"verdict {v} not understood"
        path.steps.append(Step(T.NOTE, hook, table, chain, rule, depth=depth, reason=why))
        self._finish(st, path, T.UNDECIDED, why, rule)

    def _apply_effect(self, st: State, path: Path, rule: Rule, eff: Effect, depth: int) -> None:
        """What a target changed before its verdict: the packets (one step per rewrite), the
        connection's NAT binding, notrack, the helper."""
        hook, table, chain = st.phase, st.table.name, st.frames[-1].chain.name
        t = rule.target
        if eff.pkts is not None:
            before, st.pkts = st.pkts, eff.pkts
            st.rewrite(before, st.pkts)
            texts = {f: (b, a) for f, b, a in eff.rewrites}
            for f, b, a, detail in rewrite_steps(before, st.pkts, list(texts), texts):
                path.steps.append(Step(T.REWRITE, hook, table, chain, rule, depth=depth,
                                       reason=f"{extension_name(t)}: {f} {b} → {a}" + (f" ({eff.note})" if eff.note else ""),
                                       detail=detail))
        elif eff.note and eff.verdict == CONTINUE:
            path.steps.append(Step(T.NOTE, hook, table, chain, rule, depth=depth, reason=eff.note))
        if eff.nat is not None:
            kind, binding = eff.nat
            st.conn.nat[kind] = binding
        if eff.notrack:
            st.notrack = True
        if eff.ct_changes.get("helper"):
            st.conn.helper = eff.ct_changes["helper"]

    def _queue_fork(self, st: State, path: Path, rule: Rule) -> None:
        """NFQUEUE/QUEUE: a program in user space gives the verdict.  NF_ACCEPT from there
        re-enters after this table; NF_DROP (or no program, without --queue-bypass) drops."""
        hook = st.phase
        entry = self._entries(hook)[st.entry]
        acc = st.clone()
        acc.frames = []
        nat_table_done(acc, hook, entry)
        acc.entry = st.entry + 1
        drop = st.clone()
        drop.frames = []
        drop_steps = [Step(T.VERDICT, hook, st.table.name, rule.chain, rule, verdict="DROP",
                           reason="the queue program drops it (or no program listens without --queue-bypass)")]
        drop.resume = None
        drop.phase = "QUEUE_DROP"
        self._fork(st, path, f"{rule.target_name}: user space decides",
                   [(Condition("the queue program accepts the packet"), acc, []),
                    (Condition("the queue program drops the packet"), drop, drop_steps)])

    def _policy(self, st: State, path: Path, chain: Chain, depth: int) -> None:
        hook, table = st.phase, st.table.name
        pol = chain.policy or "ACCEPT"
        if not chain.listed:
            st.doubt(f"{table} {chain.name} is not in the input: its rules and policy are unknown "
                     f"(taken as empty, policy {pol})")
            if f"{table} {chain.name}" not in st.unknown:
                st.unknown = st.unknown + (f"{table} {chain.name}",)
        elif not chain.policy_known:
            st.doubt(f"the policy of {table} {chain.name} is not in the input (taken as {pol})")
        path.steps.append(Step(T.POLICY, hook, table, chain.name, verdict=pol, depth=0,
                               reason=f"policy {pol} of {table} {chain.name}"))
        st.frames = []
        if pol == "DROP":
            self._finish(st, path, T.DROPPED, f"dropped by the policy of {table} {chain.name}")



def _decide_match(m, pkts: Packets, ctx: MatchContext) -> Decision:
    decide = getattr(m, "decide", None)
    if decide is None or isinstance(m, OpaqueMatch):
        name = extension_name(m)
        return Decision.fork(pkts, f"module {name} not understood", f"{m.describe()} matches",
                             f"{m.describe()} does not match")
    return decide(pkts, ctx)


def _no_effect(e: Effect) -> bool:
    return (e.verdict == CONTINUE and e.pkts is None and not e.notrack and not e.ct_changes
            and e.nat is None)


def _fork_reason(rule: Rule, dec: Decision) -> str:
    what = dec.label or dec.reason
    if dec.undecidable:
        return what
    return f"{rule.table} {rule.chain} rule {rule.number}: {what}"
