"""trace --why: each answer checked against the trace it explains (and the CLI's spellings)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from iptexplain.analysis.why import (DECIDED, NEVER_REACHED, NOT_MATCHED, OVERRIDDEN, TRANSLATED, explain,
                                     find_rules, hooks_of)
from iptexplain.core.errors import InputError
from iptexplain.host.infer import parse_host_options
from iptexplain.inputs.files import load
from iptexplain.netfilter.trace import Flow
from iptexplain.netfilter.tracer import trace_flow
from iptexplain.netfilter.outcome import find_decider

ROOT = Path(__file__).resolve().parent.parent
UFW = ROOT / "fixtures" / "ufw-docker-combined.v4.save"
HOST = ["--iface", "eth0=198.51.100.10/24", "--route", "default=eth0,198.51.100.1"]


@pytest.fixture(scope="module")
def ufw():
    rs = load(str(UFW), "auto")
    host = parse_host_options(ifaces=["eth0=198.51.100.10/24"], routes=["default=eth0,198.51.100.1"])
    return rs, host


def answer(rs, host, spec, **flow):
    t = trace_flow(rs, Flow(family=4, proto="tcp", src="203.0.113.7", dst="198.51.100.10", **flow), host)
    res = explain(t, find_rules(rs, spec, 4), rs)
    ((rule, answers),) = res.answers
    return t, rule, answers


def test_ufw_bypass_never_reached(ufw):
    """Docker's published port: DNAT in nat PREROUTING sends the packet to FORWARD, while ufw's
    rules hang from INPUT."""
    t, rule, (a,) = answer(*ufw, "ufw-user-input:1", dport=8080)
    assert a.verdict == NEVER_REACHED
    assert a.because[0].startswith("DNAT in nat PREROUTING (nat DOCKER #1 (") and "sent it to FORWARD; " \
        "ufw-user-input is on filter INPUT (via ufw-before-input → ufw-user-input)" in a.because[0]
    assert a.because[1] == "the packet went through PREROUTING → FORWARD → POSTROUTING"
    # the trace agrees: no step of it looks at the rule, and INPUT is not among its hooks
    leaf = next(t.leaves())
    assert not any(st.rule is rule for st in leaf.steps)
    assert "INPUT" not in [st.hook for st in leaf.steps if st.kind == "hook"]
    assert leaf.outcome.kind == "forwarded"


def test_decided_not_matched_and_earlier_accept(ufw):
    t, rule, (a,) = answer(*ufw, "ufw-user-input:1", dport=22)
    leaf = next(t.leaves())
    assert a.verdict == DECIDED and find_decider(leaf.steps, leaf.outcome).rule is rule
    _, _, (a,) = answer(*ufw, "150", dport=22)  # line 150: ufw-user-input #2, --dport 80
    assert a.verdict == NEVER_REACHED and "ufw-user-input #1" in a.because[0] and "ACCEPT first" in a.because[0]
    _, _, (a,) = answer(*ufw, "ufw-user-input:1", dport=8081)
    assert a.verdict == NOT_MATCHED and "22" in a.because[0]


def test_translated_and_overridden(ufw, tmp_path):
    _, _, (a,) = answer(*ufw, "-A DOCKER -p tcp -m tcp --dport 8080 -j DNAT --to-destination 192.0.2.2:80", dport=8080)
    assert a.verdict == TRANSLATED and "filter DOCKER #1" in a.because[-1]
    f = tmp_path / "r.save"
    f.write_text("*mangle\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp --dport 22 -j ACCEPT\nCOMMIT\n"
                 "*filter\n:INPUT DROP [0:0]\nCOMMIT\n")
    rs = load(str(f), "auto")
    host = parse_host_options(ifaces=["eth0=198.51.100.10/24"])
    _, _, (a,) = answer(rs, host, "PREROUTING:1", dport=22)
    assert a.verdict == OVERRIDDEN and "ACCEPT ends only the mangle table" in " ".join(a.because)
    assert "policy DROP of filter INPUT" in a.because[-1]


def test_find_rules_spellings(ufw):
    rs, _ = ufw
    assert [r.line for r in find_rules(rs, "filter:ufw-user-input:2", 4)] == [150]
    assert len(find_rules(rs, "DOCKER:1", 4)) == 2  # filter DOCKER and nat DOCKER
    with pytest.raises(InputError):
        find_rules(rs, "ufw-user-input:99", 4)
    with pytest.raises(InputError):
        find_rules(rs, "-p tcp -m tcp", 4)  # many rules read like that
    filt = rs.table("filter", 4)
    assert hooks_of(filt, "ufw-user-input") == {"INPUT": ["INPUT", "ufw-before-input", "ufw-user-input"]}


def test_cli_why_json_and_errors():
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-m", "iptexplain", "trace", str(UFW), *HOST, "-p", "tcp", "-s", "203.0.113.7",
                        "-d", "198.51.100.10", "--dport", "8080", "--why", "ufw-user-input:1", "--json"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["schema"] == "iptexplain.why/1" and doc["why"][0]["answers"][0]["verdict"] == NEVER_REACHED
    r = subprocess.run([sys.executable, "-m", "iptexplain", "trace", str(UFW), "--dport", "80", "--why", "NOPE:3"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no rule 3 in chain NOPE" in r.stderr
