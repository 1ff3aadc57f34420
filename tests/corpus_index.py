"""Where the shared corpus is and what its INDEX.md says about each file.

INDEX.md records, for every loadable file, whether iptables 1.8.9 loads it: ``OK``, ``OK*``
(only with placeholder ipsets / nfacct objects), or ``FAIL`` with the repairs after which it
loads ("loads after: strip-CR") or "still fails after auto-repair".  The tests use that verdict,
made by real iptables, as their expectation.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"
CORPUS = Path(os.environ.get("IPTEXPLAIN_CORPUS", REPO.parent / "shared" / "corpus"))
LOADABLE_SUFFIXES = (".save", ".save-c", ".restore", ".S", ".save-messy")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

_ROW = re.compile(r"^\| `([^`]+)` \| ([^|]+)\|[^|]*\|[^|]*\|[^|]*\|[^|]*\| ([^|]+)\|\s*$")

# Repairs that only concern the form of the text: iptexplain reads such files (with a note),
# and iptables loads them once the same repair is made.
FORM_REPAIRS = ("strip-CR", "strip-trailing-ws", "drop-prose/blank-lines", "leading-non-iptables-lines",
                "replace-anonymized-MACs")


@dataclass(frozen=True)
class Entry:
    path: Path
    fmt: str
    loads: str  # the INDEX.md "loads" cell

    @property
    def name(self) -> str:
        return str(self.path.relative_to(CORPUS))

    @property
    def rejected_for_content(self) -> bool:
        """iptables refuses it for what it says, not for its form: iptexplain must refuse it too."""
        if "still fails after auto-repair" in self.loads:
            return True
        return "old-style-negation" in self.loads

    @property
    def repairs(self) -> tuple[str, ...]:
        m = re.search(r"loads after: ([^)]*)\)", self.loads)
        return tuple(r.strip() for r in m.group(1).split(",")) if m else ()

    @property
    def needs_placeholders(self) -> bool:
        return "OK*" in self.loads

    @property
    def kernel_loadable(self) -> bool:
        """Loads into the kernel as it is, with placeholders, or after form-only repairs."""
        if self.rejected_for_content:
            return False
        if "FAIL" in self.loads:
            return bool(self.repairs) and all(any(k in r for k in FORM_REPAIRS) for r in self.repairs)
        return "OK" in self.loads


def corpus_available() -> bool:
    return (CORPUS / "INDEX.md").is_file()


def entries() -> list[Entry]:
    """Every loadable-format corpus file INDEX.md describes."""
    if not corpus_available():
        return []
    by_name: dict[str, str] = {}
    fmts: dict[str, str] = {}
    for line in (CORPUS / "INDEX.md").read_text(encoding="utf-8").splitlines():
        m = _ROW.match(line)
        if m:
            base = os.path.basename(m.group(1))
            # The per-source tables (with the loads verdict) come after the summary table.
            by_name[base] = m.group(3).strip()
            fmts[base] = m.group(2).strip()
    out = []
    for p in sorted(CORPUS.rglob("*")):
        if p.is_file() and p.name.endswith(LOADABLE_SUFFIXES) and p.name in by_name:
            out.append(Entry(p, fmts[p.name], by_name[p.name]))
    return out


def repair_text(text: str) -> str:
    """The form-only repairs INDEX.md lists, applied to a file before real iptables loads it:
    CR and trailing blanks stripped, prose and blank lines dropped, anonymized MACs replaced."""
    out = []
    for line in text.splitlines():
        line = line.rstrip()
        if not line or not line.startswith(("*", "#", ":", "-", "[", "COMMIT")):
            continue
        out.append(line)
    return "\n".join(out).replace("XX:XX:XX:XX:XX:XX", "02:00:00:00:00:01") + "\n"


def s_to_restore(text: str, table: str) -> str:
    """``iptables -S`` output of one table as restore input (the mechanical conversion INDEX.md
    used): -P becomes the chain's policy line, -N a chain declaration."""
    heads, rules = [], []
    for line in text.splitlines():
        w = line.split()
        if not w:
            continue
        if w[0] == "-P" and len(w) >= 3:
            heads.append(f":{w[1]} {w[2]} [0:0]")
        elif w[0] == "-N" and len(w) == 2:
            heads.append(f":{w[1]} - [0:0]")
        elif w[0] == "-A":
            rules.append(line.strip())
    return "\n".join([f"*{table}", *heads, *rules, "COMMIT"]) + "\n"


def s_table(path: Path) -> str:
    """The table of a ``-S`` file, from its name (``.nat.v4.S``); plain names are filter."""
    for t in ("raw", "mangle", "nat", "filter", "security"):
        if f".{t}." in path.name:
            return t
    return "filter"


def save_files() -> list[Path]:
    """The iptables-save / restore files to read: every fixture's, and the corpus's when it is here."""
    out = sorted(FIXTURES.glob("*.save"))
    if corpus_available():
        out += sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.name.endswith((".save", ".restore")))
    return out
