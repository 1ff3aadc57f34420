"""A snapshot: the ruleset and host model of a live host in one file, read later anywhere.

``iptexplain snapshot -o host.snap`` on the host (as root) writes one JSON document that ops can
attach to a ticket; ``iptexplain trace host.snap --dport 9525`` and ``iptexplain show host.snap``
read it on any machine.  The ruleset is kept as the exact text the host's save command printed
(``iptables-nft-save -c`` or its legacy equivalent) -- so a rule's position in a trace is a line
of that dump -- and goes through the same parser as a saved file.  Layout (version 1)::

    {
      "schema": "iptexplain-snapshot", "version": 1,
      "created": "2026-11-26T23:40:00Z", "hostname": "web-1", "tool": "iptexplain 0.1.0",
      "backend": {"4": "nft", "6": "nft"},
      "rulesets": {"4": {"source": "iptables-nft-save", "how": "iptables-nft-save -c",
                         "text": "*filter\\n..."}, "6": {...}},
      "notes": [{"kind": "live", "message": "..."}],
      "host": {"interfaces": [...], "routes": [...], "sysctls": {...}, "containers": {...}, ...},
      "ipsets": {"source": "ipset save", "text": "create ..."},    (only when rules use ipsets)
      "nftables": {"source": "nft -j list ruleset", "text": "{\"nftables\": [...]}"}
    }

``nftables`` (when the host has nft) keeps every nf_tables table as ``nft -j list ruleset``
printed it: the native tables (firewalld, Docker 29, kube-proxy's nftables mode, LXD…) are traced
from it beside iptables' tables, and iptables-nft's own tables, which it lists too, are read from
the iptables dump only.  A reader that predates the key ignores it.
"""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone

from iptexplain.core.errors import InputError
from iptexplain.graph import Ruleset
from iptexplain.host.model import HostModel
from iptexplain.host.readers import host_from_dict, host_to_dict
from iptexplain.host.running import read_host
from iptexplain.numbers import shown
from iptexplain.schema import Where, describe, want_dict, want_list, want_str

SCHEMA = "iptexplain-snapshot"
VERSION = 1
_HEAD_RE = re.compile(r'^\s*\{\s*"schema"\s*:\s*"iptexplain-snapshot"')


def is_snapshot(text: str) -> bool:
    """True for a snapshot file (its first key is the schema name)."""
    return bool(_HEAD_RE.match(text[:200]))


def _version() -> str:
    try:
        # importlib.metadata is slow to import; only writing a snapshot needs it.
        from importlib.metadata import version

        return f"iptexplain {version('iptexplain')}"
    except Exception:
        return "iptexplain"


def make_snapshot(family: int | None = None, backend: str | None = None) -> dict:
    """Read this host (root, read-only) into the snapshot document."""
    # The live reader (subprocess, python-iptables, the Docker API over http.client) is loaded
    # only when a snapshot is taken or read: is_snapshot() is on every file input's path.
    from iptexplain.inputs.docker_api import add_containers
    from iptexplain.inputs.live import NFT_JSON_SOURCE, read_ipsets, read_ruleset, uses_ipsets

    rs, reads, det = read_ruleset(family, backend)
    host = read_host()
    add_containers(host)
    ipsets = None
    if uses_ipsets(rs):
        try:
            ipsets = {"source": "ipset save", "text": read_ipsets()}
        except InputError as e:
            rs.note("warning", f"rules use ipsets, but their contents could not be saved ({e})")
    doc = {
        "schema": SCHEMA,
        "version": VERSION,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "hostname": socket.gethostname(),
        "tool": _version(),
        "iptables_version": det.version,
        "backend": {str(r.family): r.backend for r in reads},
        "rulesets": {str(r.family): {"source": r.source, "how": r.how, "text": r.text} for r in reads},
        "notes": [{"kind": n.kind, "message": n.message} for n in rs.notes],
        "host": host_to_dict(host),
    }
    if ipsets is not None:
        doc["ipsets"] = ipsets
    if det.nft_json:
        doc["nftables"] = {"source": NFT_JSON_SOURCE, "text": det.nft_json}
    return doc


def dumps(doc: dict) -> str:
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def write_file(path: str, text: str) -> None:
    """Write a snapshot readable by its owner only (mode 0600: it maps the host's network and
    firewall), atomically: the text goes to a new temporary file in the same directory, which is
    then renamed over ``path``.  A symbolic link to a file (or to nothing yet) is refused: as
    root, following it would overwrite whatever it points at and keep that file's mode.  A pipe
    or a terminal (``-o /dev/stdout``, ``/proc/self/fd/1``) is written to as it is: nothing there
    can be clobbered.  InputError on failure; a failed write leaves no temporary file behind."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise InputError(e.strerror or str(e), path) from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        try:
            target = os.stat(path)
        except OSError:
            target = None
        if target is not None and (stat.S_ISFIFO(target.st_mode) or stat.S_ISCHR(target.st_mode)
                                   or stat.S_ISSOCK(target.st_mode)):
            _write_stream(path, text)
            return
        if stat.S_ISLNK(st.st_mode):
            raise InputError("is a symbolic link: not written (give the path of the file itself)", path)
        raise InputError("exists and is not a regular file: not written", path)
    directory = os.path.dirname(path) or "."
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=".iptexplain-snapshot-", dir=directory)  # 0600, O_EXCL
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
        tmp = None
    except OSError as e:
        raise InputError(e.strerror or str(e), path) from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _write_stream(path: str, text: str) -> None:
    """Write to a pipe, socket or terminal named by ``path`` (no file is created or truncated)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOCTTY)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        raise InputError(e.strerror or str(e), path) from None


def snapshot_ipsets(text: str, source: str = "<snapshot>") -> tuple[str, str] | None:
    """The ``ipset save`` text a snapshot kept (when its rules use ipsets), with a source name
    for :func:`iptexplain.inputs.ipset.parse_ipset_save`; None when it has none."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"not a valid snapshot: {e.msg}", source, e.lineno) from None
    entry = doc.get("ipsets") if isinstance(doc, dict) else None
    if not isinstance(entry, dict) or not isinstance(entry.get("text"), str):
        return None
    return entry["text"], f"{source}[ipset save]"


@dataclass
class Snapshot:
    """A snapshot as read: what the host's tracer needs, as :class:`iptexplain.inputs.live.LiveHost`."""

    ruleset: Ruleset
    host: HostModel
    backends: dict[int, str]  # family -> "nft" | "legacy", as read on the host
    ipsets: tuple[str, str] | None  # (ipset save text, source name), when the rules use ipsets
    reads: list  # the per-family FamilyRead entries


def load_snapshot(text: str, source: str = "<snapshot>") -> tuple[Ruleset, HostModel]:
    """The ruleset and host model of a snapshot.  Rules point at ``SOURCE[iptables-nft-save]:LINE``
    -- the line of the dump kept in the snapshot."""
    snap = open_snapshot(text, source)
    return snap.ruleset, snap.host


def open_snapshot(text: str, source: str = "<snapshot>") -> Snapshot:
    """A snapshot's ruleset, host model, backends and kept ``ipset save`` text (one JSON read)."""
    from iptexplain.inputs.live import (NFT_JSON_SOURCE, FamilyRead, add_nft_tables,  # see make_snapshot
                                        ruleset_from_reads)

    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"not a valid snapshot: {e.msg}", source, e.lineno) from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise InputError("not an iptexplain snapshot (no `schema: iptexplain-snapshot')", source)
    version = doc.get("version")
    if not isinstance(version, int) or version > VERSION or version < 1:
        raise InputError(f"snapshot version {version!r} is not supported (this iptexplain reads "
                         f"version {VERSION}; upgrade iptexplain)", source)
    rulesets = doc.get("rulesets")
    if not isinstance(rulesets, dict):
        raise InputError("snapshot has no `rulesets'", source)
    top = Where(source)
    recorded = want_dict(doc.get("backend"), top["backend"], optional=True)
    reads = []
    for fam_key in sorted(rulesets):
        entry = rulesets[fam_key]
        if fam_key not in ("4", "6") or not isinstance(entry, dict) or not isinstance(entry.get("text"), str):
            raise InputError(f"bad ruleset entry `{shown(fam_key)}' in snapshot", source)
        fam = int(fam_key)
        backend = recorded.get(fam_key, "nft")
        if backend not in ("nft", "legacy"):
            raise InputError(f"bad backend {describe(backend)} for IPv{fam} in snapshot (expected nft or legacy)",
                             source)
        w = top["rulesets"][fam_key]
        reads.append(FamilyRead(fam, backend, entry["text"],
                                want_str(entry.get("source"), w["source"], optional=True) or f"IPv{fam}",
                                want_str(entry.get("how"), w["how"], optional=True) or "", 0))
    notes = []
    for n, note in enumerate(want_list(doc.get("notes"), top["notes"], optional=True)):
        note = want_dict(note, top["notes"][n])
        notes.append((want_str(note.get("kind"), top["notes"][n]["kind"], optional=True) or "live",
                      want_str(note.get("message"), top["notes"][n]["message"])))
    about = {key: want_str(doc.get(key), top[key], optional=True) or "?" for key in ("created", "hostname", "tool")}
    entry = want_dict(doc.get("ipsets"), top["ipsets"], optional=True)
    ipsets = None
    if entry:
        ipsets = (str(want_str(entry.get("text"), top["ipsets"]["text"])), f"{source}[ipset save]")
    host = host_from_dict(doc.get("host") or {}, source)
    host.source = "snapshot"
    nft = want_dict(doc.get("nftables"), top["nftables"], optional=True)
    nft_text = want_str(nft.get("text"), top["nftables"]["text"]) if nft else None
    rs = ruleset_from_reads(reads, source=source, fmt="snapshot", label=source)
    if nft_text is not None:
        add_nft_tables(rs, nft_text, [r.family for r in reads],
                       [r.family for r in reads if r.backend == "nft"], source=f"{source}[{NFT_JSON_SOURCE}]")
    for kind, message in notes:
        rs.note(kind, message)
    rs.note("snapshot", f"snapshot of {about['hostname']} taken {about['created']} ({about['tool']})")
    return Snapshot(rs, host, {r.family: r.backend for r in reads}, ipsets, reads)
