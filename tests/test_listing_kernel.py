"""The listing reader against real iptables: every iptables-save ruleset of fixtures/ is loaded
into a throw-away network namespace (nft and legacy backends), printed by the real
``iptables -nvL --line-numbers``, ``-nvxL``, ``-nL`` and ``-L``, and each listing is read back
and compared with the kernel's own iptables-save dump of the same state:

* ``-nvL`` / ``-nvxL``: the same rule graph (counters aside -- the fresh rules have none);
* ``-nL``: the same except interface matches, which the reader must say it could not see;
* ``-L``: the same except interfaces, with names read back (or flagged where they cannot be).

It also checks the -L face of every module word for word: each rule's tail as iptexplain would
print it (``Extension.listing``) must be what iptables printed.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import listing_ns  # noqa: E402
from test_listing import _forget_what_listings_hide  # noqa: E402

from iptexplain.graph import Ruleset  # noqa: E402
from iptexplain.parse import parse_text  # noqa: E402
from iptexplain.parse.listing import parse_listing, split_row, layout_of  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "fixtures"


def _rulesets() -> list[tuple[str, int]]:
    files = [f for f in sorted(FIX.glob("*.save*")) + sorted(FIX.glob("*.restore")) if f.is_file()]
    files += sorted((FIX / "listing" / "generated").glob("*.save"))
    out = []
    for f in files:
        fam = 6 if ".v6." in f.name else 4
        out.append((str(f), fam))
    return out


RULESETS = _rulesets()


# Anonymized MAC addresses (TUM dumps) cannot be loaded; any real address stands in for them.
_ANON_MAC = re.compile(r"XX:XX:XX:XX:XX:XX", re.I)


def _loadable(text: str) -> str:
    return _ANON_MAC.sub("02:00:00:00:00:01", text)


def _without_unspecified_v6(rs: Ruleset) -> Ruleset:
    """``ip6tables -L`` (no -n) prints ``anywhere`` for every address that is ``::`` whatever
    its prefix (``::/96`` too): what that form can say, for comparing with it."""
    import dataclasses

    out = Ruleset()
    for key, t in rs.tables.items():
        out.tables[key] = t
        for r in t.rules():
            h = r.header
            if h.src is not None and h.src.family == 6 and h.src.value == 0:
                h = dataclasses.replace(h, src=None, src_inv=False) if not h.src_inv else h
            if h.dst is not None and h.dst.family == 6 and h.dst.value == 0:
                h = dataclasses.replace(h, dst=None, dst_inv=False) if not h.dst_inv else h
            r.header = h
    return out


def _nfacct_of(rs: Ruleset) -> list[str]:
    return sorted({m.value("name") for r in rs.rules() for m in r.matches if m.name == "nfacct"})


def _sets_of(rs: Ruleset) -> list[list]:
    refs = []
    for r in rs.rules():
        for e in r.extensions():
            fn = getattr(e, "set_refs", None)
            if fn is not None:
                refs += [[name, dim, rs.families()[0]] for name, dim in fn()]
    return refs


@pytest.fixture(scope="module")
def kernel_listings() -> dict[tuple[str, str], dict]:
    reason = listing_ns.available()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"kernel listing tests cannot run under CI: {reason}")
        pytest.skip(reason)
    jobs, keys = [], []
    for path, fam in RULESETS:
        text = _loadable(Path(path).read_text())
        rs = parse_text(text, path)
        tables = sorted({name for (_, name) in rs.tables})
        for backend in ("nft", "legacy"):
            jobs.append({"text": text, "family": fam, "backend": backend,
                         "tables": tables, "sets": _sets_of(rs), "nfacct": _nfacct_of(rs),
                         "names": backend == "nft"})
            keys.append((path, backend))
    results = listing_ns.run_jobs(jobs)
    return dict(zip(keys, results))


def _kernel_graph(result: dict, path: str) -> Ruleset:
    return parse_text(result["save"], f"{path} (iptables-save in the namespace)")


CASES = [(p, fam, b) for p, fam in RULESETS for b in ("nft", "legacy")]


def test_enough_rulesets() -> None:
    assert len(RULESETS) >= 25


@pytest.mark.parametrize("path,family,backend", CASES, ids=[f"{Path(p).name}-{b}" for p, _, b in CASES])
def test_real_listings_read_back(kernel_listings, path: str, family: int, backend: str) -> None:
    res = kernel_listings[(path, backend)]
    assert res["rc"] == 0, res["stderr"]
    compared = 0
    for table, forms in res["listings"].items():
        for form, text in forms.items():
            kernel = _kernel_graph(res, path)
            want = Ruleset()
            want.tables[(family, table)] = kernel.tables[(family, table)]
            prog = "ip6tables" if family == 6 else "iptables"
            session = f"[root@lab ~]# {prog} -t {table} {' '.join(listing_ns.FORMS[form])}\n{text}"
            rs = parse_listing(session, f"{path}:{table}:{form}")
            assert list(rs.tables) == [(family, table)], form
            _forget_what_listings_hide(want, rs)
            if form == "L" and family == 6:
                want = _without_unspecified_v6(want)
            assert not rs.not_understood(), (form, rs.not_understood())
            if form in ("nvL", "nvxL"):
                assert want.difference(rs, ignore={"counters"}) is None, form
                assert "interfaces" not in rs.hidden
                if form == "nvL":
                    assert all(r.number == i for c in rs.tables[(family, table)].chains.values()
                               for i, r in enumerate(c.rules, 1))
            else:
                assert want.difference(rs, ignore={"counters", "interfaces"}) is None, form
                assert "interfaces" in rs.hidden
                assert any("-v" in n.message and "iptables-save" in n.message
                           for n in rs.notes if n.kind == "fidelity")
            compared += 1
    assert compared >= len(res["listings"]) * 3


@pytest.mark.parametrize("path,family", RULESETS, ids=[Path(p).name for p, _ in RULESETS])
def test_listing_faces_print_what_iptables_prints(kernel_listings, path: str, family: int) -> None:
    """iptexplain's -L text of each rule, module by module, equals the real -nvL row's tail."""
    res = kernel_listings[(path, "nft")]
    kernel = _kernel_graph(res, path)
    mismatches = []
    for table, forms in res["listings"].items():
        rows: list[str] = []
        layout = None
        for line in forms["nvL"].splitlines():
            words = line.split()
            lay = layout_of(words)
            if lay is not None:
                layout = lay
                continue
            if layout is None or line.startswith("Chain ") or not line.strip():
                continue
            row = split_row(line, layout)
            assert row is not None, line
            rows.append(row.tail)
        rules = [r for c in kernel.tables[(family, table)].chains.values() for r in c.rules]
        assert len(rules) == len(rows)
        for r, tail in zip(rules, rows):
            parts = ["[goto]"] if r.goto else []
            parts += [m.listing(True, family=family, proto=r.header.proto) for m in r.matches]
            if r.target is not None and r.jump is None and r.target.name != "standard":
                parts.append(r.target.listing(True, family=family, proto=r.header.proto))
            mine = " ".join(p for p in parts if p)
            if mine.split() != tail.split():
                mismatches.append(f"{r.spec()}\n   iptables:   {tail}\n   iptexplain: {mine}")
    assert not mismatches, "\n".join(mismatches[:10])


# ---------------------------------------------------------------------------------------------
# Every module's samples (test_listing.SAMPLES), printed by the real iptables.

from test_listing import NO_PRINT, SAMPLES  # noqa: E402

# Where a module's samples can live: (family, table, chain).  The kernel checks a module's hooks
# and tables (owner only on output, TPROXY only in mangle PREROUTING...).
PLACE: dict[str, tuple[int, str, str]] = {
    "DNAT": (4, "nat", "PREROUTING"), "REDIRECT": (4, "nat", "PREROUTING"),
    "SNAT": (4, "nat", "POSTROUTING"), "MASQUERADE": (4, "nat", "POSTROUTING"),
    "NETMAP": (4, "nat", "PREROUTING"), "CT": (4, "raw", "PREROUTING"), "NOTRACK": (4, "raw", "PREROUTING"),
    "TRACE": (4, "raw", "PREROUTING"), "TPROXY": (4, "mangle", "PREROUTING"),
    "CHECKSUM": (4, "mangle", "POSTROUTING"), "TOS": (4, "mangle", "POSTROUTING"),
    "DSCP": (4, "mangle", "POSTROUTING"), "TTL": (4, "mangle", "POSTROUTING"),
    "CLASSIFY": (4, "mangle", "POSTROUTING"), "CONNSECMARK": (4, "mangle", "POSTROUTING"),
    "SECMARK": (4, "mangle", "POSTROUTING"), "TEE": (4, "mangle", "POSTROUTING"),
    "HL": (6, "mangle", "POSTROUTING"), "owner": (4, "filter", "OUTPUT"), "physdev": (4, "filter", "FORWARD"),
    "policy": (4, "filter", "FORWARD"), "icmp6": (6, "filter", "INPUT"), "hl": (6, "filter", "INPUT"),
    "rt": (6, "filter", "INPUT"), "frag": (6, "filter", "INPUT"), "SYNPROXY": (4, "filter", "INPUT"),
    "rpfilter": (4, "raw", "PREROUTING"), "TCPMSS": (4, "mangle", "FORWARD"),
    "devgroup": (4, "filter", "FORWARD"),
    "DNPT": (6, "mangle", "PREROUTING"), "SNPT": (6, "mangle", "POSTROUTING"), "ECN": (4, "mangle", "POSTROUTING"),
    "mh": (6, "filter", "INPUT"), "ipv6header": (6, "filter", "INPUT"),
}
# What this kernel cannot load in a bare namespace, and why (each still has its round-trip test).
UNLOADABLE = {
    "SECMARK": "needs an LSM security context",
    "CONNSECMARK": "needs SECMARK marks from an LSM",
    "cgroup": "needs the cgroup path to exist",
}


def _sample_jobs() -> list[tuple[str, dict]]:
    jobs = []
    for name, samples in SAMPLES.items():
        if name in UNLOADABLE or name in NO_PRINT:
            continue
        fam, table, chain = PLACE.get(name, (4, "filter", "INPUT"))
        rules = []
        sets, nfacct = [], []
        for s in samples:
            rules.append(f"-A {chain} {s}")
            for m in re.finditer(r"--(?:match-set|add-set|del-set) (\S+) (\S+)", s):
                sets.append([m.group(1), len(m.group(2).split(",")), fam])
            for m in re.finditer(r"--nfacct-name (\S+)", s):
                nfacct.append(m.group(1))
        text = f"*{table}\n" + "\n".join(rules) + "\nCOMMIT\n"
        jobs.append((name, {"text": text, "family": fam, "backend": "nft", "tables": [table],
                            "sets": sets, "nfacct": nfacct, "names": False}))
    return jobs


@pytest.fixture(scope="module")
def sample_listings() -> dict[str, tuple[dict, dict]]:
    reason = listing_ns.available()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"kernel listing tests cannot run under CI: {reason}")
        pytest.skip(reason)
    jobs = _sample_jobs()
    results = listing_ns.run_jobs([j for _, j in jobs])
    return {name: (job, res) for (name, job), res in zip(jobs, results)}


SAMPLED = [n for n in SAMPLES if n not in UNLOADABLE and n not in NO_PRINT]


@pytest.mark.parametrize("name", SAMPLED)
def test_module_samples_against_iptables(sample_listings, name: str) -> None:
    job, res = sample_listings[name]
    assert res["rc"] == 0, res["stderr"]
    fam, (table,) = job["family"], job["tables"]
    kernel = parse_text(res["save"], f"{name} (iptables-save)")
    want = Ruleset()
    want.tables[(fam, table)] = kernel.tables[(fam, table)]
    for form, text in res["listings"][table].items():
        prog = "ip6tables" if fam == 6 else "iptables"
        rs = parse_listing(f"# {prog} -t {table} {' '.join(listing_ns.FORMS[form])}\n{text}", f"{name}:{form}")
        assert not rs.not_understood(), (form, rs.not_understood())
        _forget_what_listings_hide(want, rs)
        ignore = {"counters"} if form in ("nvL", "nvxL") else {"counters", "interfaces"}
        assert want.difference(rs, ignore=ignore) is None, form
    # ... and iptexplain prints each rule's tail as iptables does.
    layout, tails = None, []
    for line in res["listings"][table]["nvL"].splitlines():
        lay = layout_of(line.split())
        if lay is not None:
            layout = lay
        elif layout is not None and line.strip() and not line.startswith("Chain "):
            tails.append(split_row(line, layout).tail)  # type: ignore[union-attr]
    rules = [r for c in kernel.tables[(fam, table)].chains.values() for r in c.rules]
    assert len(rules) == len(tails)
    for r, tail in zip(rules, tails):
        parts = [m.listing(True, family=fam, proto=r.header.proto) for m in r.matches]
        if r.target is not None and r.target.name != "standard":
            parts.append(r.target.listing(True, family=fam, proto=r.header.proto))
        assert " ".join(p for p in parts if p).split() == tail.split(), r.spec()
