"""trace --why RULE: for a described flow, why one rule did or did not decide it.

Every way the flow can go (each leaf of its trace) gets one of four answers, read from the
trace's own steps -- nothing is re-evaluated here:

* **decided** -- the rule matched and its verdict (or translation) is the outcome's;
* **translated** -- it matched and translated the packet, which then got through (another rule
  gave the verdict);
* **overridden** -- it matched, but a later rule or table decided the outcome (an ACCEPT ends one
  table only; a later DROP still drops);
* **not matched** -- the packet reached it, and which test failed;
* **never reached** -- which earlier rule or hook took the packet elsewhere: the hooks the
  rule's chain hangs from versus the hooks the packet went through (and the translation and
  routing decision that sent it there), the table's earlier verdict, or the jumps to the chain
  that did not match.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from iptexplain.core.errors import InputError
from iptexplain.graph import Rule, Ruleset, Table
from iptexplain.netfilter.trace import (CONNTRACK, HOOK, NOTE, REWRITE, ROUTE, RULE, TABLE, VERDICT, Leaf,
                                        Trace)
from iptexplain.numbers import is_decimal
from iptexplain.netfilter.outcome import find_decider, outcome_sentence, rule_ref

DECIDED, TRANSLATED, OVERRIDDEN = "decided", "translated", "overridden"
NOT_MATCHED, NEVER_REACHED = "not matched", "never reached"
HOOK_ORDER = ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")


def find_rules(ruleset: Ruleset, spec: str, family: int) -> list[Rule]:
    """The rules ``spec`` names: ``CHAIN:N`` or ``TABLE:CHAIN:N`` (N as --line-numbers counts),
    a line number of the input, or rule text (``-A CHAIN ...`` as iptables-save prints it, or a
    part of it that only one rule has)."""
    tables = ruleset.tables_of(family)
    text = spec.strip()
    if is_decimal(text):
        found = [r for t in tables for r in t.rules() if len(text) <= 12 and r.line == int(text)]
        if not found:
            raise InputError(f"--why {spec}: no rule on line {text} of the input", "--why")
        return found
    parts = text.split(":")
    if len(parts) in (2, 3) and is_decimal(parts[-1]) and len(parts[-1]) <= 12 and " " not in text:
        table = parts[0] if len(parts) == 3 else None
        chain, n = parts[-2], int(parts[-1])
        found = [c.rules[n - 1] for t in tables if table in (None, t.name)
                 for c in [t.chains.get(chain)] if c is not None and 0 < n <= len(c.rules)]
        if not found:
            raise InputError(f"--why {spec}: no rule {n} in chain {chain}", "--why")
        return found
    norm = " ".join(text.split())
    exact = [r for t in tables for r in t.rules() if r.spec() == norm or " ".join(r.save_args()) == norm]
    if exact:
        return exact
    part = [r for t in tables for r in t.rules() if norm in r.spec()]
    if not part:
        raise InputError(f"--why {spec}: no rule reads like that", "--why")
    if len({(r.table, r.chain) for r in part}) > 1 or len(part) > 3:
        raise InputError(f"--why {spec}: {len(part)} rules read like that "
                         f"({', '.join(rule_ref(r) for r in part[:3])}…): give CHAIN:N or a line number", "--why")
    return part


def hooks_of(table: Table, chain: str) -> dict[str, list[str]]:
    """The built-in chains (hooks) of ``table`` from which ``chain`` is reached, each with one
    path of chain names from the hook to it."""
    out: dict[str, list[str]] = {}
    for base in table.chains.values():
        if not base.builtin:
            continue
        parents: dict[str, str | None] = {base.name: None}
        todo = [base.name]
        while todo:
            c = todo.pop(0)
            if c == chain:
                path = [c]
                while parents[path[-1]] is not None:
                    path.append(parents[path[-1]])  # type: ignore[arg-type]
                out[base.name] = list(reversed(path))
                break
            for r in table.chains[c].rules if c in table.chains else []:
                j = r.jump
                if j is not None and j in table.chains and j not in parents:
                    parents[j] = c
                    todo.append(j)
    return out


@dataclass
class Answer:
    """Why one rule did or did not decide one way of the flow."""

    verdict: str  # decided / overridden / not matched / never reached
    because: list[str] = field(default_factory=list)
    outcome: str = ""
    conditions: list[str] = field(default_factory=list)  # the branch (when the flow forks)


def _visited(leaf: Leaf) -> list[tuple[str, str]]:
    """(hook, table) the packet was traversed in, in order."""
    out = []
    hook = ""
    for st in leaf.steps:
        if st.kind == HOOK:
            hook = st.hook
        elif st.kind == TABLE:
            out.append((st.hook or hook, st.table))
    return out


def _hooks(leaf: Leaf) -> list[str]:
    return [st.hook for st in leaf.steps if st.kind == HOOK]


def _sent_elsewhere(leaf: Leaf, went: list[str]) -> str:
    """"DNAT in nat PREROUTING (nat DOCKER #1 …: dst A → B) sent it to FORWARD": the
    translation before the routing decision that chose the hook the packet took."""
    nxt = next((h for h in went if h in ("INPUT", "FORWARD")), None)
    if nxt is None:
        return ""
    for st in leaf.steps:
        if st.kind == ROUTE:
            break
        if st.kind == REWRITE and st.rule is not None and st.detail.get("field") in ("dst", "dport"):
            what = st.reason.split(":", 1)[-1].strip()
            return (f"{st.rule.target_name} in {st.table} {st.hook} ({rule_ref(st.rule)}: {what}) sent it to "
                    f"{nxt}")
    return ""


def _journey(leaf: Leaf) -> str:
    """What sent the packet where it went: translations before routing, and routing."""
    parts = []
    for st in leaf.steps:
        if st.kind == REWRITE and st.rule is not None:
            parts.append(f"{st.reason} in {st.table} {st.hook} ({rule_ref(st.rule)})")
        elif st.kind == ROUTE:
            parts.append(f"routing: {st.reason}")
    return "; ".join(parts)


def explain_leaf(leaf: Leaf, rule: Rule, ruleset: Ruleset, family: int) -> Answer:
    steps = leaf.steps
    outcome = outcome_sentence(leaf.outcome, steps)
    conds = [c.text for c in leaf.conditions]
    seen = [st for st in steps if st.kind == RULE and st.rule is rule]
    matched = [st for st in seen if st.matched]
    if matched:
        d = find_decider(steps, leaf.outcome, ruleset, family)
        translated = any(st.kind == REWRITE and st.rule is rule for st in steps)
        if d is not None and d.rule is rule:
            return Answer(DECIDED, [f"it matched ({matched[0].reason}) and its verdict is the outcome"], outcome, conds)
        tail = []
        if translated:
            tail.append("it matched and translated the packet (" + "; ".join(
                st.reason for st in steps if st.kind == REWRITE and st.rule is rule) + ")")
        else:
            tail.append(f"it matched ({matched[0].reason})")
            v = next((st for st in steps if st.kind == VERDICT and st.rule is rule), None)
            if v is not None and v.verdict == "ACCEPT":
                tail.append(f"ACCEPT ends only the {rule.table} table's {v.hook} traversal")
        if d is not None:
            tail.append(f"the outcome was decided later by {d.text}")
        if translated and leaf.outcome.kind in ("delivered", "forwarded", "sent"):
            return Answer(TRANSLATED, tail, outcome, conds)
        return Answer(OVERRIDDEN, tail, outcome, conds)
    if seen:
        return Answer(NOT_MATCHED, [f"the packet reached it, but {seen[-1].reason}"], outcome, conds)
    # An index skip: the tracer knew from the rule's destination or port that it cannot match.
    for st in steps:
        if st.kind == NOTE and st.chain == rule.chain and st.table == rule.table and st.detail.get("skipped"):
            if st.detail["first"] <= rule.number <= st.detail["last"]:
                return Answer(NOT_MATCHED, [f"the packet reached it, but it is written for another destination "
                                            f"or port ({st.reason})"], outcome, conds)
    return Answer(NEVER_REACHED, _never_reached(leaf, rule, ruleset, family), outcome, conds)


def _never_reached(leaf: Leaf, rule: Rule, ruleset: Ruleset, family: int) -> list[str]:
    table = ruleset.table(rule.table, family)
    assert table is not None
    hooks = hooks_of(table, rule.chain)
    where = (", ".join(f"{h}" + (f" (via {' → '.join(p[1:])})" if len(p) > 1 else "") for h, p in
                       sorted(hooks.items(), key=lambda kv: HOOK_ORDER.index(kv[0]) if kv[0] in HOOK_ORDER else 9)))
    if not hooks:
        return [f"nothing jumps to {rule.chain} from a built-in chain of the {rule.table} table: no packet "
                "ever reaches it"]
    went = _hooks(leaf)
    visited = _visited(leaf)
    on = [h for h in hooks if (h, rule.table) in visited]
    why: list[str] = []
    if not on:
        journey = _journey(leaf)
        hooks_went = " → ".join(dict.fromkeys(went)) or "no hook"
        missing = [h for h in hooks if h not in went]
        if missing and len(missing) == len(hooks):
            sent = _sent_elsewhere(leaf, went)
            if sent:
                why.append(f"{sent}; {rule.chain} is on {rule.table} {where}")
                why.append(f"the packet went through {hooks_went}")
                ended = _ended_before(leaf, hooks)
                return why + ([ended] if ended else [])
            why.append(f"{rule.chain} is on {rule.table} {where}; the packet went through {hooks_went}")
        else:
            why.append(f"{rule.chain} is on {rule.table} {where}; the packet went through {hooks_went}, "
                       f"but the {rule.table} table was not traversed there")
            for st in leaf.steps:
                if st.kind == CONNTRACK and st.table == rule.table and st.hook in hooks:
                    why.append(st.reason)
        if journey:
            why.append(f"what sent it there: {journey}")
        ended = _ended_before(leaf, hooks)
        if ended:
            why.append(ended)
        return why
    # The table ran at the rule's hook, but the packet left before the rule's chain or rule.
    for hook in on:
        steps = _table_steps(leaf, hook, rule.table)
        entered = any(st.kind == RULE and st.chain == rule.chain for st in steps) or \
            any(st.detail.get("to") == rule.chain for st in steps if st.detail)
        if entered:
            earlier = _verdict_in(steps, rule.chain)
            why.append(f"{rule.table} {hook} entered {rule.chain}, but " + (earlier or "the packet left the chain "
                                                                          "before this rule"))
            continue
        jumps = [st for st in steps if st.kind == RULE and st.rule is not None and st.rule.jump is not None
                 and st.matched is False and _leads_to(table, st.rule.jump, rule.chain)]
        verdict = next((st for st in steps if st.kind in (VERDICT,) or st.verdict in ("ACCEPT", "DROP", "REJECT")), None)
        path = " → ".join(hooks[hook])
        if jumps:
            why.append(f"{rule.chain} is reached from {rule.table} {hook} by {path}; "
                       + "; ".join(f"{rule_ref(s.rule)} did not match: {s.reason}" for s in jumps[:3]))
        elif verdict is not None:
            who = rule_ref(verdict.rule) if verdict.rule is not None else f"the policy of {verdict.chain}"
            why.append(f"{rule.chain} is reached from {rule.table} {hook} by {path}, but {who} gave {verdict.verdict} "
                       "first")
        else:
            why.append(f"{rule.chain} is reached from {rule.table} {hook} by {path}; the packet did not take "
                       "that way (run with -v to see every rule looked at)")
    return why


def _leads_to(table: Table, start: str, chain: str) -> bool:
    return start == chain or chain in hooks_of_chain(table, start)


def hooks_of_chain(table: Table, start: str) -> set[str]:
    seen = {start}
    todo = [start]
    while todo:
        c = table.chains.get(todo.pop())
        for r in c.rules if c is not None else []:
            j = r.jump
            if j is not None and j not in seen:
                seen.add(j)
                todo.append(j)
    return seen


def _table_steps(leaf: Leaf, hook: str, table: str) -> list:
    out = []
    inside = False
    cur_hook = ""
    for st in leaf.steps:
        if st.kind == HOOK:
            cur_hook = st.hook
            inside = False
        elif st.kind == TABLE:
            inside = (st.hook or cur_hook) == hook and st.table == table
        elif inside:
            out.append(st)
    return out


def _verdict_in(steps: list, chain: str) -> str:
    for st in steps:
        if st.kind == VERDICT and st.rule is not None:
            return f"{rule_ref(st.rule)} gave {st.verdict} first"
        if st.verdict == "RETURN" and st.rule is not None and st.chain == chain:
            return f"{rule_ref(st.rule)} returned first"
    return ""


def _ended_before(leaf: Leaf, hooks: Iterable[str]) -> str:
    if leaf.outcome.kind in ("dropped", "rejected") and leaf.outcome.rule is not None:
        return f"the packet ended first: {outcome_sentence(leaf.outcome, leaf.steps)}"
    return ""


@dataclass
class WhyResult:
    rules: list[Rule]
    answers: list[tuple[Rule, list[Answer]]]


def explain(trace: Trace, rules: list[Rule], ruleset: Ruleset) -> WhyResult:
    fam = trace.flow.family
    leaves = list(trace.leaves())
    return WhyResult(rules, [(r, [explain_leaf(lf, r, ruleset, fam) for lf in leaves]) for r in rules])
