"""The trace view's markers and styles: Unicode on a UTF-8 console, ASCII otherwise, and the
colour of each kind of step and verdict (also used by the other views that print a trace)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from iptexplain.netfilter.trace import DROPPED, PASSED, REJECTED

# ---------------------------------------------------------------------------------------------
# Markers: Unicode on a UTF-8 console, ASCII otherwise (rich tells us through ascii_only).


@dataclass(frozen=True)
class Marks:
    match: str
    miss: str
    verdict: str
    rewrite: str
    route: str
    fork: str
    ret: str
    arrow: str
    note: str
    ok: str
    bad: str
    maybe: str
    neq: str
    uncertain: str = "?"  # a rule or verdict that rests on what the input did not show


# What the texts themselves use (the flow's arrow, reasons written by the tracer…), for consoles
# that cannot show them.
ASCII_TEXT = {
    "→": "->", "←": "<-", "≠": "!=", "∉": "not in", "∈": "in", "…": "...", "—": "-", "–": "-",
    "✓": "+", "✗": "x", "⇒": "=>", "✎": "~", "⑂": "<>", "↩": "<-", "✔": "OK", "✘": "XX",
    "≤": "<=", "≥": ">=", "×": "x", "·": "-", "∅": "none",
}

UNICODE = Marks("✓", "✗", "⇒", "✎", "⤷", "⑂", "↩", "→", "!", "✔", "✘", "?", "≠")
ASCII = Marks("+", "x", "=>", "~", ">", "<>", "<-", "->", "!", "OK", "XX", "??", "!=")

# Note kinds shown as warnings (the trace may differ from the kernel's because of them).
WARNING_NOTES = frozenset({"fidelity", "repair", "unknown-module", "duplicate", "warning", "partial"})

# Styles, by meaning.  Kept here so that every view of the project uses the same words.
STYLE = {
    "hook": "bold cyan",
    "table": "bold",
    "chainpath": "cyan",
    "match": "green",
    "miss": "dim",
    "reason": "italic",
    "skipped": "dim italic",
    "jump": "blue",
    "accept": "bold green",
    "drop": "bold red",
    "nat": "yellow",
    "rewrite": "yellow",
    "route": "magenta",
    "note": "yellow",
    "fork": "bold magenta",
    "cond": "magenta",
    "where": "dim",
    "conntrack": "dim cyan",
    "policy": "bold",
    "uncertain": "dim yellow",
}

_VERDICT_STYLE = {
    "ACCEPT": "accept", "DROP": "drop", "REJECT": "drop", "QUEUE": "note", "NFQUEUE": "note",
    "RETURN": "jump",
}
_NAT_TARGETS = {"DNAT", "SNAT", "MASQUERADE", "REDIRECT", "NETMAP", "MARK", "CONNMARK", "TPROXY"}

MAX_UNCERTAIN_RULES = 4  # rules an uncertain verdict names in the closing summary

def style_of(key: str) -> str:
    return STYLE.get(key, key)


def target_style(rule_target: str) -> str:
    if rule_target in _VERDICT_STYLE:
        return style_of(_VERDICT_STYLE[rule_target])
    if rule_target in _NAT_TARGETS:
        return style_of("nat")
    return style_of("jump")


def outcome_style(kind: str) -> str:
    if kind in PASSED:
        return style_of("accept")
    if kind in (DROPPED, REJECTED):
        return style_of("drop")
    return style_of("note")


class ContainerNames:
    """Annotate addresses with the container that owns them: ``172.17.0.6:9525 (gallant_lumiere)``.

    Only whole addresses (with their port, if any) are annotated: not ``172.17.0.60``, not a
    prefix ``172.17.0.6/32`` (a rule's match is about a range, not the container).
    """

    def __init__(self, host: Any) -> None:
        names: dict[str, str] = {}
        containers = getattr(host, "containers", None) or {}
        for addr, info in containers.items():
            name = info.get("name") if isinstance(info, dict) else str(info)
            if name:
                names[str(addr)] = str(name).lstrip("/")
        self.names = names
        alts = "|".join(re.escape(a) for a in sorted(names, key=len, reverse=True))
        self._re = re.compile(rf"(?<![\w.:/])({alts})(:[0-9]+)?(?![\w./:])") if names else None

    def __call__(self, text: str) -> str:
        if self._re is None or not text:
            return text
        def sub(m: re.Match[str]) -> str:
            name = self.names[m.group(1)]
            return m.group(0) if name in text else f"{m.group(0)} ({name})"

        return self._re.sub(sub, text)
