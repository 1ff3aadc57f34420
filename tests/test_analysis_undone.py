"""lint across tables (iptexplain/analysis/undone.py): ACCEPTs that a later table, nft base
chain or hook undoes, and nat rules for a conntrack state the nat table never sees.

Each finding's packet sets are checked against the tracer (packets drawn at random from each
set, traced one by one: the rule accepts them and the later rule ends them); the kernel's word
on an example is tests/test_analysis_kernel.py's."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from iptexplain.analysis.diff import Side
from iptexplain.analysis.lint import NEVER, PARTLY_UNDONE_ACCEPT, UNDONE_ACCEPT, lint
from iptexplain.analysis.space import packet_flow, sample
from iptexplain.analysis.undone import accepts_undone, worth_tracing
from iptexplain.host.infer import parse_host_options
from iptexplain.inputs.files import load
from iptexplain.inputs.sources import resolve
from iptexplain.netfilter.trace import POLICY, VERDICT, Flow
from iptexplain.netfilter.tracer import trace_flow

ROOT = Path(__file__).resolve().parent.parent
FX = ROOT / "fixtures"
SEED = FX / "seed-docker.v4.save"
FIREWALLD = FX / "nft" / "src" / "firewalld-nftables-backend.nft"
LXD = FX / "nft" / "src" / "lxd-lxdbr0.v4.nft"
HOST = ("eth0=198.51.100.1/24", "docker0=172.17.0.1/16", "lxdbr0=10.161.38.1/24")

TABLES = """*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p tcp -m tcp --dport 23 -j ACCEPT
-A PREROUTING -p udp -m udp --dport 53 -j ACCEPT
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -p tcp -m tcp --dport 80 -j ACCEPT
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -p tcp -m tcp --dport 2323 -j DNAT --to-destination 192.0.2.20:23
-A PREROUTING -p tcp -m conntrack --ctstate ESTABLISHED -m tcp --dport 8443 -j DNAT --to-destination 192.0.2.20:443
-A PREROUTING -p tcp -m state --state INVALID,ESTABLISHED -m tcp --dport 8444 -j REDIRECT --to-ports 443
-A PREROUTING -p tcp -m conntrack --ctstate NEW,ESTABLISHED -m tcp --dport 8445 -j DNAT --to-destination 192.0.2.20:443
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --dport 23 -j DROP
-A INPUT -p tcp -m tcp --dport 80 -s 10.0.0.0/8 -j DROP
-A FORWARD -p tcp -m tcp --dport 23 -j REJECT --reject-with tcp-reset
-A FORWARD -d 192.0.2.20/32 -p tcp -m tcp --dport 23 -j REJECT --reject-with tcp-reset
COMMIT
"""
TABLES_HOST = ("eth0=198.51.100.10/24", "eth1=192.0.2.10/24")


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    f = tmp_path_factory.mktemp("undone") / "tables.save"
    f.write_text(TABLES)
    rs = load(str(f), "auto")
    host = parse_host_options(ifaces=list(TABLES_HOST), routes=["default=eth0,198.51.100.1"])
    return rs, host, lint(rs, host=host)


def _lines(res, kind):
    return {f.rule.line: sorted({r.line for r in f.involved}) for f in res.findings if f.kind == kind}


def test_accepts_and_translations_undone_by_a_later_table(tables):
    """raw's ACCEPT of telnet: filter INPUT drops every such packet (and FORWARD rejects the
    forwarded ones) -- undone.  raw's ACCEPT of DNS and mangle's of port 80: some get through
    (and mangle is no filtering chain, so "partly" is not said).  The DNAT of 2323: every
    packet it translates is rejected in FORWARD."""
    rs, host, res = tables
    undone = _lines(res, UNDONE_ACCEPT)
    assert undone == {4: [29, 31], 20: [31]}, res.findings  # the first of the two REJECTs decides
    assert not _lines(res, PARTLY_UNDONE_ACCEPT)
    f = next(f for f in res.findings if f.rule.line == 20)
    assert "translates for nothing" in f.message


def test_nat_rules_for_states_nat_never_sees(tables):
    rs, host, res = tables
    assert set(_lines(res, NEVER)) == {21, 22}
    f = next(f for f in res.findings if f.kind == NEVER and f.rule.line == 22)
    assert "ESTABLISHED,INVALID" in f.message
    # the tracer agrees: an established connection to 8443 is never translated by the rule,
    # and a new one to 8445 is
    for state, port, hit in (("ESTABLISHED", 8443, False), ("ESTABLISHED", 8444, False), ("NEW", 8445, True)):
        t = trace_flow(rs, Flow(family=4, proto="tcp", src="203.0.113.7", dst="198.51.100.10", dport=port,
                                iniface="eth0", state=state), host, verbose=True)
        seen = any(st.rule is not None and st.rule.table == "nat" and st.matched
                   for lf in t.leaves() for st in lf.steps)
        assert seen is hit, (state, port)


def _findings(files: list[Path], ifaces: tuple[str, ...] = HOST):
    given = resolve([str(f) for f in files], None, 4, "auto", ifaces=ifaces)
    res = accepts_undone(Side(given.ruleset, given.ipsets, given.backend), given.host, 4)
    return given, res


def _agree(given, res, rng: random.Random, per_class: int = 5) -> int:
    """Packets drawn from each class: the finding's rule accepts them, and the class's rule or
    policy ends them afterwards -- the tracer, one packet at a time."""
    n = 0
    for u in res.undone:
        for c in u.classes:
            for box in c.boxes:
                for _ in range(per_class):
                    p = sample(box, rng)
                    flow = packet_flow(p, c.scenario.flow, whole_src=False)
                    t = trace_flow(given.ruleset, flow, given.host, verbose=False)
                    for leaf in t.leaves():
                        steps = leaf.steps
                        acc = [i for i, st in enumerate(steps) if st.kind == VERDICT and st.rule is u.rule
                               and st.verdict == "ACCEPT"]
                        assert acc, (flow, u.rule.spec())
                        assert leaf.outcome.kind in ("dropped", "rejected"), (flow, leaf.outcome)
                        ends = [i for i, st in enumerate(steps) if st.kind in (VERDICT, POLICY)
                                and st.verdict in ("DROP", "REJECT")]
                        assert ends and ends[-1] > acc[0], flow
                        last = steps[ends[-1]]
                        if c.by_rule is not None:
                            assert last.rule is c.by_rule, (flow, last)
                        else:
                            assert last.kind == POLICY and f"{last.table} {last.chain}" in c.by, (flow, c.by)
                        n += 1
    return n


def test_docker_accept_undone_by_firewalld_nft_forward():
    """Docker's iptables-nft FORWARD accepts, firewalld's nft forward chain (priority filter +
    10) rejects: container to container on docker0 always, the published port's container
    address when reached directly (not through the DNAT, which firewalld lets through)."""
    given, res = _findings([SEED, FIREWALLD], HOST[:2])
    by = {(u.kind, u.rule.chain, u.rule.number): u for u in res.undone}
    assert set(by) == {("undone", "FORWARD", 6), ("partly undone", "DOCKER", 1)}
    full = by[("undone", "FORWARD", 6)]
    assert {c.scenario.name for c in full.classes} == {"arriving on docker0"}
    assert {c.fate for c in full.classes} == {"rejected with icmp-admin-prohibited"}
    assert {c.by_rule.chain for c in full.classes} == {"filter_FWD_public"}
    part = by[("partly undone", "DOCKER", 1)]
    words = [w for c in part.classes for w in c.words()]
    assert "tcp from 192.0.2.0/24 to 172.17.0.6:9525" in words
    assert _agree(given, res, random.Random(18)) >= 20


def test_lxd_accept_undone_by_docker_policy():
    given, res = _findings([SEED, LXD])
    assert {(u.kind, u.rule.table, u.rule.number) for u in res.undone} == {
        ("partly undone", "inet lxd", 1), ("partly undone", "inet lxd", 2)}
    assert all(c.by.startswith("policy DROP of filter FORWARD") for u in res.undone for c in u.classes)
    assert _agree(given, res, random.Random(5), per_class=3) >= 15


@pytest.mark.parametrize("name", ["docker20-containers.v4.save", "kube-proxy-k8s-node-flannel.v4.save",
                                  "ufw-docker-combined.v4.save", "firewalld-iptables-backend.v4.save",
                                  "moby29.0-usernet-portmap.v4.save"])
def test_one_stack_hosts_have_no_accept_undone(name):
    """A host whose tables one tool wrote: its nat verdicts are traced, and no ACCEPT is
    undone (the tools' own tables agree with each other)."""
    rs = load(str(FX / name), "auto")
    assert worth_tracing(rs, 4)
    res = lint(rs)
    assert not [f for f in res.findings if f.kind in (UNDONE_ACCEPT, PARTLY_UNDONE_ACCEPT, NEVER)]
    assert res.traced == [4]


def test_filter_only_rulesets_are_not_traced():
    rs = load(str(FX / "tum-chair-2016-06-27.v4.save"), "auto")
    assert not worth_tracing(rs, 4)


def test_cli_two_files_json(tmp_path):
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    args = [sys.executable, "-m", "iptexplain", "lint", str(SEED), str(FIREWALLD)]
    for h in HOST[:2]:
        args += ["--iface", h]
    r = subprocess.run(args + ["--json"], capture_output=True, text=True, env=env, cwd=ROOT)
    assert r.returncode == 1, r.stderr
    doc = json.loads(r.stdout)
    (f,) = [f for f in doc["findings"] if f["kind"] == UNDONE_ACCEPT]
    assert f["rule"]["line"] == 17 and f["involved"][0]["chain"] == "filter_FWD_public"
    ex = f["packets"][0]["example"]
    assert ex["iniface"] == "docker0" and ex["dst"].startswith("172.17.")
    r = subprocess.run(args, capture_output=True, text=True, env=env, cwd=ROOT)
    assert r.returncode == 1
    assert "undone accept: filter FORWARD #6" in r.stdout and "e.g. tcp 172.17.0.2:40000 → 172.17.0.3:80" in r.stdout


REWRITES = """*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p tcp -m tcp --dport 80 -j MARK --set-mark 0x1
-A PREROUTING -p udp -j MARK --set-mark 0x3
-A PREROUTING -p icmp -j MARK --set-xmark 0x10/0xf0
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -p tcp -j MARK --set-mark 0x2
-A PREROUTING -p udp -m mark --mark 0x3 -j LOG
-A PREROUTING -p udp -j MARK --set-mark 0x4
-A PREROUTING -p icmp -j MARK --set-xmark 0x1/0xf
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
COMMIT
"""


def test_marks_set_again_by_a_later_table(tmp_path):
    """raw's mark of port 80 is set again, whole, by mangle before anything reads it (undone);
    the UDP mark is read (mangle's -m mark) before it is set again; mangle's ICMP mark sets
    other bits than raw's.  The tracer agrees: a packet to port 80 leaves PREROUTING with
    mangle's mark."""
    f = tmp_path / "rewrites.save"
    f.write_text(REWRITES)
    rs = load(str(f), "auto")
    host = parse_host_options(ifaces=list(TABLES_HOST), routes=["default=eth0,198.51.100.1"])
    res = lint(rs, host=host)
    undone = {(fd.rule.line, tuple(r.line for r in fd.involved)) for fd in res.findings if fd.kind == "undone"}
    assert undone == {(4, (14,))}, res.findings
    (fd,) = [fd for fd in res.findings if fd.kind == "undone"]
    assert "another table" in fd.message and fd.classes
    rng = random.Random(3)
    for c in fd.classes:
        for box in c.boxes:
            for _ in range(4):
                flow = packet_flow(sample(box, rng), c.scenario.flow, whole_src=False)
                t = trace_flow(rs, flow, host, verbose=False)
                for leaf in t.leaves():
                    marks = [st.detail.get("after") for st in leaf.steps
                             if st.kind == "rewrite" and st.detail.get("field") == "mark"]
                    rules = [st.rule.line for st in leaf.steps if st.kind == "rule" and st.matched
                             and st.rule is not None and st.rule.target_name == "MARK"]
                    assert rules[:2] == [4, 14] and marks[-1] == "0x2", (flow, rules, marks)
