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
from dataclasses import dataclass
from datetime import datetime, timezone

from iptexplain.errors import InputError
from iptexplain.graph import Ruleset
from iptexplain.host import HostModel

SCHEMA = "iptexplain-snapshot"
VERSION = 1
_HEAD_RE = re.compile(r'^\s*\{\s*"schema"\s*:\s*"iptexplain-snapshot"')


def is_snapshot(text: str) -> bool:
    """True for a snapshot file (its first key is the schema name)."""
    return bool(_HEAD_RE.match(text[:200]))


def _version() -> str:
    try:
        from importlib.metadata import version

        return f"iptexplain {version('iptexplain')}"
    except Exception:
        return "iptexplain"


def make_snapshot(family: int | None = None, backend: str | None = None) -> dict:
    """Read this host (root, read-only) into the snapshot document."""
    from iptexplain.docker_api import add_containers
    from iptexplain.hostio import host_to_dict, read_host
    from iptexplain.live import NFT_JSON_SOURCE, read_ipsets, read_ruleset, uses_ipsets

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
    """Write a snapshot readable by its owner only (it maps the host's network and firewall);
    an existing file keeps its mode.  InputError on failure."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        raise InputError(e.strerror or str(e), path) from None


def snapshot_ipsets(text: str, source: str = "<snapshot>") -> tuple[str, str] | None:
    """The ``ipset save`` text a snapshot kept (when its rules use ipsets), with a source name
    for :func:`iptexplain.ipset.parse_ipset_save`; None when it has none."""
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
    """A snapshot as read: what the host's tracer needs, as :class:`iptexplain.live.LiveHost`."""

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
    from iptexplain.hostio import host_from_dict
    from iptexplain.live import NFT_JSON_SOURCE, FamilyRead, add_nft_tables, ruleset_from_reads

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
    reads = []
    for fam_key in sorted(rulesets):
        entry = rulesets[fam_key]
        if fam_key not in ("4", "6") or not isinstance(entry, dict) or not isinstance(entry.get("text"), str):
            raise InputError(f"bad ruleset entry `{fam_key}' in snapshot", source)
        fam = int(fam_key)
        recorded = doc.get("backend")
        backend = recorded.get(fam_key, "nft") if isinstance(recorded, dict) else "nft"
        if backend not in ("nft", "legacy"):
            raise InputError(f"bad backend {backend!r} for IPv{fam} in snapshot (expected nft or legacy)",
                             source)
        reads.append(FamilyRead(fam, backend, entry["text"], str(entry.get("source") or f"IPv{fam}"),
                                str(entry.get("how", "")), 0))
    rs = ruleset_from_reads(reads, source=source, fmt="snapshot", label=source)
    nft = doc.get("nftables")
    if isinstance(nft, dict) and isinstance(nft.get("text"), str):
        add_nft_tables(rs, nft["text"], [r.family for r in reads],
                       [r.family for r in reads if r.backend == "nft"], source=f"{source}[{NFT_JSON_SOURCE}]")
    for n in doc.get("notes") or []:
        if isinstance(n, dict) and "message" in n:
            rs.note(str(n.get("kind", "live")), str(n["message"]))
    when = doc.get("created", "?")
    rs.note("snapshot", f"snapshot of {doc.get('hostname', '?')} taken {when} ({doc.get('tool', '?')})")
    host = host_from_dict(doc.get("host") or {}, source)
    host.source = "snapshot"
    entry = doc.get("ipsets")
    ipsets = None
    if isinstance(entry, dict) and isinstance(entry.get("text"), str):
        ipsets = (entry["text"], f"{source}[ipset save]")
    return Snapshot(rs, host, {r.family: r.backend for r in reads}, ipsets, reads)
