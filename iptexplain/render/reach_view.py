"""Views of the reachability table (:mod:`iptexplain.analysis.reach`): a rich table per
destination, JSON (schema ``iptexplain.reach/1``), and Graphviz (entry points on the left,
destinations on the right, an edge per source region: green gets through, red does not)."""

from __future__ import annotations

import json
import re
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from iptexplain.analysis.reach import PUBLISHED, Access, ReachResult, Row
from iptexplain.terminal import printable

REACH_SCHEMA = "iptexplain.reach/1"
KIND_WORDS = {PUBLISHED: "published", "host": "this host", "forwarded": "forwarded to"}


def _fate_style(a: Access) -> str:
    return "green" if a.passed else "red" if a.passed is False else "yellow"


def row_title(row: Row) -> Text:
    t = Text()
    if row.kind == PUBLISHED:
        t.append("published ", "bold magenta")
    elif row.kind == "forwarded":
        t.append("forwarded to ", "bold cyan")
    else:
        t.append("", "bold")
    t.append(f"{row.proto} {row.dest}", "bold")
    if row.translated_by:
        t.append("  (DNAT by " + ", ".join(short(r.text) for r in row.translated_by) + ")", "dim")
    return t


def depends(conditions: tuple[str, ...]) -> str:
    """What the fate depends on; kube-proxy's endpoint choice in two words."""
    if all("random choice" in c for c in conditions):
        return "chosen at random, per connection"
    return "depends on: " + "; ".join(conditions[:3])


def short(text: str) -> str:
    """``filter DOCKER #4 (line 93)``: the file is the table's heading's business."""
    return re.sub(r"\((?:[^()]*):([0-9]+)\)", r"(line \1)", text)


def row_table(row: Row) -> Table:
    tab = Table(show_header=True, header_style="bold", box=None, pad_edge=False, expand=False)
    tab.add_column("from", no_wrap=True)
    tab.add_column("sources")
    tab.add_column("fate")
    tab.add_column("decided by")
    for a in row.access:
        who = "\n".join(short(r.text) for r in a.rules) or "—"
        fate = Text(a.fate, _fate_style(a))
        if a.conditions:
            fate.append("\n(" + depends(a.conditions) + ")", "dim")
        tab.add_row(a.scenario.name, a.words, fate, who)
    return tab


def bypass_notes(row: Row) -> list[Text]:
    """The sources a published port lets in that the host's INPUT rules refuse."""
    out = []
    for a in row.access:
        for words, rule in a.bypass:
            dnat = ", ".join(short(r.text) for r in row.translated_by) or "DNAT"
            out.append(Text(f"  ⚠ {a.scenario.name}, {words}: refused on INPUT by {short(rule)}, and they "
                            f"reach it: the DNAT ({dnat}) in nat PREROUTING sends them to FORWARD", "yellow"))
    return out


def reach_renderable(res: ReachResult) -> RenderableType:
    parts: list[RenderableType] = []
    for row in res.rows:
        parts.append(row_title(row))
        parts.append(row_table(row))
        parts.extend(bypass_notes(row))
        parts.append(Text(""))
    if not res.rows:
        parts.append(Text("no destination is reachable from any interface"))
    if res.incomplete:
        parts.append(Text("INCOMPLETE: too many branches in " + ", ".join(res.incomplete)
                          + ": narrow with flow options (-p, --dport, -i)", "yellow"))
    return Printable(Group(*parts))


class Printable:
    """A renderable whose text is made safe for a terminal: input text (chain names, comments,
    interface and container names) may hold ESC sequences and other controls; every segment is
    made printable, rich's own control segments aside (as the trace view does)."""

    def __init__(self, inner: RenderableType) -> None:
        self.inner = inner

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for seg in console.render(self.inner, options):
            if seg.control or seg.text.isprintable() or seg.text == "\n":
                yield seg
            else:
                yield Segment(printable(seg.text), seg.style)


def _access_json(a: Access) -> dict[str, Any]:
    return {"from": a.scenario.name, "iniface": a.scenario.flow.iniface, "sources": a.words,
            "fate": a.fate, "passed": a.passed, "depends_on": list(a.conditions),
            "decided_by": [{"text": r.text, "spec": r.spec or None} for r in a.rules],
            "bypasses_input": [{"sources": w, "refused_by": r} for w, r in a.bypass]}


def reach_json(res: ReachResult, source: str) -> str:
    doc = {
        "schema": REACH_SCHEMA,
        "ruleset": source,
        "rows": [{"kind": r.kind, "proto": r.proto, "destination": r.dest,
                  "translated_by": [{"text": t.text, "spec": t.spec} for t in r.translated_by],
                  "access": [_access_json(a) for a in r.access]} for r in res.rows],
        "incomplete": res.incomplete,
        "notes": res.notes,
    }
    return json.dumps(doc, indent=2) + "\n"


def _q(s: str) -> str:
    """A DOT string: quotes and backslashes escaped, line breaks as DOT's centred ``\\n``."""
    s = printable(s)  # input text: no terminal controls in a file a terminal may show
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def reach_dot(res: ReachResult) -> str:
    """Entry points → destinations; only the destinations some source reaches, with red edges
    for the sources refused there (a full table reads better as text)."""
    out = ["digraph reach {", "  rankdir=LR;", '  node [shape=box, fontname="monospace", fontsize=10];',
           '  edge [fontname="monospace", fontsize=9];']
    entries: dict[str, str] = {}
    for i, row in enumerate(res.rows):
        if not any(a.passed for a in row.access):
            continue
        dest = f"d{i}"
        label = f"{KIND_WORDS.get(row.kind, row.kind)} {row.proto} {row.dest}"
        out.append(f"  {dest} [label={_q(label)}, shape=box, style=rounded];")
        for a in row.access:
            src = entries.setdefault(a.scenario.name, f"e{len(entries)}")
            color = "darkgreen" if a.passed else "red3" if a.passed is False else "orange"
            style = "solid" if a.passed else "dashed"
            rule = a.rules[0].text.split(" (")[0] if a.rules else ""
            out.append(f"  {src} -> {dest} [color={color}, style={style}, label={_q(a.words + chr(10) + rule)}];")
            if a.bypass:
                out.append(f"  {src} -> {dest} [color=orange, style=bold, label={_q('bypasses INPUT: ' + a.bypass[0][0])}];")
    for name, node in entries.items():
        out.append(f"  {node} [label={_q(name)}, shape=ellipse];")
    out.append("}")
    return "\n".join(out) + "\n"
