"""The trace as JSON: the same facts as the rich view, for scripts and CI checks.

The document is versioned by its ``schema`` key (``iptexplain.trace/1``); docs/trace-json.md
describes every field.  Within a major version, fields are only ever added: a consumer written
for ``/1`` keeps working.  Every step the tracer recorded is included (rules that did not match
too, with ``matched: false``) -- the view's ``-v`` is a display choice, not a different trace.
"""

from __future__ import annotations

import json
from typing import Any

from iptexplain.netfilter.trace import (
    DROPPED, PASSED, REJECTED, Condition, Fork, Outcome, Path, Step, Trace, ports_text, tcp_flags_text,
)
from iptexplain.netfilter.outcome import decided_by, find_decider, outcome_sentence
from iptexplain.netfilter.outcome import ordinary_leaves

SCHEMA = "iptexplain.trace/1"

EXIT_PASSED, EXIT_BLOCKED, EXIT_FORKED = 0, 1, 3
BLOCKED = (DROPPED, REJECTED)
FORKED = "forked"


def result_of(trace: Trace) -> str:
    """The outcome kind shared by every ordinary way, or ``forked`` when they differ."""
    kinds = {lf.outcome.kind for lf in ordinary_leaves(trace)}
    if len(kinds) == 1:
        return next(iter(kinds))
    if not kinds:
        return "undecided"
    return FORKED


def exit_status(trace: Trace) -> int:
    """0 when every way the flow can go passes (delivered, forwarded, sent), 1 when every way
    is dropped or rejected, 3 otherwise: the ways disagree, one is queued or undecided, or one
    is uncertain (it rests on what the input did not show: a script must not take it as exact).
    Ways only edge packets take do not count, unless there is no other (:func:`ordinary_leaves`)."""
    ordinary = ordinary_leaves(trace)
    if any(lf.outcome.uncertain for lf in ordinary):
        return EXIT_FORKED
    kinds = {lf.outcome.kind for lf in ordinary}
    if kinds and all(k in PASSED for k in kinds):
        return EXIT_PASSED
    if kinds and all(k in BLOCKED for k in kinds):
        return EXIT_BLOCKED
    return EXIT_FORKED


def _plain(value: Any) -> Any:
    """Make a step's free-form detail JSON-safe without losing what it says."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_plain(v) for v in value]
        return sorted(items, key=str) if isinstance(value, (set, frozenset)) else items
    if hasattr(value, "spec") and hasattr(value, "chain"):  # a Rule
        return rule_json(value)
    return str(value)


def rule_json(rule: Any) -> dict[str, Any] | None:
    if rule is None:
        return None
    out = {
        "table": rule.table,
        "chain": rule.chain,
        "number": rule.number,
        "line": rule.line or None,
        "source": rule.source,
        "spec": rule.spec(),
        "target": rule.target_name or None,
        "jump": rule.jump,
        "goto": bool(rule.goto),
        "understood": all(e.understood for e in rule.extensions()),
    }
    handle = getattr(rule, "handle", None)
    if handle is not None or getattr(rule, "piece", ""):
        # an nft rule: the kernel's handle (`nft -a`) and the map element this piece took
        out["handle"] = handle
        out["element"] = rule.piece or None
    return out


def step_json(st: Step) -> dict[str, Any]:
    return {
        "kind": st.kind,
        "hook": st.hook or None,
        "table": st.table or None,
        "chain": st.chain or None,
        "depth": st.depth,
        "rule": rule_json(st.rule),
        "matched": st.matched,
        "reason": st.reason or None,
        "verdict": st.verdict,
        "detail": _plain(st.detail) if st.detail else {},
        # a rule that decided as listed though the input hid parts of it (-nL hides -i/-o)
        "uncertain": bool(st.detail and st.detail.get("uncertain")),
        "uncertain_reason": (st.detail or {}).get("uncertain") or None,
    }


def condition_json(c: Condition) -> dict[str, Any]:
    return {"text": c.text, "probability": c.probability, "edge": c.edge}


def outcome_json(o: Outcome, steps: list[Step], ruleset: Any = None, family: int = 4) -> dict[str, Any]:
    d = find_decider(steps, o, ruleset, family)
    return {
        "kind": o.kind,
        "summary": outcome_sentence(o, steps),
        "decided_by": decided_by(o, steps, ruleset, family) or None,
        "rule": rule_json(d.rule if d is not None else None),
        "policy": ({"table": d.table, "chain": d.chain, "policy": d.policy, "where": d.where or None}
                   if d is not None and d.rule is None else None),
        "iface": o.iface,
        "reply": o.reply,
        "packet": _plain(o.packet) if o.packet else {},
        "uncertain": bool(o.uncertain),
        "uncertain_reason": o.uncertain or None,
        "uncertain_rules": [rule_json(r) for r in o.uncertain_rules],
    }


def path_json(p: Path, prefix: list[Step], ruleset: Any = None, family: int = 4) -> dict[str, Any]:
    steps = prefix + p.steps
    return {
        "steps": [step_json(s) for s in p.steps],
        "outcome": (outcome_json(p.outcome, steps, ruleset, family)
                    if p.outcome is not None and p.fork is None else None),
        "fork": fork_json(p.fork, steps, ruleset, family) if p.fork is not None else None,
    }


def fork_json(f: Fork, prefix: list[Step], ruleset: Any = None, family: int = 4) -> dict[str, Any]:
    return {
        "reason": f.reason,
        "branches": [{"condition": condition_json(c), "path": path_json(sub, prefix, ruleset, family)}
                     for c, sub in f.branches],
    }


def _ports(v: Any) -> int | str | None:
    """One port as a number, a range or list as iptables spells it ("1:1024", "22,80")."""
    return v if v is None or isinstance(v, int) else ports_text(v)


def flow_json(trace: Trace) -> dict[str, Any]:
    f = trace.flow
    return {
        "family": f.family, "proto": f.proto, "src": f.src, "sport": _ports(f.sport), "dst": f.dst,
        "dport": _ports(f.dport), "tcp_flags": tcp_flags_text(f.tcp_flags) if f.tcp_flags else None,
        "iniface": f.iniface, "outiface": f.outiface, "state": f.state,
        "mark": f.mark, "icmp_type": f.icmp_type, "from_host": f.from_host,
        "from_container": f.from_container, "reply": bool(getattr(f, "reply", False)),
        "text": f.describe(),
    }


def host_json(host: Any) -> dict[str, Any] | None:
    if host is None:
        return None
    return {
        "source": getattr(host, "source", "") or None,
        "interfaces": [
            {"name": i.name, "addrs": [str(a) for a in i.addrs], "kind": i.kind or None,
             "up": i.up, "inferred": i.inferred}
            for i in getattr(host, "interfaces", {}).values()
        ],
        "routes": [
            {"dst": r.dst, "dev": r.dev, "via": r.via, "src": r.src, "type": r.type,
             "table": r.table, "inferred": r.inferred}
            for r in getattr(host, "routes", [])
        ],
        "containers": _plain(getattr(host, "containers", {}) or {}),
    }


def notes_json(trace: Trace, ruleset: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for n in (getattr(ruleset, "notes", None) or []):
        out.append({"kind": n.kind, "message": n.message, "line": n.line, "source": ruleset.source})
    seen = {n["message"] for n in out}
    for n in trace.notes:
        msg = n if isinstance(n, str) else getattr(n, "message", str(n))
        if msg not in seen:
            seen.add(msg)
            out.append({"kind": getattr(n, "kind", "trace"), "message": msg, "line": None,
                        "source": None})
    return out


def trace_json(trace: Trace, ruleset: Any = None) -> dict[str, Any]:
    """The whole document as plain data (see docs/trace-json.md)."""
    leaves = []
    for leaf in trace.leaves():
        leaves.append({
            "conditions": [condition_json(c) for c in leaf.conditions],
            "probability": leaf.probability,
            "edge": leaf.edge,
            "outcome": outcome_json(leaf.outcome, leaf.steps, ruleset, trace.flow.family),
        })
    rs = None
    if ruleset is not None:
        fam = trace.flow.family
        lacking = getattr(ruleset, "missing_tables", None)
        rs = {"source": ruleset.source, "format": ruleset.format, "families": ruleset.families(),
              "rules": ruleset.rule_count(),
              # the tables the answer rests on, and those the input lacks (unknown, not empty)
              "tables": [t.name for t in ruleset.tables_of(fam)],
              "tables_lacking": list(lacking(fam)) if lacking is not None else []}
    return {
        "schema": SCHEMA,
        "flow": flow_json(trace),
        "ruleset": rs,
        "host": host_json(trace.host),
        "notes": notes_json(trace, ruleset),
        "result": result_of(trace),
        "exit_status": exit_status(trace),
        "forks": trace.forks,
        "uncertain": any(lf["outcome"]["uncertain"] for lf in leaves),
        "outcomes": leaves,
        "path": path_json(trace.root, [], ruleset, trace.flow.family),
    }


def dumps(trace: Trace, ruleset: Any = None, indent: int | None = 2) -> str:
    return json.dumps(trace_json(trace, ruleset), indent=indent, ensure_ascii=False) + "\n"
