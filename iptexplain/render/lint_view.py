"""Views of lint's findings (:mod:`iptexplain.analysis.lint`): text and JSON
(schema ``iptexplain.lint/1``)."""

from __future__ import annotations

import json
from typing import Any

from iptexplain.analysis.lint import LintResult

LINT_SCHEMA = "iptexplain.lint/1"
ORDER = {"shadowed": 0, "redundant": 1, "undone": 2, "unreachable chain": 3}


def lint_text(res: LintResult, source: str) -> str:
    lines = []
    fs = sorted(res.findings, key=lambda f: ORDER.get(f.kind, 9))
    for f in fs:
        lines.append(f"{f.kind}: {f.message}")
        if f.rule is not None:
            lines.append(f"    {f.rule.spec()}")
        for r in f.involved[:4]:
            lines.append(f"      {'by ' if f.rule is not None else 'from '}{r.spec()}")
        if len(f.involved) > 4:
            lines.append(f"      … and {len(f.involved) - 4} more")
    counts: dict[str, int] = {}
    for f in fs:
        counts[f.kind] = counts.get(f.kind, 0) + 1
    plural = {"shadowed": "shadowed rules", "redundant": "redundant rules", "unreachable chain": "unreachable chains",
              "undone": "undone rewrites"}
    summary = ", ".join(f"{n} {plural.get(k, k) if n > 1 else k.replace('shadowed', 'shadowed rule').replace('redundant', 'redundant rule').replace('undone', 'undone rewrite')}"
                        for k, n in sorted(counts.items(), key=lambda kv: ORDER.get(kv[0], 9))) or "no findings"
    lines.append("")
    lines.append(f"{source}: {summary} ({res.judged} rules judged for shadowing; {res.unjudged} not, "
                 "their tests resting on what a ruleset alone cannot decide: marks, MAC addresses, "
                 "rate limits, sets, the host's addresses)")
    return "\n".join(lines) + "\n"


def _rule(r: Any) -> dict[str, Any]:
    return {"table": r.table, "chain": r.chain, "number": r.number, "line": r.line or None, "spec": r.spec()}


def lint_json(res: LintResult, source: str) -> str:
    doc = {
        "schema": LINT_SCHEMA,
        "ruleset": source,
        "findings": [{"kind": f.kind, "message": f.message,
                      "rule": _rule(f.rule) if f.rule is not None else None,
                      "chain": ({"table": f.chain.table, "name": f.chain.name} if f.chain is not None else None),
                      "involved": [_rule(r) for r in f.involved]} for f in res.findings],
        "judged": res.judged,
        "unjudged": res.unjudged,
    }
    return json.dumps(doc, indent=2) + "\n"
