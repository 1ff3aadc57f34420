"""Views of a ruleset diff (:mod:`iptexplain.analysis.diff`): plain text for the terminal and
JSON (schema ``iptexplain.diff/1``) for scripts."""

from __future__ import annotations

import json
from typing import Any

from iptexplain.analysis.diff import ChangeClass, DiffResult
from iptexplain.analysis.fates import Responsible
from iptexplain.analysis.space import FIELDS
from iptexplain.terminal import printable

DIFF_SCHEMA = "iptexplain.diff/1"


def _rules(rules: tuple[Responsible, ...]) -> list[str]:
    out = []
    for r in rules:
        role = "" if r.role == "decided" else f" ({r.role})"
        out.append(f"{r.text}{role}" + (f"\n        {r.spec}" if r.spec else ""))
    return out


def diff_text(res: DiffResult, old_name: str, new_name: str) -> str:
    """The classes, one block each: where the packets enter, the packet set in words, an
    example, the fate before and after, and the rules responsible on each side."""
    lines: list[str] = []
    if not res.classes:
        lines.append(f"no packet's fate differs between {old_name} and {new_name} "
                     f"({len(res.scenarios)} entry scenarios traced)")
    else:
        n = len(res.classes)
        lines.append(f"{n} class{'es' if n > 1 else ''} of packets change{'' if n > 1 else 's'} fate "
                     f"from {old_name} to {new_name}:")
    for i, c in enumerate(res.classes, 1):
        lines.append("")
        lines.append(f"[{i}] {c.scenario.name}: " + c.words()[0])
        for w in c.words()[1:]:
            lines.append(f"    and {w}")
        if len(c.boxes) > 3:
            lines.append(f"    and {len(c.boxes) - 3} more packet sets (--json lists them all)")
        lines.append(f"    e.g.    {c.example_words()}")
        lines.append(f"    before: {c.before_words}" + _when(c.conditions_before))
        lines += [f"      by {r}" for r in _rules(c.rules_before)]
        lines.append(f"    after:  {c.after_words}" + _when(c.conditions_after))
        lines += [f"      by {r}" for r in _rules(c.rules_after)]
    if res.incomplete:
        lines.append("")
        lines.append("INCOMPLETE: too many branches in " + ", ".join(res.incomplete)
                     + ": narrow the question with flow options (-p, -s, -d, --dport, -i)")
    return printable("\n".join(lines) + "\n")  # input text: no terminal controls


def _when(conds: tuple[str, ...]) -> str:
    if not conds:
        return ""
    if all("random choice" in c for c in conds):
        return "  (chosen at random, per connection)"
    return f"  (depending on: {'; '.join(conds)})"


def _responsible_json(r: Responsible) -> dict[str, Any]:
    rule = r.rule
    return {"role": r.role, "text": r.text, "spec": r.spec or None,
            "table": getattr(rule, "table", None), "chain": getattr(rule, "chain", None),
            "number": getattr(rule, "number", None), "line": getattr(rule, "line", None) or None}


def _box_json(b: Any) -> dict[str, Any]:
    return {f: [list(iv) for iv in getattr(b, f)] for f in FIELDS} | {"ctstate": sorted(b.ctstate)}


def class_json(c: ChangeClass) -> dict[str, Any]:
    ex = c.example_flow()
    return {
        "scenario": c.scenario.name,
        "entry": {"proto": c.scenario.flow.proto, "iniface": c.scenario.flow.iniface,
                  "from_host": c.scenario.flow.from_host},
        "packets": c.words(limit=len(c.boxes)),
        "boxes": [_box_json(b) for b in c.boxes],
        "example": {"text": c.example_words(), "proto": ex.proto, "src": ex.src, "sport": ex.sport,
                    "dst": ex.dst, "dport": ex.dport, "iniface": ex.iniface, "from_host": ex.from_host,
                    "icmp_type": ex.icmp_type, "state": ex.state},
        "before": {"fates": [f.words() for f in sorted(c.before)], "kinds": sorted({f.kind for f in c.before}),
                   "depends_on": list(c.conditions_before), "rules": [_responsible_json(r) for r in c.rules_before]},
        "after": {"fates": [f.words() for f in sorted(c.after)], "kinds": sorted({f.kind for f in c.after}),
                  "depends_on": list(c.conditions_after), "rules": [_responsible_json(r) for r in c.rules_after]},
    }


def diff_json(res: DiffResult, old_name: str, new_name: str) -> str:
    doc = {
        "schema": DIFF_SCHEMA,
        "old": old_name,
        "new": new_name,
        "changed": res.changed,
        "scenarios": [s.key for s in res.scenarios],
        "classes": [class_json(c) for c in res.classes],
        "incomplete": res.incomplete,
        "notes": res.notes,
    }
    return json.dumps(doc, indent=2) + "\n"
