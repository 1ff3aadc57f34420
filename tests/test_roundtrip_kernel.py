"""Round-trip judged by the real iptables: our re-emission loads into the kernel to the same ruleset.

For every loadable fixture and every corpus file INDEX.md says iptables loads (as is, with
placeholder ipsets/nfacct objects, or after form-only repairs such as stripping CR), inside ONE
throw-away ``unshare -n -m`` namespace:

* A = ``iptables-save`` after ``iptables-nft-restore`` of the original (repaired as INDEX.md says);
* B = ``iptables-save`` after restoring ``render/save.py``'s re-emission of our parse;
* A == B, ignoring ``#`` comment lines, counters and runs of blanks (iptables 1.8.9 prints
  ``--nfacct-name  NAME`` with two);
* ``iptables-restore --test`` accepts our re-emission;
* and our own rendering of A is A itself: every module prints exactly what iptables-save prints.

``ip6tables-*`` is used for IPv6 tables.  ``-S`` files are converted to restore input first, as
INDEX.md did.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import iptables_ns
from corpus_index import (CORPUS, FIXTURES, IN_CI, corpus_available, entries, repair_text, s_table,
                          s_to_restore)
from iptexplain.parse import parse_text
from iptexplain.render.save import save_ruleset

ANON = ("XX:XX:XX:XX:XX:XX", "02:00:00:00:00:01")

reason = iptables_ns.available()
if reason and IN_CI:
    raise RuntimeError(f"kernel round-trip cannot run under CI: {reason}")
pytestmark = pytest.mark.skipif(reason is not None, reason=reason or "")


def _cases() -> list[tuple[str, Path, str]]:
    """(id, path, format) of every file to round-trip."""
    out = []
    for p in sorted(FIXTURES.iterdir()):
        if p.is_file() and p.name.endswith((".save", ".save-c", ".restore")):
            out.append((f"fixtures/{p.name}", p, "save"))
    for e in entries():
        if e.kernel_loadable and e.fmt in ("save", "save-c", "restore", "S"):
            out.append((f"corpus/{e.name}", e.path, "S" if e.fmt == "S" else "save"))
    return out


CASES = _cases()


def _placeholders(rs) -> tuple[list, list]:
    sets, acct = set(), set()
    fam = rs.families()[0] if rs.families() else 4
    for r in rs.rules():
        for ext in r.extensions():
            refs = getattr(ext, "set_refs", None)
            if refs is not None:
                sets.update((name, dim, fam) for name, dim in refs())
            if ext.name == "nfacct":
                acct.add(ext.object_name)
    return [list(s) for s in sorted(sets)], sorted(acct)


def _squash(lines: list[str]) -> list[str]:
    return [" ".join(line.split()) for line in lines]


@pytest.fixture(scope="module")
def kernel_results() -> dict:
    """Run every case in one namespace; {case id: [(family, A, B, test, A-rendered)]}."""
    jobs, meta = [], []
    for cid, path, fmt in CASES:
        text = path.read_text(encoding="utf-8", errors="replace")
        table = s_table(path) if fmt == "S" else None
        rs = parse_text(text, str(path), fmt=fmt, table=table)
        original = s_to_restore(repair_text(text), table) if fmt == "S" else repair_text(text)
        sets, acct = _placeholders(rs)
        for fam in rs.families():
            ours = save_ruleset(rs, fam).replace(*ANON)
            common = {"family": fam, "sets": sets, "nfacct": acct}
            jobs += [dict(common, text=original), dict(common, text=ours), dict(common, text=ours, test_only=True)]
            meta.append((cid, fam))
    results = iptables_ns.run_jobs(jobs)
    out: dict = {}
    for i, (cid, fam) in enumerate(meta):
        a, b, t = results[3 * i : 3 * i + 3]
        out.setdefault(cid, []).append((fam, a, b, t))
    return out


def test_cases_found() -> None:
    """The fixtures alone give a dozen files; with the corpus, well over a hundred."""
    assert len(CASES) >= 12
    if corpus_available():
        assert len(CASES) >= 120


@pytest.mark.parametrize("cid", [c[0] for c in CASES])
def test_kernel_roundtrip(cid: str, kernel_results: dict) -> None:
    for fam, a, b, t in kernel_results[cid]:
        assert a["rc"] == 0, f"real iptables refused the original (IPv{fam}): {a['stderr']}"
        assert t["rc"] == 0, f"iptables-restore --test refused our output (IPv{fam}): {t['stderr']}"
        assert b["rc"] == 0, f"iptables-restore refused our output (IPv{fam}): {b['stderr']}"
        saved_a = _squash(iptables_ns.normalize_save(a["save"]))
        saved_b = _squash(iptables_ns.normalize_save(b["save"]))
        assert saved_b == saved_a
        # Exact print: our rendering of the kernel's own save is that save.
        again = parse_text(a["save"], "A", family=fam)
        assert _squash(iptables_ns.normalize_save(save_ruleset(again, fam))) == saved_a


def test_corpus_present_in_ci() -> None:
    if IN_CI:
        assert corpus_available(), f"CI must provide the corpus at {CORPUS}"
