"""Read the running ruleset and the host model of the machine iptexplain runs on (as root).

iptables has two kernel backends and a host may use either -- or both at once:

* **nf_tables** (``iptables -V`` says ``(nf_tables)``; the default on current distributions): the
  rules live in nftables tables ``ip filter``, ``ip nat``…; python-iptables cannot see them.  They
  are read with ``iptables-nft-save -c`` / ``ip6tables-nft-save -c``.
* **legacy** (x_tables, ``(legacy)``): the tables listed in ``/proc/net/ip{,6}_tables_names``.
  They are read through python-iptables when it is importable (:mod:`iptexplain.inputs.iptc_reader`),
  else with ``iptables-legacy-save -c``.

Both kinds of table see every packet when both exist; iptables-nft itself then warns
("iptables-legacy tables present").  :func:`read_live` picks, per family, the backend that holds
rules (the ``iptables -V`` default when both or neither do) and says in the ruleset's notes which
backend was read, how, and what else is loaded that the trace does not include.

nftables tables that iptables did not make (firewalld, Docker 29, kube-proxy's nftables mode, LXD)
see packets too: they are read with ``nft -j list ruleset`` and traced beside iptables' tables,
iptables-nft's own tables (which nft lists as well) being read once, from iptables-nft-save
(:func:`add_nft_tables`).

Strictly read-only: every command is a fixed argument list (no shell) that only reads, and a
legacy table is opened only when the kernel already has it (opening one creates it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field

from iptexplain.core.errors import InputError
from iptexplain.ext.base import extension_name
from iptexplain.graph import Ruleset
from iptexplain.host.model import HostModel
from iptexplain.host.running import read_host
from iptexplain.inputs import iptc_reader
from iptexplain.nft.json_reader import read_nft_json
from iptexplain.nft.mixed import is_iptables_nft, join
from iptexplain.parse.save import parse_save

SEARCH_PATH = "/usr/local/sbin:/usr/sbin:/sbin:/usr/local/bin:/usr/bin:/bin"
SAVE_TIMEOUT = 60.0  # a kube-proxy host's dump is large; iptables-save takes seconds, not minutes
PROC_NET = "/proc/net"
BACKENDS = ("nft", "legacy")
PERMISSION_HINT = ("run as root, or pipe a saved dump: sudo iptables-save | iptexplain trace -")
_RULE_RE = re.compile(r"^(?:\[[0-9]+:[0-9]+\]\s+)?-A\s", re.M)
_TABLE_RE = re.compile(r"^\*(\S+)", re.M)
# iptables-nft-save's comments on tables nft changed beyond what iptables can print.
_INCOMPATIBLE_RE = re.compile(r"^#\s*Table `?([^' ]+)'? is incompatible", re.M)
_INCOMPATIBLE_CHAINS_RE = re.compile(r"^#\s*Table `?([^' ]+)'? contains incompatible base-chains", re.M)


def save_tool(backend: str, family: int) -> str:
    """The save command of a backend and family: ``iptables-nft-save``, ``ip6tables-legacy-save``."""
    return f"{'ip' if family == 4 else 'ip6'}tables-{backend}-save"


def find_tool(name: str) -> str | None:
    return shutil.which(name, path=os.environ.get("PATH", "") + ":" + SEARCH_PATH)


def _is_permission(text: str) -> bool:
    t = text.lower()
    return "permission denied" in t or "operation not permitted" in t or "you must be root" in t


def run_save(tool: str, args: tuple[str, ...] = ("-c",), package: str = "iptables") -> str:
    """Run a save command with a fixed argument list; one clear InputError on any failure."""
    exe = find_tool(tool)
    if exe is None:
        raise InputError(
            f"`{tool}' is not installed (package {package}): install it, or read a saved dump: "
            f"iptexplain trace FILE", tool,
        )
    try:
        p = subprocess.run([exe, *args], capture_output=True, text=True, timeout=SAVE_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise InputError(f"did not finish in {SAVE_TIMEOUT:.0f}s", tool) from None
    except PermissionError:
        raise InputError(f"permission denied: {PERMISSION_HINT}", tool) from None
    except OSError as e:
        raise InputError(f"cannot run: {e.strerror or e}", tool) from None
    if p.returncode != 0:
        err = p.stderr.strip()
        if _is_permission(err):
            raise InputError(f"permission denied reading the running ruleset: {PERMISSION_HINT}", tool)
        first = err.splitlines()[0] if err else f"exit status {p.returncode}"
        raise InputError(first, tool)
    return p.stdout


def iptables_default() -> tuple[str | None, str]:
    """The backend the host's ``iptables`` command uses (``iptables -V``): (backend, version line).

    ``-V`` only prints the version; it does not touch any table.
    """
    exe = find_tool("iptables")
    if exe is None:
        return None, ""
    try:
        p = subprocess.run([exe, "-V"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None, ""
    line = (p.stdout or p.stderr).strip().splitlines()[0] if (p.stdout or p.stderr).strip() else ""
    if "(nf_tables)" in line:
        return "nft", line
    if "(legacy)" in line:
        return "legacy", line
    return None, line


def legacy_tables(family: int, proc: str | None = None) -> list[str]:
    """Tables the legacy backend has in this network namespace (a /proc read; creates nothing)."""
    path = os.path.join(proc or PROC_NET, "ip_tables_names" if family == 4 else "ip6_tables_names")
    try:
        with open(path) as f:
            return [w.strip() for w in f if w.strip()]
    except FileNotFoundError:
        return []
    except PermissionError:
        raise InputError(f"permission denied: {PERMISSION_HINT}", path) from None


def count_rules(text: str) -> int:
    return len(_RULE_RE.findall(text))


_POLICY_RE = re.compile(r"^\*(\S+)|^:(\S+) DROP\b", re.M)


def effect(text: str) -> str:
    """What a backend's tables do to packets, in words ("18 rules", "no rules, but DROP policy
    on filter FORWARD"), or "" when they do nothing (no rules, every policy ACCEPT).

    An empty table with a DROP policy (Docker's FORWARD) drops packets as surely as a rule."""
    n = count_rules(text)
    if n:
        return f"{n} rule{'s' if n != 1 else ''}"
    drops = []
    table = "?"
    for m in _POLICY_RE.finditer(text):
        if m.group(1):
            table = m.group(1)
        else:
            drops.append(f"{table} {m.group(2)}")
    if drops:
        return f"no rules, but DROP policy on {', '.join(drops)}"
    return ""


@dataclass
class FamilyRead:
    """What was read for one family."""

    family: int
    backend: str  # nft or legacy
    text: str  # the save text (iptables-save -c form)
    source: str  # the command whose output ``text`` is, line for line
    how: str  # "iptables-nft-save -c", "python-iptables", …
    rules: int = 0


@dataclass
class Detection:
    """What each backend holds, per family, and which one is read."""

    default: str | None  # from `iptables -V`
    version: str
    legacy_names: dict[int, list[str]] = field(default_factory=dict)
    nft_text: dict[int, str] = field(default_factory=dict)
    legacy_text: dict[int, FamilyRead] = field(default_factory=dict)
    chosen: dict[int, str] = field(default_factory=dict)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (kind, message)
    nft_json: str | None = None  # `nft -j list ruleset`: every nf_tables table, native ones too

    def nft_effect(self, family: int) -> str:
        return effect(self.nft_text.get(family, ""))

    def legacy_effect(self, family: int) -> str:
        r = self.legacy_text.get(family)
        return effect(r.text) if r is not None else ""

    def nft_rules(self, family: int) -> int:
        return count_rules(self.nft_text.get(family, ""))

    def nft_tables(self, family: int) -> list[str]:
        return _TABLE_RE.findall(self.nft_text.get(family, ""))

    def legacy_rules(self, family: int) -> int:
        r = self.legacy_text.get(family)
        return r.rules if r is not None else 0


# ---------------------------------------------------------------------------------------------
# Reading each backend


def read_nft(family: int) -> FamilyRead:
    tool = save_tool("nft", family)
    text = run_save(tool)
    return FamilyRead(family, "nft", text, tool, f"{tool} -c", count_rules(text))


def legacy_tool(family: int) -> str:
    """``iptables-legacy-save``; on iptables before 1.8 (legacy only, no ``-legacy`` names: CentOS
    7's 1.4.21) plain ``iptables-save``, which is then the legacy one."""
    tool = save_tool("legacy", family)
    if find_tool(tool) is None:
        plain = f"{'ip' if family == 4 else 'ip6'}tables-save"
        default, version = iptables_default()
        if find_tool(plain) is not None and version and default != "nft":
            return plain
    return tool


def read_legacy(family: int, names: list[str] | None = None, use_iptc: bool = True) -> FamilyRead:
    """The legacy tables of a family: through python-iptables, else ``iptables-legacy-save``."""
    tool = legacy_tool(family)
    if names is None:
        names = legacy_tables(family)
    if use_iptc and names:
        try:
            limit = iptc_reader.MAX_RULES if find_tool(tool) is not None else None
            text = iptc_reader.family_text(family, names, max_rules=limit)
            return FamilyRead(family, "legacy", text, tool, "python-iptables", count_rules(text))
        except ImportError:
            pass  # the optional `live' extra is not installed
        except iptc_reader.TooManyRules as e:
            text = run_save(tool)
            return FamilyRead(family, "legacy", text, tool,
                              f"{tool} -c: {e.rules} rules, faster than python-iptables", count_rules(text))
        except Exception as e:  # libiptc / libxtables failure: the save command still works
            how = f"{tool} -c (python-iptables failed: {e.__class__.__name__}: {str(e)[:80]})"
            text = run_save(tool)
            return FamilyRead(family, "legacy", text, tool, how, count_rules(text))
    if not names:
        return FamilyRead(family, "legacy", "", tool, "no legacy tables", 0)
    text = run_save(tool)
    return FamilyRead(family, "legacy", text, tool, f"{tool} -c", count_rules(text))


def _fam(family: int) -> str:
    return f"IPv{family}"


def detect(families: tuple[int, ...] = (4, 6), backend: str | None = None, use_iptc: bool = True) -> Detection:
    """Which backend holds the rules of each family; reads what it needs to decide.

    ``backend`` forces one ("nft" or "legacy"); the other is still looked at (cheaply) so that
    rules it holds are reported.
    """
    if backend is not None and backend not in BACKENDS:
        raise InputError(f"unknown backend `{backend}' (expected nft or legacy)", "live")
    default, version = iptables_default()
    det = Detection(default, version)
    nft_error: InputError | None = None
    for fam in families:
        det.legacy_names[fam] = legacy_tables(fam)
        try:
            det.nft_text[fam] = read_nft(fam).text
        except InputError as e:
            if backend == "nft" or (backend is None and "permission denied" in e.message):
                raise
            nft_error = e  # no iptables-nft on a legacy-only host: fine
            det.nft_text[fam] = ""
        if det.legacy_names[fam]:
            try:
                det.legacy_text[fam] = read_legacy(fam, det.legacy_names[fam], use_iptc)
            except InputError:
                if backend != "nft":
                    raise  # with nft forced, legacy is read only to say what it holds

    for fam in families:
        nft_does = det.nft_effect(fam)
        nft_tables = det.nft_tables(fam)
        leg_names = det.legacy_names[fam]
        leg_does = det.legacy_effect(fam)
        if backend is not None:
            chosen = backend
            other = "legacy" if backend == "nft" else "nft"
            other_has = bool(leg_names) if backend == "nft" else bool(nft_tables)
            if other_has:
                other_does = leg_does if other == "legacy" else nft_does
                det.notes.append((
                    "warning" if other_does else "backend",
                    f"{_fam(fam)}: the {other} backend also has tables "
                    f"({', '.join(leg_names if other == 'legacy' else nft_tables)}"
                    f"{'; ' + other_does if other_does else ''}); the kernel applies them too, but "
                    f"only the {backend} backend was read",
                ))
        elif nft_does and leg_does:
            chosen = det.default or "nft"
            other = "legacy" if chosen == "nft" else "nft"
            det.notes.append((
                "warning",
                f"{_fam(fam)}: both iptables backends hold rules (nf_tables: {nft_does}; "
                f"legacy: {leg_does}); the kernel applies both to every packet, but this trace "
                f"reads only the {chosen} one"
                + (" (the one `iptables' uses)" if det.default else "")
                + f"; trace the other with: sudo {save_tool(other, fam)} | iptexplain trace -",
            ))
        elif leg_does or (leg_names and not nft_tables):
            chosen = "legacy"
            if nft_tables:
                det.notes.append(("backend", f"{_fam(fam)}: nf_tables has iptables tables "
                                  f"({', '.join(nft_tables)}) without rules; legacy holds the rules"))
        elif nft_tables:
            chosen = "nft"
            if leg_names:
                det.notes.append(("backend", f"{_fam(fam)}: legacy tables exist "
                                  f"({', '.join(leg_names)}) but hold no rules; nf_tables holds the rules"))
        else:
            chosen = det.default or "nft"
        det.chosen[fam] = chosen
    if nft_error is not None and any(c == "nft" for c in det.chosen.values()) and backend is None:
        if not any(det.legacy_names.values()):
            raise nft_error
    return det


# ---------------------------------------------------------------------------------------------
# The ruleset


def merge(parts: list[Ruleset], source: str, fmt: str = "live") -> Ruleset:
    """One ruleset from per-family ones (each family's tables keep their own source)."""
    rs = Ruleset(source=source, format=fmt)
    for p in parts:
        rs.tables.update(p.tables)
        rs.notes.extend(p.notes)
    rs.link()
    return rs


def ruleset_from_reads(reads: list[FamilyRead], source: str = "live", fmt: str = "live",
                       label: str | None = None) -> Ruleset:
    """Parse each family's save text with the one parser; an empty family adds no table."""
    parts = []
    for r in reads:
        if not _TABLE_RE.search(r.text):
            continue
        name = r.source if label is None else f"{label}[{r.source}]"
        parts.append(parse_save(r.text, name, family=r.family))
    return merge(parts, source, fmt)


def read_ruleset(family: int | None = None, backend: str | None = None, use_iptc: bool = True
                 ) -> tuple[Ruleset, list[FamilyRead], Detection]:
    """The running ruleset, the per-family reads it came from, and the detection."""
    families = (4, 6) if family is None else (family,)
    det = detect(families, backend, use_iptc)
    reads: list[FamilyRead] = []
    for fam in families:
        if det.chosen[fam] == "nft":
            text = det.nft_text.get(fam)
            tool = save_tool("nft", fam)
            if text is None:
                reads.append(read_nft(fam))
            else:
                reads.append(FamilyRead(fam, "nft", text, tool, f"{tool} -c", count_rules(text)))
        else:
            r = det.legacy_text.get(fam)
            reads.append(r if r is not None else read_legacy(fam, det.legacy_names.get(fam), use_iptc))
    rs = ruleset_from_reads(reads)
    for kind, msg in det.notes:
        rs.note(kind, msg)
    # Tables iptables-nft-save cannot print whole: nft lists them whole, so they are read from
    # nft -j list ruleset instead (when nft is there); otherwise a warning says what is missing.
    det.nft_json = read_nft_ruleset(rs)
    nft_tables = _nft_table_names(det.nft_json)
    for r in reads:
        ipfam = "ip" if r.family == 4 else "ip6"
        for t in _INCOMPATIBLE_RE.findall(r.text):
            if (ipfam, t) in nft_tables:
                rs.note("live", f"{_fam(r.family)}: table {t} has rules written with nft that {r.source} "
                                f"cannot print: it is read with {NFT_JSON_SOURCE}")
                continue
            rs.note("warning", f"{_fam(r.family)}: table {t} has rules written with nft that {r.source} "
                               f"cannot print, so the whole table is missing here (see it with: nft list "
                               f"table {ipfam} {t})")
        for t in _INCOMPATIBLE_CHAINS_RE.findall(r.text):
            if (ipfam, t) in nft_tables:
                rs.tables.pop((r.family, t), None)
                rs.note("live", f"{_fam(r.family)}: table {t} has base chains made with nft that {r.source} "
                                f"does not show: the table is read with {NFT_JSON_SOURCE}")
                continue
            rs.note("warning", f"{_fam(r.family)}: table {t} has base chains made with nft that {r.source} "
                               f"does not show; packets pass them too (see them with: nft list table "
                               f"{ipfam} {t})")
        if "iptables-legacy tables present" in r.text and not any("legacy" in m for _, m in det.notes):
            rs.note("warning", f"{_fam(r.family)}: {r.source} says iptables-legacy tables are present")
    parts = []
    for r in reads:
        if not r.rules and not _TABLE_RE.search(r.text):
            # with --backend the other one was not read: it may hold tables (a note says so)
            where = "either backend" if backend is None else f"the {backend} backend (--backend {backend})"
            parts.append(f"{_fam(r.family)}: no tables in {where}")
        else:
            parts.append(f"{_fam(r.family)} from the {'nf_tables' if r.backend == 'nft' else 'legacy'} "
                         f"backend ({r.how}, {r.rules} rules)")
        if r.rules and det.default is not None and r.backend != det.default and backend is None:
            rs.note("backend", f"{_fam(r.family)}: the rules are in the {r.backend} backend, but `iptables' "
                               f"on this host uses the {det.default} one ({det.version}), so `iptables -L' "
                               f"does not show them; `{'ip' if r.family == 4 else 'ip6'}tables-{r.backend}' does")
    rs.note("live", "read live: " + "; ".join(parts) + (f"; `iptables -V': {det.version}" if det.version else ""))
    if not any(effect(r.text) for r in reads):
        rs.note("live", empty_note(reads))
    add_nft_tables(rs, det.nft_json, families, [f for f in families if det.chosen[f] == "nft"])
    return rs, reads, det


# ---------------------------------------------------------------------------------------------
# Native nftables tables (firewalld, Docker 29's nftables backend, kube-proxy's nftables mode,
# LXD, libvirt…): iptables-save does not show them, but they see packets too.

NFT_JSON_SOURCE = "nft -j list ruleset"


def read_nft_ruleset(rs: Ruleset) -> str | None:
    """``nft -j list ruleset`` of this host (read-only), or None -- with a note -- when nft is
    not installed or cannot list (then only iptables' tables are traced)."""
    exe = find_tool("nft")
    if exe is None:
        return None
    try:
        p = subprocess.run([exe, "-j", "list", "ruleset"], capture_output=True, text=True,
                           timeout=SAVE_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        rs.note("warning", f"{NFT_JSON_SOURCE} failed ({e}): nftables tables not made by iptables, "
                           "if any, are not traced")
        return None
    if p.returncode != 0:
        rs.note("warning", f"{NFT_JSON_SOURCE} failed ({(p.stderr or '').strip()[:200]}): nftables tables "
                           "not made by iptables, if any, are not traced")
        return None
    return p.stdout


def _nft_table_names(text: str | None) -> set[tuple[str, str]]:
    """``{(family, name)}`` of the tables an ``nft -j list ruleset`` lists."""
    if not text:
        return set()
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        return set()
    items = doc.get("nftables", []) if isinstance(doc, dict) else []
    return {(str(o["table"].get("family")), str(o["table"].get("name")))
            for o in items if isinstance(o, dict) and isinstance(o.get("table"), dict)}


def add_nft_tables(rs: Ruleset, text: str | None, families: tuple[int, ...] | list[int],
                   iptables_nft_families: list[int], source: str = NFT_JSON_SOURCE) -> None:
    """Add the tables of an ``nft -j list ruleset`` to the ruleset read from iptables: the native
    ones, and none of iptables-nft's (:func:`iptexplain.nft.mixed.join`); a family not read
    (``-4``/``-6``) adds none of its iptables-nft tables either."""
    if not text:
        return
    nft = read_nft_json(text, source)
    tables = [t for t in nft.nft_tables
              if not (is_iptables_nft(t) and {"ip": 4, "ip6": 6}.get(t.nft_family) not in families)]
    before = len(rs.nft_tables)
    join(rs, tables, source=source, iptables_nft_families=iptables_nft_families)
    added = [t.name for t in rs.nft_tables[before:]]
    if added:
        rs.note("live", f"read {len(added)} nftables table{'s' if len(added) != 1 else ''} with "
                        f"{source}: {', '.join(added)}")


def empty_note(reads: list[FamilyRead]) -> str:
    """The note for a host whose iptables does nothing: no rule, every built-in policy ACCEPT.

    That is a ruleset, not a missing one: every hook accepts, and the trace shows the packet's
    way through the kernel (routing, conntrack) with no table on it."""
    backends = sorted({r.backend for r in reads})
    if len(backends) == 1:
        where = backends[0]
    else:
        where = ", ".join(f"{r.backend} ({_fam(r.family)})" for r in reads)
    # only one family read (-4/-6): say which, the other may well have rules
    which = f"{_fam(reads[0].family)} " if len(reads) == 1 else ""
    return f"no {which}iptables rules loaded on backend {where}: every hook accepts"


def uses_ipsets(rs: Ruleset) -> bool:
    """Whether any rule matches or changes an ipset (``-m set``, ``-j SET``)."""
    return any(extension_name(e) in ("set", "SET") for r in rs.rules() for e in r.extensions())


def read_ipsets() -> str:
    """``ipset save`` of this host (read-only), for rules with ``-m set``; InputError when it
    cannot be had (no ipset command, no permission)."""
    return run_save("ipset", ("save",), package="ipset")


@dataclass
class LiveHost:
    """Everything a trace needs from this machine: the ruleset, the host model, and the backend
    each family was read from (the tracer's hook priorities depend on it: iptables-nft registers
    the security table at 150, after nat INPUT; legacy at 50)."""

    ruleset: Ruleset
    host: HostModel
    backends: dict[int, str]  # family -> "nft" | "legacy"
    reads: list[FamilyRead]


def read_live_host(family: int | None = None, backend: str | None = None, containers: bool = True
                   ) -> LiveHost:
    """The running ruleset, host model and backends of this machine (root needed; read-only).

    ``family``: 4 or 6 (None: both).  ``backend``: "nft" or "legacy" (None: detected).  The
    ruleset's notes say which backend was read and how; the host model has interfaces,
    addresses, routes of every table, the sysctls, and -- when the Docker API socket answers --
    the containers by address.
    """
    rs, reads, _ = read_ruleset(family, backend)
    host = read_host()
    if containers:
        # http.client and ssl, only for a live read that asks for the containers.
        from iptexplain.inputs.docker_api import add_containers

        add_containers(host)
    return LiveHost(rs, host, {r.family: r.backend for r in reads}, reads)


def read_live(family: int | None = None, backend: str | None = None, containers: bool = True
              ) -> tuple[Ruleset, HostModel]:
    """The running ruleset and the host model of this machine (see :func:`read_live_host`)."""
    live = read_live_host(family, backend, containers)
    return live.ruleset, live.host
