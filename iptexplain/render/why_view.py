"""The view of trace --why (:mod:`iptexplain.analysis.why`): text, and the JSON part."""

from __future__ import annotations

from iptexplain.analysis.why import Answer, WhyResult
from iptexplain.render.json_out import rule_json
from iptexplain.netfilter.outcome import rule_ref
from iptexplain.terminal import printable


def why_text(res: WhyResult) -> str:
    lines = []
    for rule, answers in res.answers:
        lines.append(f"{rule_ref(rule)}: {rule.spec()}")
        groups: dict[tuple, list[Answer]] = {}
        for a in answers:
            groups.setdefault((a.verdict, tuple(a.because), a.outcome), []).append(a)
        for (verdict, because, outcome), group in groups.items():
            when = ""
            if len(answers) > 1:
                conds = ["; ".join(a.conditions) or "the flow" for a in group]
                when = " when " + " or ".join(conds[:3]) + (" …" if len(conds) > 3 else "")
            lines.append(f"  {verdict.upper()}{when} (the packet: {outcome})")
            lines += [f"    - {b}" for b in because]
    return printable("\n".join(lines) + "\n")  # input text: no terminal controls


def why_json(res: WhyResult) -> list[dict]:
    return [{"rule": rule_json(r), "answers": [
        {"verdict": a.verdict, "because": a.because, "outcome": a.outcome, "conditions": a.conditions}
        for a in answers]} for r, answers in res.answers]
