"""Print a rule graph back as ``iptables-save`` text (what iptables-restore accepts)."""

from __future__ import annotations

from iptexplain.graph import Chain, Ruleset, Table
from iptexplain.parse.tokenize import split_args  # noqa: F401  (inverse documented in tests)


def _chain_line(c: Chain, counters: bool) -> str:
    pol = c.policy if c.builtin else "-"
    cnt = c.counters if (counters and c.counters is not None) else None
    return f":{c.name} {pol} {cnt if cnt is not None else '[0:0]'}"


def save_table(t: Table, counters: bool = False) -> str:
    lines = [f"*{t.name}"]
    chains = [c for c in t.chains.values() if c.builtin] + [c for c in t.chains.values() if not c.builtin]
    lines += [_chain_line(c, counters) for c in chains]
    for c in chains:
        for r in c.rules:
            prefix = f"{r.counters} " if counters and r.counters is not None else ""
            lines.append(prefix + r.spec())
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def save_ruleset(rs: Ruleset, family: int | None = None, counters: bool = False) -> str:
    """The ruleset (one family, or all) in iptables-save form."""
    out = []
    for (fam, _), t in rs.tables.items():
        if family is None or fam == family:
            out.append(save_table(t, counters))
    return "".join(out)
