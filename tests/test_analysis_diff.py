"""diff: the classes of changed packets, checked against the tracer on sampled packets.

Every class is computed over packet sets; here random concrete packets are drawn from each class
(and from the whole entry set of each scenario) and traced one by one through both rulesets: a
packet of a class must get exactly the class's fates before and after, and a packet outside
every class the same fates on both sides.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from iptexplain.analysis.diff import DiffResult, Side, diff_rulesets, entry_box, trace_scenario
from iptexplain.analysis.fates import cells
from iptexplain.analysis.space import meet, packet_flow, sample, without_martians
from iptexplain.hostinfer import parse_host_options
from iptexplain.netfilter.trace import Flow
from iptexplain.netfilter.tracer import trace_flow
from iptexplain.parse import load

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "fixtures"
CORPUS = Path("/work/shared/corpus/docker")
DOCKER28 = FIX / "moby28.5-usernet-portmap.v4.save"
DOCKER29 = FIX / "moby29.0-usernet-portmap.v4.save"
UFW = FIX / "ufw-docker-combined.v4.save"
EXT_HOST = dict(ifaces=["eth0=198.51.100.10/24"], routes=["default=eth0,198.51.100.1"])


def fates_of(rs, flow, host, probe):
    t = trace_flow(rs, flow, host, verbose=False)
    return frozenset(f for c in cells(t, rs) if meet(c.box, probe) is not None for f in c.fates)


def check(old, new, res: DiffResult, rng: random.Random, per_class: int = 4, per_scenario: int = 12) -> int:
    """Sample and compare; returns the number of packets checked."""
    checked = 0
    for c in res.classes:
        for b in c.boxes:
            for _ in range(per_class):
                p = sample(b, rng)
                flow = packet_flow(p, c.scenario.flow, whole_src=b.src == ((0, 0xFFFFFFFF),))
                assert fates_of(old, flow, res.host, p) == c.before, (c.words(), flow)
                assert fates_of(new, flow, res.host, p) == c.after, (c.words(), flow)
                checked += 1
    for sc in res.scenarios:
        t = trace_scenario(Side(old), sc, res.host)
        entry, _ = entry_box(t)
        # probes from every cell of the old trace, so that small cells are tried too
        boxes = [cl.box for cl in cells(t, old)]
        for _ in range(per_scenario):
            b = rng.choice(boxes) if rng.random() < 0.7 else entry
            p = sample(b, rng)
            if without_martians(p, p.iniface == "lo") is None:
                continue
            inside = [c for c in res.classes if c.scenario is sc and any(meet(x, p) for x in c.boxes)]
            flow = packet_flow(p, sc.flow, whole_src=b.src == ((0, 0xFFFFFFFF),))
            before, after = fates_of(old, flow, res.host, p), fates_of(new, flow, res.host, p)
            if inside:
                assert len(inside) == 1
                assert (before, after) == (inside[0].before, inside[0].after)
            else:
                assert before == after, (sc.key, flow, before, after)
            checked += 1
    return checked


def test_docker_28_to_29_one_class():
    """Docker 29 drops the nat DOCKER `-i docker0 -j RETURN`: a container reaching a published
    port through the host's address is now DNATed to the other network's container, where
    Docker 28 left it to docker-proxy on the host."""
    old, new = load(str(DOCKER28), "auto"), load(str(DOCKER29), "auto")
    res = diff_rulesets(Side(old), Side(new), Flow(family=4))
    assert len(res.classes) == 1
    c = res.classes[0]
    assert c.scenario.name == "from containers on docker0" and c.scenario.flow.proto == "tcp"
    assert {f.kind for f in c.before} == {"delivered"} and {f.kind for f in c.after} == {"forwarded"}
    assert c.words() == ["tcp from any address via docker0 to this host:8080"]
    assert any(r.role == "translated" and "DNAT" in r.spec for r in c.rules_after)
    assert check(old, new, res, random.Random(28)) > 20


def test_edited_ufw_host_every_class_checked(tmp_path):
    text = UFW.read_text()
    edited = text.replace("-A ufw-user-input -p tcp -m tcp --dport 22 -j ACCEPT",
                          "-A ufw-user-input -s 10.0.0.0/8 -p tcp -m tcp --dport 22 -j ACCEPT")
    edited = "\n".join(line for line in edited.splitlines() if "--dport 9000 -j ACCEPT" not in line) + "\n"
    path = tmp_path / "edited.save"
    path.write_text(edited)
    new = load(str(path), "auto")
    old = load(str(UFW), "auto")
    host = parse_host_options(**EXT_HOST)
    res = diff_rulesets(Side(old), Side(new), Flow(family=4), host)
    words = [(c.scenario.name, c.words()[0]) for c in res.classes]
    assert ("arriving on eth0", "tcp from any address via eth0 to this host:9000") in words
    assert ("arriving on eth0", "tcp from any address via eth0 but 10.0.0.0/8,188.95.233.42,188.95.233.200 "
            "to this host:22") in words
    assert check(old, new, res, random.Random(7), per_class=2, per_scenario=6) > 40


def test_flow_options_narrow_the_question():
    old, new = load(str(DOCKER28), "auto"), load(str(DOCKER29), "auto")
    res = diff_rulesets(Side(old), Side(new), Flow(family=4, proto="udp"))
    assert not res.changed and all(s.flow.proto == "udp" for s in res.scenarios)
    res = diff_rulesets(Side(old), Side(new), Flow(family=4, proto="tcp", dport=8080, iniface="docker0"))
    assert len(res.scenarios) == 1 and len(res.classes) == 1


def test_same_ruleset_no_change_even_with_undecidable_matches():
    """ufw's `-m limit` rules fork both ways in both traces: not a difference."""
    rs = load(str(UFW), "auto")
    res = diff_rulesets(Side(rs), Side(load(str(UFW), "auto")), Flow(family=4))
    assert res.classes == []


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "iptexplain", *args], capture_output=True, text=True,
                          cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def test_cli_exit_status_and_json():
    r = _cli("diff", str(DOCKER28), str(DOCKER29), "--json")
    assert r.returncode == 1, r.stderr
    doc = json.loads(r.stdout)
    assert doc["schema"] == "iptexplain.diff/1" and doc["changed"]
    (c,) = doc["classes"]
    assert c["example"]["dport"] == 8080 and c["before"]["kinds"] == ["delivered"]
    assert c["after"]["kinds"] == ["forwarded"]
    r = _cli("diff", str(DOCKER28), str(DOCKER28))
    assert r.returncode == 0 and "no packet's fate differs" in r.stdout
    r = _cli("diff", str(DOCKER28), "/nonexistent.save")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    r = _cli("diff", str(DOCKER28), str(DOCKER29), "--state", "ESTABLISHED")
    assert r.returncode == 2 and "NEW, INVALID or UNTRACKED" in r.stderr and not r.stdout
