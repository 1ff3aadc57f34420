"""lint: shadowed and redundant rules, unreachable chains -- and no finding where the analysis
cannot be sure.  Each shadowed rule is checked against the tracer: packets drawn from what the
rule alone matches never make it match."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from iptexplain.analysis.lint import REDUNDANT, SHADOWED, UNREACHABLE, decide, lint, universe
from iptexplain.analysis.space import packet_flow, sample
from iptexplain.hostinfer import parse_host_options
from iptexplain.netfilter.context import MatchContext
from iptexplain.netfilter.packets import intersect
from iptexplain.netfilter.trace import Flow
from iptexplain.netfilter.tracer import trace_flow
from iptexplain.parse import load

ROOT = Path(__file__).resolve().parent.parent
TUM = ROOT / "fixtures" / "tum-chair-2016-06-27.v4.save"

RULES = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:web - [0:0]
:orphan - [0:0]
:empty - [0:0]
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
-A INPUT -s 10.0.0.0/8 -p tcp -m tcp --dport 22 -j DROP
-A INPUT -s 10.0.0.0/8 -p tcp -m tcp --dport 1:100 -j ACCEPT
-A INPUT ! -s 10.0.0.0/8 -p tcp -m tcp --dport 1:100 -j REJECT
-A INPUT -p tcp -m tcp --dport 50 -j LOG
-A INPUT -p tcp -m multiport --dports 80,443 -j web
-A INPUT -i eth0 -j ACCEPT
-A INPUT -p udp -j DROP
-A INPUT -m limit --limit 1/sec -j ACCEPT
-A INPUT -p icmp -j DROP
-A INPUT -m mac --mac-source 00:11:22:33:44:55 -j ACCEPT
-A INPUT -m mac --mac-source 00:11:22:33:44:55 -j ACCEPT
-A web -p tcp -m tcp --dport 443 -j ACCEPT
-A web -p tcp -m tcp --dport 443 -j ACCEPT
-A orphan -j DROP
COMMIT
"""


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    f = tmp_path_factory.mktemp("lint") / "rules.save"
    f.write_text(RULES)
    rs = load(str(f), "auto")
    return rs, lint(rs)


def by_line(res, kind):
    return {f.rule.line: f for f in res.findings if f.kind == kind and f.rule is not None}


def test_findings(result):
    rs, res = result
    shadowed, redundant = by_line(res, SHADOWED), by_line(res, REDUNDANT)
    # line 9: DROP of 10/8:22 after ACCEPT of any:22 -- a conflict
    assert set(shadowed) == {9, 12} and set(redundant) == {21}
    assert [r.line for r in shadowed[9].involved] == [8]
    # line 12: --dport 50, taken by the union of two earlier rules (10/8 and not 10/8)
    assert [r.line for r in shadowed[12].involved] == [10, 11]
    assert [r.line for r in redundant[21].involved] == [20]
    unreachable = [f.chain.name for f in res.findings if f.kind == UNREACHABLE]
    assert unreachable == ["orphan"]  # the empty one is no finding


def test_no_finding_without_certainty(result):
    _, res = result
    lines = {f.rule.line for f in res.findings if f.rule is not None}
    # shadowed only for packets on eth0 (line 14 takes eth0 only): not reported
    assert 15 not in lines
    # after a rate limit nothing is certain; MAC addresses are not in the ruleset's hands
    assert not lines & {16, 17, 18, 19}


def test_shadowed_rules_never_match_in_the_tracer(result):
    rs, res = result
    host = parse_host_options(ifaces=["eth0=198.51.100.10/24", "eth1=192.0.2.10/24"],
                              routes=["default=eth0,198.51.100.1"])
    rng = random.Random(9)
    for f in res.findings:
        if f.kind not in (SHADOWED, REDUNDANT):
            continue
        r = f.rule
        ctx = MatchContext(4, "INPUT", "filter", r.chain)
        for iface in ("eth0", "eth1"):
            own = decide(r, universe(4, "INPUT", iface, None), ctx).matched
            # sources a packet can really come from (not martians, not the host's own)
            srcs = intersect(own.src, ((0x0A000000, 0x0AFFFFFF), (0xCB007100, 0xCB0071FF)))
            assert srcs
            for _ in range(6):
                p = sample(own.copy(src=srcs, dst=((0xC633640A, 0xC633640A),), ctstate=frozenset({"NEW"})), rng)
                flow = packet_flow(p, Flow(family=4, iniface=iface))
                t = trace_flow(rs, flow, host)
                for leaf in t.leaves():
                    assert not any(st.rule is r and st.matched for st in leaf.steps), (flow, r.spec())
                    assert any(st.rule in f.involved and st.matched for st in leaf.steps)


def test_university_firewall():
    """The TUM chair's firewall (5,556 rules): rule-for-rule duplicates and rules inside an
    earlier rule with the same target, and the per-VLAN chains left unreferenced."""
    rs = load(str(TUM), "auto")
    res = lint(rs)
    kinds = {f.kind for f in res.findings}
    assert kinds <= {SHADOWED, REDUNDANT, UNREACHABLE}
    red = {f.rule.line: [r.line for r in f.involved] for f in res.findings if f.kind == REDUNDANT}
    assert red[302] == [300]  # the same rule twice
    assert red[412] == [391]  # -s 131.159.15.137 --dport 22 inside -s 131.159.15.128/26 --dports 22,628
    assert any(f.kind == UNREACHABLE and f.chain.name == "filter_1015" for f in res.findings)
    assert res.judged > 3000


def test_cli(result, tmp_path):
    f = tmp_path / "r.save"
    f.write_text(RULES)
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-m", "iptexplain", "lint", str(f), "--json"], capture_output=True,
                       text=True, env=env)
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert doc["schema"] == "iptexplain.lint/1" and len(doc["findings"]) == 4
    f.write_text("*filter\n:INPUT DROP [0:0]\n-A INPUT -p tcp --dport 22 -j ACCEPT\nCOMMIT\n")
    r = subprocess.run([sys.executable, "-m", "iptexplain", "lint", str(f)], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "no findings" in r.stdout


UNDONE_RULES = """*mangle
:PREROUTING ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
-A PREROUTING -p tcp --dport 80 -j MARK --set-mark 0x1
-A PREROUTING -p tcp -j MARK --set-mark 0x2
-A PREROUTING -p udp -j MARK --set-mark 0x3
-A PREROUTING -p udp -m mark --mark 0x3 -j ACCEPT
-A PREROUTING -p udp -j MARK --set-mark 0x4
-A PREROUTING -p icmp -j MARK --set-xmark 0x10/0xf0
-A PREROUTING -p icmp -j MARK --set-xmark 0x1/0xf
-A PREROUTING -p sctp -j MARK --set-mark 0x5
-A PREROUTING -p sctp --dport 9 -j MARK --set-mark 0x6
-A FORWARD -j DSCP --set-dscp 10
-A FORWARD -j DSCP --set-dscp-class EF
COMMIT
"""


def test_undone_rewrites(tmp_path):
    """A rewrite set again before anything reads it -- but not when a rule reads the mark in
    between, when the later rule sets other bits, or when it covers only some packets."""
    f = tmp_path / "undone.save"
    f.write_text(UNDONE_RULES)
    rs = load(str(f), "auto")
    res = lint(rs)
    undone = {(fd.rule.line, fd.involved[0].line) for fd in res.findings if fd.kind == "undone"}
    assert undone == {(4, 5), (13, 14)}
    # and the tracer agrees: a TCP packet to port 80 leaves PREROUTING with mark 0x2
    t = trace_flow(rs, Flow(family=4, proto="tcp", src="203.0.113.7", dport=80, dst="198.51.100.10"),
                   parse_host_options(ifaces=["eth0=198.51.100.10/24"]))
    marks = [st.detail.get("after") for leaf in t.leaves() for st in leaf.steps
             if st.kind == "rewrite" and st.detail.get("field") == "mark"]
    assert marks[-1] == "0x2"
