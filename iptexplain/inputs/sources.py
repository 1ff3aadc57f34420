"""Where a trace's input comes from: a file or standard input, a bundled example, a snapshot, or
the live host -- resolved to what the tracer needs (:class:`TraceInput`).

Each kind of input brings different facts, and this module is the one place that knows which:

* a file of iptables text (save, -S, a listing) brings only rules; ``--host``/``--iface``/
  ``--route``/``--local`` and ``--ipset`` add the rest.  A file without rules is an input error:
  the user gave it, and it is not what they meant.
* the live host (no FILE, as root) brings the rules, the host model, the backend each family was
  read from, and -- when rules use ``-m set`` / ``-j SET`` -- the contents of the ipsets
  (``ipset save``).  A host without rules is a fact, not an error: every hook accepts.
* a snapshot brings what the live host brought, as it was when the snapshot was taken.

The backend matters to the tracer: iptables-nft registers the security table at priority 150,
after nat INPUT; legacy at 50, before it.  ``--backend`` forces the one read live, and says which
one a file's rules came from.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from iptexplain.core.errors import InputError
from iptexplain.graph import Ruleset
from iptexplain.host.infer import parse_host_options
from iptexplain.host.model import HostModel
from iptexplain.host.readers import host_from_ip
from iptexplain.inputs.examples import load_example
from iptexplain.inputs.ipset import parse_ipset_save
from iptexplain.inputs.snapshot import is_snapshot, open_snapshot
from iptexplain.inputs.stream import read_input, read_ruleset_or_text
from iptexplain.parse import parse_text
from iptexplain.parse.combine import combine
from iptexplain.parse import ACCEPTED

BACKENDS = ("nft", "legacy")


@dataclass
class TraceInput:
    """What a trace starts from.

    ``kind``: "file", "example", "snapshot" or "live".  ``family``: the flow's family (asked for,
    else the ruleset's only family, else IPv4).  ``backends``: family -> "nft"/"legacy" when the
    input says (live, snapshot, ``--backend``); the tracer's default otherwise.  ``ipsets``: set
    name -> contents for ``-m set`` (None: nothing known, the set matches fork).  Where the host
    model and the sets came from is in the ruleset's notes.
    """

    ruleset: Ruleset
    host: HostModel | None
    family: int
    kind: str
    backends: dict[int, str] = field(default_factory=dict)
    ipsets: dict[str, Any] | None = None

    @property
    def backend(self) -> str | None:
        """The backend of the flow's family, for ``trace_flow(backend=...)``."""
        return self.backends.get(self.family)


def _optional(module: str):  # type: ignore[no-untyped-def]
    """A module a build may lack (live reading needs the host's tools), or None."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def resolve(file: str | tuple[str, ...] | list[str] | None = None, example: str | None = None,
            family: int | None = None, input_format: str = "auto", *, backend: str | None = None,
            host_files: tuple[str, ...] = (), local: tuple[str, ...] = (), ifaces: tuple[str, ...] = (),
            routes: tuple[str, ...] = (), ipset_files: tuple[str, ...] = (),
            table: str | None = None) -> TraceInput:
    """The trace's input from ``--example``, FILE (``-``: standard input; a dump or a snapshot) or,
    with neither, the live host.  ``backend``: "nft"/"legacy" (None: detected, or not known).
    Several files (``trace filter.txt nat.txt``) are the pieces of one host's ruleset, read as one
    (:func:`read_files`).  ``table``: the table of -S / -L text that does not name its own
    (``--table``).

    Raises InputError (one line, ``FILE:LINE: what is wrong``) on bad input.
    """
    if backend is not None and backend not in BACKENDS:
        raise InputError(f"unknown backend `{backend}' (expected nft or legacy)", "--backend")
    files = (file,) if isinstance(file, str) else tuple(file or ())
    if table is not None and not files:
        raise InputError("--table names the table of -S / -L text given as FILE", "--table")
    if len(files) > 1 or table is not None:
        rs = read_files(files, input_format, table, lazy=True)
        src = TraceInput(rs, None, _flow_family(rs, family), "file", {4: backend, 6: backend} if backend else {})
    else:
        src = _ruleset_and_host(files[0] if files else None, example, family, input_format, backend)
    rs = src.ruleset
    if src.kind in ("file", "example") and not rs.tables and not rs.nft_tables:
        raise InputError(f"no iptables rules found in the input (expected {ACCEPTED})", rs.source)
    if family is not None and family not in rs.families() and src.kind in ("file", "example"):
        other = 10 - family
        raise InputError(f"the input has no IPv{family} tables (only IPv{other}: give -{other} and "
                         f"IPv{other} addresses)", rs.source)
    if src.kind in ("live", "snapshot"):
        _note_nothing_loaded(src)
    src.host = _with_given_host(src.host, family, host_files, local, ifaces, routes)
    given = _ipsets_from_files(rs, ipset_files)
    if given is not None:
        src.ipsets = {**(src.ipsets or {}), **given}
    return src


def read_files(files: tuple[str, ...], input_format: str = "auto", table: str | None = None,
               save_ok: bool = False, lazy: bool = False) -> Ruleset:
    """Read files of iptables text (``-``: standard input) as the one ruleset of one host.

    Each is read on its own -- any format, any mix -- and they are joined table by table and
    chain by chain (:func:`iptexplain.parse.combine.combine`, which says what a table given twice
    means); every rule keeps its ``FILE:LINE``.  ``table`` (``--table``) names the table of -S /
    -L text that does not name its own; an iptables-save dump names its tables, so it is an
    error there (``save_ok``: ignored there, as ``show -t`` selects a dump's table).  A snapshot is a whole host with its own model: it cannot be one of several."""
    if list(files).count("-") > 1:
        raise InputError("standard input (`-') can be given once", "-")
    parts = []
    for f in files:
        text, name = read_input(f)
        if is_snapshot(text):
            if len(files) > 1:
                raise InputError("a snapshot is a whole host: give it alone, not with other inputs", name)
            raise InputError("a snapshot names its tables: --table is for -S and -L text", name)
        # lazy (a trace of one input): a listing's rows are read as the trace reaches them.
        rs = parse_text(text, name, input_format, table=table, lazy=lazy and len(files) == 1)
        if table is not None and rs.format == "save" and not save_ok:
            raise InputError("an iptables-save dump names its tables (`*filter' ...): --table is for "
                             "iptables -S and -L text", name)
        parts.append(rs)
    return combine(parts)


def _ruleset_and_host(file: str | None, example: str | None, family: int | None, input_format: str,
                      backend: str | None) -> TraceInput:
    forced = {4: backend, 6: backend} if backend else {}
    if example is not None:
        rs, host = load_example(example, family)
        return TraceInput(rs, host, _flow_family(rs, family), "example", forced)
    if file is not None:
        # A large iptables-save dump is parsed as it is read (progress bar on a terminal).
        # Its rules' options are read when the trace reaches them (iptexplain.parse.lazy).
        streamed, text, name = read_ruleset_or_text(file, input_format, lazy=True)
        if streamed is not None:
            return TraceInput(streamed, None, _flow_family(streamed, family), "file", forced)
        assert text is not None
        if is_snapshot(text):
            return _from_snapshot(text, name, family, backend)
        rs = parse_text(text, name, input_format, lazy=True)  # nft: chains read when reached
        return TraceInput(rs, None, _flow_family(rs, family), "file", forced)
    live = _optional("iptexplain.inputs.live")
    if live is None or not hasattr(live, "read_live_host"):
        raise InputError("no FILE given and live reading is not available: pipe a saved dump: "
                         "sudo iptables-save | iptexplain trace -", "iptexplain trace")
    state = live.read_live_host(family, backend)
    src = TraceInput(state.ruleset, state.host, _flow_family(state.ruleset, family), "live",
                     dict(state.backends))
    if live.uses_ipsets(state.ruleset):
        try:
            text = live.read_ipsets()
        except InputError as e:
            state.ruleset.note("warning", f"rules use ipsets, but their contents could not be read ({e}): "
                                          f"-m set rules fork")
        else:
            src.ipsets = _kept_ipsets(state.ruleset, text, "ipset save", "read live with `ipset save'")
    return src


def _from_snapshot(text: str, name: str, family: int | None, backend: str | None) -> TraceInput:
    # The live reader, only for a snapshot or a live host (see inputs.snapshot.make_snapshot).
    from iptexplain.inputs.live import uses_ipsets

    snap = open_snapshot(text, name)
    rs = snap.ruleset
    src = TraceInput(rs, snap.host, _flow_family(rs, family), "snapshot", dict(snap.backends))
    if backend is not None:
        wrong = sorted(f for f, b in snap.backends.items() if b != backend)
        if wrong:
            raise InputError(f"the snapshot's IPv{wrong[0]} rules were read from the {snap.backends[wrong[0]]} "
                             f"backend, not {backend} (leave --backend out for a snapshot)", name)
    if snap.ipsets is not None:
        src.ipsets = _kept_ipsets(rs, snap.ipsets[0], snap.ipsets[1], f"from the snapshot ({snap.ipsets[1]})")
    elif uses_ipsets(rs) and not any("ipset" in n.message for n in rs.notes if n.kind == "warning"):
        rs.note("warning", "rules use ipsets, but the snapshot has no ipset contents: -m set rules fork "
                           "(give them with --ipset FILE)")
    return src


def _flow_family(rs: Ruleset, family: int | None) -> int:
    return family or (6 if rs.families() == [6] else 4)


def _kept_ipsets(rs: Ruleset, text: str, source: str, where: str) -> dict[str, Any] | None:
    """The sets of a host's ``ipset save`` (live or kept in a snapshot).  Text iptexplain cannot
    read is a warning, not an error: the trace still runs, forking on the set matches."""
    try:
        sets = parse_ipset_save(text, source)
    except InputError as e:
        rs.note("warning", f"ipset contents {where} could not be read ({e}): -m set rules fork")
        return None
    rs.note("ipset", f"ipset contents {where}: {_describe_sets(sets)}")
    return sets


def _describe_sets(sets: dict[str, Any]) -> str:
    if not sets:
        return "no sets"
    names = list(sets)
    shown = ", ".join(names[:6]) + (f", … ({len(names) - 6} more)" if len(names) > 6 else "")
    return f"{len(names)} set{'s' if len(names) != 1 else ''} ({shown})"


def _ipsets_from_files(rs: Ruleset, files: tuple[str, ...]) -> dict[str, Any] | None:
    """``--ipset FILE`` (repeatable; ``-`` is standard input): bad lines are input errors."""
    if not files:
        return None

    sets: dict[str, Any] = {}
    for f in files:
        text, name = read_input(f)
        got = parse_ipset_save(text, name)
        sets.update(got)
        rs.note("ipset", f"ipset contents from {name}: {_describe_sets(got)}")
    return sets


def _does_nothing(rs: Ruleset, family: int) -> bool:
    """No rule and no built-in policy but ACCEPT in any table of ``family``."""
    for t in rs.tables_of(family):
        for c in t.chains.values():
            if c.rules or (c.builtin and c.policy not in (None, "ACCEPT")):
                return False
    return True


def _note_nothing_loaded(src: TraceInput) -> None:
    """A live host (or its snapshot) whose iptables does nothing to the flow's family: say so --
    every hook accepts -- unless the reader already said it of the whole host."""
    rs = src.ruleset
    if not _does_nothing(rs, src.family):
        return
    if any(n.message.startswith(("no iptables rules", f"no IPv{src.family} iptables rules")) for n in rs.notes):
        return
    backend = src.backend or "nft"
    rs.note("live", f"no IPv{src.family} iptables rules loaded on backend {backend}: every hook accepts")


def _with_given_host(host: HostModel | None, family: int | None, host_files: tuple[str, ...],
                     local: tuple[str, ...], ifaces: tuple[str, ...], routes: tuple[str, ...]
                     ) -> HostModel | None:
    """The host model with what the user gave: saved ``ip`` output (``--host``), then
    ``--iface``/``--route``/``--local``, each winning over what was read before it."""
    if host_files:
        texts = [read_input(f) for f in host_files]
        host = _merge_host(host, host_from_ip(texts, family))
    if local or ifaces or routes:
        host = _merge_host(host, parse_host_options(local=list(local), ifaces=list(ifaces), routes=list(routes)))
    return host


def _merge_host(host: HostModel | None, given: HostModel) -> HostModel:
    if host is None:
        return given
    for iface in given.interfaces.values():
        host.add_interface(iface)
    host.routes[:0] = given.routes
    host.notes.extend(given.notes)
    return host
