"""Views of lint's findings (:mod:`iptexplain.analysis.lint`): text and JSON
(schema ``iptexplain.lint/1``)."""

from __future__ import annotations

import json
from typing import Any

from iptexplain.analysis.lint import LintResult
from iptexplain.terminal import printable

LINT_SCHEMA = "iptexplain.lint/1"
ORDER = {"undone accept": 0, "partly undone accept": 1, "never applies": 2, "shadowed": 3, "redundant": 4,
         "undone": 5, "unreachable chain": 6}
PLURAL = {"shadowed": ("shadowed rule", "shadowed rules"), "redundant": ("redundant rule", "redundant rules"),
          "unreachable chain": ("unreachable chain", "unreachable chains"),
          "undone": ("undone rewrite", "undone rewrites"),
          "undone accept": ("undone accept", "undone accepts"),
          "partly undone accept": ("partly undone accept", "partly undone accepts"),
          "never applies": ("nat rule that never applies", "nat rules that never apply")}
MAX_CLASSES = 4


def lint_text(res: LintResult, source: str) -> str:
    lines = []
    fs = sorted(res.findings, key=lambda f: ORDER.get(f.kind, 9))
    for f in fs:
        lines.append(f"{f.kind}: {f.message}")
        if f.rule is not None:
            lines.append(f"    {f.rule.spec()}")
        for r in f.involved[:4]:
            spec = r.spec()
            if not spec.startswith("-A "):  # an nft rule: its text says not where it is
                spec = f"{r.table} {r.chain}: {spec}"
            lines.append(f"      {'by ' if f.rule is not None else 'from '}{spec}")
        if len(f.involved) > 4:
            lines.append(f"      … and {len(f.involved) - 4} more")
        for c in f.classes[:MAX_CLASSES]:
            lines.append(f"    {c.scenario.name}: " + "; ".join(c.words()) + (f"; and {len(c.boxes) - 3} more"
                                                                           if len(c.boxes) > 3 else ""))
            lines.append(f"      e.g. {c.example_words()}: {c.fate} by {c.by}")
        if len(f.classes) > MAX_CLASSES:
            lines.append(f"    … and {len(f.classes) - MAX_CLASSES} more packet sets (--json lists them all)")
    counts: dict[str, int] = {}
    for f in fs:
        counts[f.kind] = counts.get(f.kind, 0) + 1
    summary = ", ".join(f"{n} {PLURAL.get(k, (k, k))[n > 1]}"
                        for k, n in sorted(counts.items(), key=lambda kv: ORDER.get(kv[0], 9))) or "no findings"
    lines.append("")
    lines.append(f"{source}: {summary} ({res.judged} rules judged for shadowing; {res.unjudged} not, "
                 "their tests resting on what a ruleset alone cannot decide: marks, MAC addresses, "
                 "rate limits, sets, the host's addresses)")
    if res.traced:
        lines.append("accepts undone across tables: new tcp, udp and icmp connections traced from each interface "
                     "and from the host" + (f"; incomplete: {', '.join(res.incomplete)}" if res.incomplete else ""))
    return printable("\n".join(lines) + "\n")  # input text: no terminal controls


def _rule(r: Any) -> dict[str, Any]:
    return {"table": r.table, "chain": r.chain, "number": r.number, "line": r.line or None, "spec": r.spec()}


def _class(c: Any) -> dict[str, Any]:
    """One packet set of a finding across tables: its words, one example, and who ended it."""
    fl = c.example_flow()
    return {"scenario": c.scenario.name, "words": c.words(limit=len(c.boxes)),
            "example": {"proto": fl.proto, "src": fl.src, "sport": fl.sport, "dst": fl.dst, "dport": fl.dport,
                        "iniface": fl.iniface, "icmp_type": fl.icmp_type, "from_host": fl.from_host},
            "fate": c.fate, "by": c.by, "by_rule": _rule(c.by_rule) if c.by_rule is not None else None}


def lint_json(res: LintResult, source: str) -> str:
    doc = {
        "schema": LINT_SCHEMA,
        "ruleset": source,
        "findings": [{"kind": f.kind, "message": f.message,
                      "rule": _rule(f.rule) if f.rule is not None else None,
                      "chain": ({"table": f.chain.table, "name": f.chain.name} if f.chain is not None else None),
                      "involved": [_rule(r) for r in f.involved],
                      "packets": [_class(c) for c in f.classes]} for f in res.findings],
        "judged": res.judged,
        "unjudged": res.unjudged,
        "traced_families": res.traced,
        "incomplete": res.incomplete,
        "notes": res.notes,
    }
    return json.dumps(doc, indent=2) + "\n"
