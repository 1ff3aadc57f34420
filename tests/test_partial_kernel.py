"""Partial input judged by the kernel (issue 19): never a verdict without doubt that the kernel
contradicts.

For every IPv4 ruleset of the kernel-differential suite (tests/test_differential.py), the real
iptables prints what operators paste -- ``iptables -S``, ``-nvL`` and ``-nL`` without ``-t``
(the filter table only), every table's ``-nL`` / ``-nvL`` after its prompt, ``-t nat -nvL``
alone -- inside a private namespace (:mod:`listing_ns`).  Each is traced, on the same host
model, for every flow the suite sent through the kernel (the suite's observations are reused
when it ran in this session; otherwise the flows are sent again), and judged:

* **exact**: no doubt expressed, and the tracer's path and outcome are the kernel's (where the
  trace forks on a statistic or an unknown module, the kernel's way is one of its branches, as
  in the full suite);
* **uncertain-covered**: the outcome is marked uncertain (the input hid what decides it), and the
  kernel's outcome is among the ways the trace gives (counted apart when the only such way is one
  the input cannot follow: "rewritten by the nat table the input lacks");
* **wrong**: anything else -- a confident answer the kernel contradicts, or doubt whose ways all
  miss what the kernel did.  There must be none.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest

import differential as D
import kernel_lab as KL
import listing_ns
from iptexplain.ipset import parse_ipset_save
from iptexplain.netfilter import trace as T
from iptexplain.netfilter.tracer import trace_flow
from iptexplain.parse import parse_text
from test_differential import FIXTURES, PARAMS, overflowed, run

NAMES = [n for n, b in PARAMS if b == "nft" and ".v4." in n]
COUNTS: Counter = Counter()
PER_VARIANT: dict[str, Counter] = {}


def _sets(text: str) -> list[list]:
    names: dict[str, int] = {}
    for m in re.finditer(r"--match-set\s+(\S+)\s+(\S+)", text):
        names.setdefault(m.group(1), len(m.group(2).split(",")))
    for m in re.finditer(r"--(?:add|del)-set\s+(\S+)\s+(\S+)", text):
        names.setdefault(m.group(1), len(m.group(2).split(",")))
    return [[n, d, 4] for n, d in names.items()]


@pytest.fixture(scope="module")
def listings() -> dict[str, dict]:
    """name -> {table: {form: text}} as the real iptables-nft prints them."""
    why = listing_ns.available()
    if why:
        KL.require_lab("nft")  # skips with the reason, or fails under CI=true
    jobs = []
    for name in NAMES:
        text = (FIXTURES / name).read_text()
        tables = sorted(set(re.findall(r"^\*(\w+)", text, re.M)))
        jobs.append({"text": text, "family": 4, "backend": "nft", "tables": list(listing_ns.TABLES),
                     "sets": _sets(text), "forms": ["nvL", "nL", "S"]})
    results = listing_ns.run_jobs(jobs)
    out = {}
    for name, res in zip(NAMES, results):
        assert res["rc"] == 0, f"{name}: {res['stderr']}"
        out[name] = res["listings"]
    return out


def variants(lst: dict[str, dict[str, str]]) -> dict[str, str]:
    """What an operator pastes of this host, by name."""
    out = {}
    if "filter" in lst:
        out["S"] = "# iptables -S\n" + lst["filter"]["S"]
        out["nvL"] = "# iptables -nvL\n" + lst["filter"]["nvL"]
        out["nL"] = lst["filter"]["nL"]  # no prompt at all: filter, as iptables means it
    out["nL-tables"] = "".join(f"# iptables -t {t} -nL\n{forms['nL']}\n" for t, forms in lst.items())
    out["nvL-tables"] = "".join(f"# iptables -t {t} -nvL\n{forms['nvL']}\n" for t, forms in lst.items())
    if "nat" in lst:
        out["nat-nvL"] = "# iptables -t nat -nvL\n" + lst["nat"]["nvL"]
    return out


def outcome_covers(plan: D.Plan, leaf: T.Leaf, obs: KL.Observation) -> bool:
    """Whether this way ends as the kernel's packet did (where, with which addresses)."""
    kwhere, arrival = D.kernel_where(plan, obs)
    twhere, towner = D.tracer_where(plan, leaf)
    if twhere == "undecided":
        return True
    if twhere == "passed" and towner is None:
        return kwhere == "dropped"
    if kwhere != twhere:
        return False
    if twhere == "passed":
        return arrival.ns == towner and D._same_tuple(leaf.outcome.packet, arrival) is None
    return True


def judge(plan: D.Plan, obs: KL.Observation, trace: T.Trace, index: D.RuleIndex,
          tables: set[str]) -> tuple[str, str]:
    """("exact" | "covered" | "wrong", why)."""
    leaves = list(trace.leaves())
    doubt = [lf for lf in leaves if lf.outcome.uncertain]
    if not doubt:
        whys = [D.leaf_agrees(plan, lf, obs, index, tables) for lf in leaves]
        if any(w is None for w in whys):
            return "exact", ""
        return "wrong", "confident, but: " + " | ".join(w or "" for w in whys)
    covering = [lf for lf in leaves if outcome_covers(plan, lf, obs)]
    if covering:
        # Covered only by a way that cannot say where the packet goes (a missing nat table may
        # rewrite it): honest, but counted apart.
        return ("covered" if any(lf.outcome.kind != T.UNDECIDED for lf in covering) else "covered-undecided"), ""
    return "wrong", "uncertain, but no way ends as the kernel's packet: " + " | ".join(
        f"{lf.outcome.kind} ({lf.outcome.summary})" for lf in leaves)


@pytest.mark.parametrize("name", NAMES)
def test_listings_never_confidently_wrong(kernel_labs, listings, name: str) -> None:
    # The suite's own run of this ruleset when it ran in this session, else the flows again.
    rep = D.RUNS.get((name, "nft")) or run(kernel_labs, name, "nft")
    if overflowed(rep):
        # As the full suite does: the nft trace overflowed, the legacy backend's counters judge.
        rep = D.RUNS.get((name, "legacy")) or run(kernel_labs, name, "legacy")
    text = (FIXTURES / name).read_text()
    plan = D.plan_for(name, text, cap=D.FLOW_CAP)
    dump = D.ipset_dump(plan)
    ipsets = parse_ipset_save(dump) if dump else None
    host = plan.host_model()
    tables = {t.name for t in plan.ruleset.tables_of(4)}
    wrong = []
    for vname, vtext in variants(listings[name]).items():
        rs = parse_text(vtext, f"{name}:{vname}")
        counts = PER_VARIANT.setdefault(vname, Counter())
        for case, obs in rep.observations:
            if obs.outcome == "error" or (obs.steps is not None and any(
                    "not appear" in n or "incomplete" in n for n in obs.notes)):
                continue
            tr = trace_flow(rs, case.tflow, host, ipsets=ipsets)
            verdict, why = judge(plan, obs, tr, rep.index, tables)
            for c in (counts, COUNTS):
                c[verdict] += 1
                if verdict.startswith("covered"):
                    c["uncertain"] += 1
            if verdict == "wrong":
                wrong.append(f"[{vname}] {case.label}: {why}")
    assert not wrong, f"{name}: {len(wrong)} confidently wrong\n" + "\n".join(wrong[:8])


def test_partial_summary(request) -> None:
    """Runs last: the account -- exact, uncertain-covered, wrong -- per form of input."""
    if not COUNTS:
        pytest.skip("the listing tests did not run in this session")
    def line(c: Counter) -> str:
        return (f"{c['exact'] + c['uncertain'] + c['wrong']} traces, {c['exact']} exact, {c['uncertain']} "
                f"uncertain-covered ({c['covered-undecided']} of them only by a way the input cannot "
                f"follow), {c['wrong']} wrong")

    lines = [f"partial input against the kernel: {line(COUNTS)}"]
    lines += [f"  {v}: {line(c)}" for v, c in sorted(PER_VARIANT.items())]
    print("\n" + "\n".join(lines))

    class _Summary:
        @staticmethod
        def pytest_terminal_summary(terminalreporter) -> None:
            terminalreporter.section("partial input against the kernel")
            for ln in lines:
                terminalreporter.write_line(ln)

    if not request.config.pluginmanager.has_plugin("partial-summary"):
        request.config.pluginmanager.register(_Summary(), "partial-summary")
    assert COUNTS["wrong"] == 0
