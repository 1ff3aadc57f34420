"""The trace as a Graphviz graph: the chain graph with the packet's path drawn in.

Nodes are the hooks the packet met (in order, linked by bold edges), the chains of each table
(one cluster per table) and the outcomes.  Grey edges are the ruleset's jumps from the chains
the packet entered (the roads not taken, so the reader sees the alternatives); bold, coloured
edges are the ones the packet took.  When the trace forks, each way through it gets its own
colour and its outcome node carries the conditions that lead there.  Render with
``iptexplain trace … --format dot | dot -Tsvg > trace.svg``.
"""

from __future__ import annotations

from typing import Any, Iterable

from iptexplain.netfilter.trace import (
    DROPPED, HOOK, PASSED, POLICY, REJECTED, REWRITE, ROUTE, RULE, TABLE, Leaf, Step, Trace,
)
from iptexplain.netfilter.outcome import decided_by, find_decider, outcome_sentence

# One colour per way through a forked trace; a path shared by every way is black.
PALETTE = ("#1b7837", "#2166ac", "#b2182b", "#e08214", "#762a83", "#35978f", "#8c510a", "#4d4d4d")
SHARED = "#000000"


def _target_words(rule) -> str:
    """``DNAT --to-destination …`` of an iptables rule; an nft rule's statements as nft prints them."""
    parts = getattr(rule, "parts", None)
    if parts is not None:
        return parts()[1]
    return " ".join(rule.target.save()[1:])


def q(s: str) -> str:
    """A DOT quoted string."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def chain_id(table: str, chain: str) -> str:
    return f"{table}/{chain}"


def _annotations(walk_steps: Iterable[Step]) -> dict[str, list[str]]:
    """Per chain entered: what happened there besides jumps -- the verdict or NAT rule that
    matched (``#2 DNAT --to-destination 10.244.0.2:53``), and the rewrite it made."""
    out: dict[str, list[str]] = {}
    for st in walk_steps:
        text = ""
        if st.kind == RULE and st.matched and st.rule is not None and not st.rule.jump and st.rule.target:
            cid = chain_id(st.rule.table, st.rule.chain)
            text = f"#{st.rule.number}{'?' if st.detail.get('uncertain') else ''} " + _target_words(st.rule)
        elif st.kind == REWRITE and st.table and st.chain:
            cid = chain_id(st.table, st.chain)
            text = st.reason or ""
        if text:
            lines = out.setdefault(cid, [])
            if text not in lines and len(lines) < 6:
                lines.append(text if len(text) <= 60 else text[:57] + "...")
    return out


def _leaf_walk(steps: list[Step]) -> tuple[list[str], list[tuple[str, str, str]], set[str], str | None]:
    """(hooks met in order, edges taken, chains entered, last chain) for one way through."""
    hooks: list[str] = []
    edges: list[tuple[str, str, str]] = []  # (from, to, label)
    chains: set[str] = set()
    hook = ""
    last_chain: str | None = None
    for st in steps:
        if st.kind == HOOK:
            hook = st.hook
            hooks.append(hook)
        elif st.kind == ROUTE:
            hooks.append("routing")
        elif st.kind == TABLE:
            cid = chain_id(st.table, st.chain or st.hook)
            chains.add(cid)
            edges.append((f"hook:{hook or st.hook}", cid, st.table))
            last_chain = cid
        elif st.kind == RULE and st.rule is not None:
            cid = chain_id(st.rule.table, st.rule.chain)
            chains.add(cid)
            last_chain = cid
            if st.matched and st.rule.jump:
                to = chain_id(st.rule.table, st.rule.jump)
                chains.add(to)
                edges.append((cid, to, f"#{st.rule.number}"))
    return hooks, edges, chains, last_chain


def render_dot(trace: Trace, ruleset: Any = None) -> str:
    leaves: list[Leaf] = list(trace.leaves())
    walks = [_leaf_walk(lf.steps) for lf in leaves]
    if not walks:
        walks = [_leaf_walk(trace.root.steps)]
    colour = [SHARED] if len(leaves) <= 1 else [PALETTE[i % len(PALETTE)] for i in range(len(leaves))]

    visited: set[str] = set().union(*(w[2] for w in walks))
    notes = _annotations(st for lf in leaves for st in lf.steps)
    hooks_seen: list[str] = []
    for w in walks:
        for h in w[0]:
            if h not in hooks_seen:
                hooks_seen.append(h)

    # The ruleset's jump edges out of the chains entered: the alternatives.
    family = trace.flow.family
    jumps: dict[tuple[str, str], list[str]] = {}
    chain_info: dict[str, tuple[str, str, bool, str | None]] = {}
    if ruleset is not None:
        for cid in sorted(visited):
            table, _, name = cid.partition("/")
            t = ruleset.table(table, family)
            c = t.chain(name) if t is not None else None
            if c is None:
                continue
            chain_info[cid] = (table, name, c.builtin, c.policy)
            for r in c.rules:
                if r.jump:
                    jumps.setdefault((cid, chain_id(table, r.jump)), []).append(f"#{r.number}")
                    tc = t.chain(r.jump)
                    if tc is not None:
                        chain_info.setdefault(chain_id(table, r.jump), (table, r.jump, tc.builtin, tc.policy))
    for cid in visited:
        table, _, name = cid.partition("/")
        chain_info.setdefault(cid, (table, name, name.isupper() and name in _BUILTINS, None))

    lines = [
        "digraph iptexplain {",
        "  graph [rankdir=LR, fontname=\"Helvetica\", labelloc=t, nodesep=0.25, ranksep=0.5,",
        f"         label={q('iptexplain trace: ' + trace.flow.describe())}];",
        "  node [shape=box, style=\"rounded\", fontname=\"Helvetica\", fontsize=10];",
        "  edge [fontname=\"Helvetica\", fontsize=9];",
    ]
    # Hooks, in the order met.
    for h in hooks_seen:
        shape = "diamond" if h == "routing" else "cds"
        lines.append(f"  {q('hook:' + h)} [label={q(h)}, shape={shape}, style=filled, fillcolor=\"#dbe9f6\"];")
    # Chains, clustered per table.
    by_table: dict[str, list[str]] = {}
    for cid, (table, _name, _b, _p) in chain_info.items():
        by_table.setdefault(table, []).append(cid)
    # Built-in chains whose policy some way applied: on the highlighted path a policy that did not
    # decide (nat PREROUTING's, when a DNAT accepted) must not read as applied.
    applied = {chain_id(st.table, st.chain) for leaf in trace.leaves() for st in leaf.steps if st.kind == POLICY}
    for table in sorted(by_table, key=_table_rank):
        lines.append(f"  subgraph {q('cluster_' + table)} {{")
        lines.append(f"    label={q(table)}; style=dashed; color=\"#999999\";")
        for cid in sorted(by_table[table]):
            _t, name, builtin, policy = chain_info[cid]
            label = name + (f"\npolicy {policy}" + (" (not reached)" if cid in visited and cid not in applied else "")
                            if builtin and policy else "")
            if cid in notes:
                label += "\n" + "\n".join(notes[cid])
            attrs = [f"label={q(label)}"]
            if cid in visited:
                attrs += ["style=\"rounded,filled,bold\"", "fillcolor=\"#fff2cc\""]
            else:
                attrs += ["color=\"#aaaaaa\"", "fontcolor=\"#888888\""]
            lines.append(f"    {q(cid)} [{', '.join(attrs)}];")
        lines.append("  }")
    # Edges taken, per way (shared ones once, in black).
    taken: dict[tuple[str, str], list[int]] = {}
    labels: dict[tuple[str, str], str] = {}
    for i, (hooks, edges, _c, _l) in enumerate(walks):
        seq = [f"hook:{h}" for h in hooks]
        for a, b in zip(seq, seq[1:]):
            taken.setdefault((a, b), [])
            if i not in taken[(a, b)]:
                taken[(a, b)].append(i)
        for a, b, lab in edges:
            taken.setdefault((a, b), [])
            if i not in taken[(a, b)]:
                taken[(a, b)].append(i)
            labels.setdefault((a, b), lab)
    n = max(len(walks), 1)
    for (a, b), who in taken.items():
        col = SHARED if len(who) == n else colour[who[0]]
        lab = labels.get((a, b), "")
        if (a, b) in jumps:
            lab = ",".join(jumps[(a, b)])
        attrs = [f"color={q(col)}", "penwidth=2.5"]
        if lab:
            attrs.append(f"label={q(lab)}")
        if a.startswith("hook:") and b.startswith("hook:"):
            attrs.append("weight=10")
        lines.append(f"  {q(a)} -> {q(b)} [{', '.join(attrs)}];")
    for (a, b), nums in jumps.items():
        if (a, b) in taken:
            continue
        lines.append(f"  {q(a)} -> {q(b)} [label={q(','.join(nums))}, color=\"#bbbbbb\", fontcolor=\"#999999\", style=dashed];")
    # Outcomes.
    for i, leaf in enumerate(leaves):
        o = leaf.outcome
        oid = f"outcome:{i}"
        conds = "".join(
            (f"[{c.probability:.0%}] " if c.probability is not None else "") + c.text + "\n"
            for c in leaf.conditions
        )
        text = conds + o.kind.upper() + ("?" if o.uncertain else "") + "\n" + outcome_sentence(o, leaf.steps)
        d = find_decider(leaf.steps, o, ruleset, family)
        if d is not None and d.rule is None and "policy" in text:
            text += f"\n({d.where})" if d.where else ""  # the summary already names the policy
        elif d is not None:
            text += "\n" + decided_by(o, leaf.steps, ruleset, family)
        if o.uncertain:
            text += f"\nuncertain: {o.uncertain}\n(iptables-save or iptables -nvL gives the exact answer)"
        fill = "#d9f0d3" if o.kind in PASSED else "#f4cccc" if o.kind in (DROPPED, REJECTED) else "#fce5cd"
        lines.append(f"  {q(oid)} [label={q(text)}, shape=box, style=\"filled,bold\", fillcolor={q(fill)}];")
        hooks, _e, _c, last = walks[i] if i < len(walks) else ([], [], set(), None)
        src = None
        if o.rule is not None:
            src = chain_id(o.rule.table, o.rule.chain)
        elif last is not None:
            src = last
        if hooks and (src is None or o.kind in PASSED or hooks[-1] == "routing"):
            src = f"hook:{hooks[-1]}"
        if src is not None:
            lab = (f"#{o.rule.number} {o.rule.target_name}" if o.rule is not None
                   else f"policy {d.policy}" if d is not None and d.policy and o.kind not in PASSED else "")
            attrs = [f"color={q(colour[i] if i < len(colour) else SHARED)}", "penwidth=2.5"]
            if lab:
                attrs.append(f"label={q(lab)}")
            lines.append(f"  {q(src)} -> {q(oid)} [{', '.join(attrs)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


_BUILTINS = {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"}


def _table_rank(t: str) -> int:
    order: Iterable[str] = ("raw", "mangle", "nat", "filter", "security")
    return {n: i for i, n in enumerate(order)}.get(t, 99)
