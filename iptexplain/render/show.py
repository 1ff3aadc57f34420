"""``iptexplain show``: the ruleset as rich tables per table and chain."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table as RichTable

from iptexplain.graph import Ruleset


def render_ruleset(rs: Ruleset, table: str | None = None, family: int | None = None,
                   console: Console | None = None) -> None:
    console = console or Console()
    for (fam, name), t in rs.tables.items():
        if (table and name != table) or (family and fam != family):
            continue
        for c in t.chains.values():
            head = f"[bold]{name}[/] {c.name}" + (f" (policy {c.policy})" if c.builtin else f" ({len(c.references)} references)")
            rt = RichTable(title=head, title_justify="left", show_lines=False)
            rt.add_column("#", justify="right")
            rt.add_column("rule")
            rt.add_column("target")
            for r in c.rules:
                rt.add_row(str(r.number), " ".join(r.save_args()[:-2] if r.target else r.save_args()), r.target_name)
            console.print(rt)
    console.print(f"{len(rs.tables)} tables, {rs.rule_count()} rules")
