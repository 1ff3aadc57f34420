"""A ruleset from a file or standard input, as the CLI reads one: a large iptables-save dump is
parsed while it is read (:mod:`.stream`), an ``iptexplain snapshot`` gives its ruleset, any
other text goes to :func:`iptexplain.parse.parse_text`."""

from __future__ import annotations

from iptexplain import parse
from iptexplain.graph import Ruleset
from iptexplain.inputs.snapshot import is_snapshot, load_snapshot
from iptexplain.inputs.stream import read_ruleset_or_text


def ruleset_from_text(text: str, source: str = "<input>", fmt: str = "auto", family: int | None = None,
                      table: str | None = None) -> Ruleset:
    """:func:`iptexplain.parse.parse_text`, and an ``iptexplain snapshot``'s ruleset (its host
    model is for ``trace``)."""
    if fmt == "snapshot" or (fmt == "auto" and is_snapshot(text)):
        rs = load_snapshot(text, source)[0]
        if family is not None:
            rs.tables = {k: t for k, t in rs.tables.items() if k[0] == family}
        return rs
    return parse.parse_text(text, source, fmt, family, table)  # looked up here: tests replace it


def load(path: str, fmt: str = "auto", family: int | None = None, table: str | None = None,
         progress: bool = True) -> Ruleset:
    """Read a file (``-``: standard input) as the CLI does: a large iptables-save dump is parsed
    while it is read, with a progress bar on a terminal (:mod:`iptexplain.inputs.stream`)."""
    rs, text, name = read_ruleset_or_text(path, fmt, family, table, progress=progress)
    if rs is not None:
        return rs
    return ruleset_from_text(text, name, fmt, family, table)  # type: ignore[arg-type]
