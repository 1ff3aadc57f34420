"""The tracer against the kernel on the nft fixtures: path and outcome of every flow agree.

tests/nft_differential.py compares, flow by flow, the tracer's trace of the fixture as a user
gives it (``nft -j list ruleset``; for the mixed host ``iptables-save`` plus the native tables)
with the kernel's ``nft monitor trace`` and where the packet arrived (tests/nft_lab.py).  Every
flow of every plan must agree: decidable flows on their one branch, forking flows (numgen, a
dynamic set) with the kernel's path among the branches, and flows through an xtables extension
nft -j prints without options (iptables-nft's tables read from nft alone) with the kernel's path
up to that rule.
"""

from __future__ import annotations

import pytest

import nft_differential as D
import nft_fixtures
import nft_plans
from nft_lab import NftLab


@pytest.mark.parametrize("plan", nft_plans.PLANS, ids=lambda p: p.name)
def test_tracer_agrees_with_the_kernel(kernel_labs, plan: nft_plans.NftPlan) -> None:
    lab = kernel_labs(plan.topology, cls=NftLab)
    lab.load_fixture(nft_fixtures.fixture(plan.fixture))
    report = D.run_plan(lab, plan)
    print(report.summary())
    bad = report.disagreements()
    assert not bad, "\n\n".join(r.why for r in bad)
    assert all(r.case.decidable or r.forked or r.undecided for r in report.results), \
        "a flow the plan calls undecidable was decided: the plan is wrong"
