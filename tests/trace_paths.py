"""The tracer's steps in the kernel's trace vocabulary, for comparing the two.

``xtables-monitor --trace`` prints one event per rule that matched (verdict CONTINUE, JUMP:X,
GOTO:X, RETURN, ACCEPT, DROP -- NAT targets show as ACCEPT, REJECT as DROP) and one per base
chain policy; falling off a user chain prints nothing.  :func:`kernel_path` turns a trace leaf's
steps into that list of ``(table, chain, rule-or-None, verdict)`` so a test can compare it with
``kernel_lab.Observation.path()``.
"""

from __future__ import annotations

from typing import Iterable, Optional

from iptexplain.netfilter import trace as T

Event = tuple[str, str, Optional[str], str]


def kernel_path(steps: Iterable[T.Step], tables: Iterable[str] | None = None) -> list[Event]:
    """The events the kernel would print for these steps (``tables``: keep only these)."""
    out: list[Event] = []
    pending: tuple[str, str, str] | None = None

    def flush(verdict: str = "CONTINUE") -> None:
        nonlocal pending
        if pending is not None:
            out.append(pending + (verdict,))
            pending = None

    for s in steps:
        if s.kind == T.RULE and s.matched:
            flush()
            pending = (s.table, s.chain, s.rule.spec())
        elif s.kind in (T.JUMP, T.GOTO):
            flush(f"{'JUMP' if s.kind == T.JUMP else 'GOTO'}:{s.detail['to']}")
        elif s.kind == T.VERDICT:
            flush({"REJECT": "DROP"}.get(s.verdict or "", s.verdict or ""))
        elif s.kind == T.RETURN and s.rule is not None:
            flush("RETURN")
        elif s.kind == T.POLICY:
            flush()
            out.append((s.table, s.chain, None, s.verdict or "ACCEPT"))
        elif s.kind in (T.TABLE, T.HOOK, T.ROUTE, T.CONNTRACK):
            flush()
    flush()
    if tables is not None:
        keep = set(tables)
        out = [e for e in out if e[0] in keep]
    return out


def tables_seen(steps: Iterable[T.Step]) -> list[tuple[str, str]]:
    """(hook, table) of every table traversal, in order."""
    return [(s.hook, s.table) for s in steps if s.kind == T.TABLE]


def hooks_seen(steps: Iterable[T.Step]) -> list[str]:
    return [s.hook for s in steps if s.kind == T.HOOK]
