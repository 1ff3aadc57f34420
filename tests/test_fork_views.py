"""A fork with many ways (a service with many endpoints: kube-proxy's statistic cascade) is shown
in a view as long as what it shows: each way lists its own chosen rule, and the random choices
it passed over -- each the chosen rule of an earlier way, listed there -- are counted in one
line, even with -v.  The ways, their outcomes and their chosen rules stay the same."""

from __future__ import annotations

import re

import pytest

from iptexplain.netfilter.trace import Flow
from iptexplain.netfilter.tracer import trace_flow
from iptexplain.parse import parse_text
from iptexplain.render.trace_view import render_text


def cascade(n: int) -> str:
    """A nat table with one service of ``n`` endpoints, written as kube-proxy writes it."""
    lines = ["*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
             ":POSTROUTING ACCEPT [0:0]", ":KUBE-SVC-BIG - [0:0]"]
    lines += [f":KUBE-SEP-{i:04d} - [0:0]" for i in range(n)]
    lines.append("-A PREROUTING -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-BIG")
    for i in range(n):
        prob = f" -m statistic --mode random --probability {1 / (n - i):.11f}" if i < n - 1 else ""
        lines.append(f'-A KUBE-SVC-BIG -m comment --comment "default/big:http -> 10.244.0.{i + 1}:8080"'
                     f"{prob} -j KUBE-SEP-{i:04d}")
    lines += [f"-A KUBE-SEP-{i:04d} -p tcp -m tcp -j DNAT --to-destination 10.244.0.{i + 1}:8080" for i in range(n)]
    return "\n".join(lines + ["COMMIT", ""])


@pytest.fixture(scope="module")
def traced():
    rs = parse_text(cascade(30), "big.save")
    flow = Flow(proto="tcp", src="10.1.1.1", iniface="eth0", dst="10.96.0.10", dport=80)
    return rs, trace_flow(rs, flow, verbose=True)


@pytest.mark.parametrize("verbose", [False, True])
def test_each_way_shows_its_own_choice_once(traced, verbose: bool) -> None:
    rs, tr = traced
    leaves = list(tr.leaves())
    assert len(leaves) == 30
    text = render_text(tr, rs, width=200, verbose=verbose)
    for i in range(30):
        # the way's endpoint, its chosen rule (✓ … #i+1), and its DNAT, each in the view
        assert f"→ 10.244.0.{i + 1}:8080" in text
        assert len(re.findall(rf"✓ KUBE-SVC-BIG #{i + 1} ", text)) == 1
    # the choices passed over are counted, not listed again in each way (with -v, the second
    # way's one choice passed over is listed, with its reason)
    assert text.count("✗ KUBE-SVC-BIG") == (1 if verbose else 0)
    counted = [int(n) for n in re.findall(r"… (\d+) rules? passed over", text)]
    assert sorted(counted) == list(range(2 if verbose else 1, 30))
    if verbose:
        assert text.count("random choices not taken, each an earlier way of this fork") == 28  # ways 3..30


def test_verbose_view_grows_with_the_ways_not_their_square() -> None:
    sizes = {}
    for n in (10, 40):
        rs = parse_text(cascade(n), "big.save")
        tr = trace_flow(rs, Flow(proto="tcp", src="10.1.1.1", iniface="eth0", dst="10.96.0.10", dport=80),
                        verbose=True)
        sizes[n] = render_text(tr, rs, width=200, verbose=True).count("\n")
    assert sizes[40] < 4.5 * sizes[10]


def test_a_single_choice_passed_over_is_still_listed_with_its_reason() -> None:
    """A way that passed over one random choice (the second way, or a two-way fork) lists it with
    -v, as every rule passed over: nothing is counted that is not shown elsewhere in full."""
    rs = parse_text(cascade(3), "three.save")
    tr = trace_flow(rs, Flow(proto="tcp", src="10.1.1.1", iniface="eth0", dst="10.96.0.10", dport=80), verbose=True)
    text = render_text(tr, rs, width=200, verbose=True)
    assert text.count("✗ KUBE-SVC-BIG #1 ") == 1  # in the second way
    assert "random choice not taken" in text
    assert "… 2 rules passed over: random choices not taken" in text  # the third way
