"""reach: the reachability table, each access checked against the tracer on sampled packets."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from iptexplain.analysis import diff as diff_mod
from iptexplain.analysis.diff import Side
from iptexplain.analysis.fates import cells, leaf_cells, overlapping_groups
from iptexplain.analysis.reach import PUBLISHED, reach, without_nat
from iptexplain.analysis.space import meet, packet_flow, sample
from iptexplain.host.infer import parse_host_options
from iptexplain.inputs.files import load
from iptexplain.netfilter.trace import PASSED, Flow
from iptexplain.netfilter.tracer import trace_flow

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import gen_kube  # noqa: E402  (bench/ is not a package)
UFW = ROOT / "fixtures" / "ufw-docker-combined.v4.save"
KUBE = ROOT / "fixtures" / "kube-proxy-k8s-node-flannel.v4.save"
HOST_OPTS = ["--iface", "eth0=198.51.100.10/24", "--route", "default=eth0,198.51.100.1"]


@pytest.fixture(scope="module")
def ufw():
    rs = load(str(UFW), "auto")
    host = parse_host_options(ifaces=["eth0=198.51.100.10/24"], routes=["default=eth0,198.51.100.1"])
    return rs, reach(Side(rs), Flow(family=4, proto="tcp"), host)


def fates_of(rs, flow, host, probe):
    t = trace_flow(rs, flow, host, verbose=False)
    return frozenset(f for c in cells(t, rs) if meet(c.box, probe) is not None for f in c.fates)


def _flow(p, a):
    return packet_flow(p, a.scenario.flow, whole_src=p.src == ((0, 0xFFFFFFFF),))


def test_published_port_reachable_from_sources_ufw_denies(ufw):
    rs, res = ufw
    row = next(r for r in res.rows if r.kind == PUBLISHED and "8080 → 192.0.2.2:80" in r.dest)
    assert [t.spec for t in row.translated_by] == ["-A DOCKER -p tcp -m tcp --dport 8080 -j DNAT --to-destination 192.0.2.2:80"]
    eth0 = next(a for a in row.access if a.scenario.name == "arriving on eth0")
    assert eth0.passed and eth0.words == "any address via eth0" and "filter DOCKER #1" in eth0.rules[0].text
    assert eth0.bypass == [("any address via eth0 but 10.0.0.0/24,188.95.233.42,188.95.233.200",
                            f"policy DROP of filter INPUT ({UFW.relative_to(ROOT) if False else rs.source}:16)")]
    # the same port, had Docker not translated it: ufw refuses those sources on INPUT
    bare = without_nat(rs)
    rng = random.Random(80)
    for box in eth0.bypass_boxes:
        for _ in range(5):
            p = sample(box, rng)
            got = fates_of(bare, _flow(p, eth0), res.host, p)
            assert got and not any(f.kind in PASSED for f in got)
            assert fates_of(rs, _flow(p, eth0), res.host, p) == eth0.fates


def test_every_access_checked_against_the_tracer(ufw):
    rs, res = ufw
    rng = random.Random(5)
    checked = 0
    for row in res.rows:
        for a in row.access:
            for box in a.boxes[:2]:
                p = sample(box, rng)
                assert fates_of(rs, _flow(p, a), res.host, p) == a.fates, (row.dest, a.scenario.name, a.words)
                checked += 1
    assert checked > 50


def test_host_ports_rows(ufw):
    _, res = ufw
    dests = [r.dest for r in res.rows if r.kind == "host"]
    assert "this host:22" in dests and "this host:80" in dests
    ssh = next(r for r in res.rows if r.dest == "this host:22")
    assert all(a.passed for a in ssh.access)
    other = next(r for r in res.rows if r.kind == "host" and r.dest.startswith("this host:not 22,80"))
    eth0 = [a for a in other.access if a.scenario.name == "arriving on eth0"]
    assert {a.passed for a in eth0} == {True, False}  # ufw's allowed sources, and the rest


def test_kube_proxy_node_services():
    rs = load(str(KUBE), "auto")
    res = reach(Side(rs), Flow(family=4))
    dns = next(r for r in res.rows if r.proto == "udp" and r.dest.startswith("10.96.0.10:53 → "))
    assert "10.244.0.2:53" in dns.dest and "10.244.0.3:53" in dns.dest
    a = dns.access[0]
    assert a.passed and len(a.fates) == 2  # one fate per endpoint, chosen at random
    rng = random.Random(53)
    for row in res.rows:
        for acc in row.access:
            p = sample(acc.boxes[0], rng)
            assert fates_of(rs, _flow(p, acc), res.host, p) == acc.fates


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "iptexplain", *args], capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def test_cli_json_dot_and_table():
    r = _cli("reach", str(UFW), *HOST_OPTS, "-p", "tcp", "--dport", "8080", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["schema"] == "iptexplain.reach/1"
    row = doc["rows"][0]
    assert row["kind"] == "published" and row["access"][0]["bypasses_input"]
    r = _cli("reach", str(UFW), *HOST_OPTS, "-p", "tcp", "--dport", "8080", "--format", "dot")
    assert r.returncode == 0 and r.stdout.startswith("digraph reach {") and "bypasses INPUT" in r.stdout
    r = _cli("reach", str(UFW), *HOST_OPTS, "-p", "tcp", "--dport", "8080")
    assert "published tcp this host:8080 → 192.0.2.2:80" in r.stdout and "refused on INPUT by policy DROP of filter INPUT" in r.stdout


def _kube(n: int, tmp_path):
    services = gen_kube.make_services(n, seed=3)
    path = tmp_path / f"kube-{n}.save"
    path.write_text(gen_kube.render(services))
    return services, load(str(path), "auto")


def test_overlapping_groups_are_the_all_pairs_components(tmp_path):
    """The sweep over destinations finds the same groups of overlapping cells as comparing
    every pair (the kube-proxy node's endpoints overlap per service; the rest do not)."""
    _, rs = _kube(60, tmp_path)
    host = parse_host_options(ifaces=["eth0=198.51.100.1/24"])
    t = trace_flow(rs, Flow(family=4, proto="tcp", iniface="eth0", dst="0.0.0.0/0"), host, verbose=False,
                   max_branches=20000)
    cs = leaf_cells(t, rs)
    parent = list(range(len(cs)))

    def find(i):
        while parent[i] != i:
            i = parent[i]
        return i

    for i in range(len(cs)):
        for j in range(i + 1, len(cs)):
            if meet(cs[i].box, cs[j].box) is not None:
                parent[find(i)] = find(j)
    brute = sorted(sorted(id(c) for k, c in enumerate(cs) if find(k) == r) for r in {find(k) for k in range(len(cs))})
    swept = sorted(sorted(id(c) for c in g) for g in overlapping_groups(cs))
    assert swept == brute
    assert any(len(g) > 1 for g in swept)  # the endpoints of a service do overlap


def test_reach_of_a_kube_proxy_node_answers_every_service(tmp_path, monkeypatch):
    """No branch cap cuts a node's table short: every ClusterIP with endpoints is a published
    row, DNATed to exactly its endpoints.  (The fixed cap made small, as a node of thousands of
    services meets it: the cap grows with the DNAT rules.)"""
    monkeypatch.setattr(diff_mod, "MAX_BRANCHES", 64)
    services, rs = _kube(150, tmp_path)
    host = parse_host_options(ifaces=["eth0=198.51.100.1/24"])
    t = trace_flow(rs, Flow(family=4, proto="tcp", iniface="eth0"), host, verbose=False, max_branches=64)
    assert any("branches" in n for n in t.notes)  # what a fixed cap would answer
    res = reach(Side(rs), Flow(family=4, proto="tcp", iniface="eth0"),
                parse_host_options(ifaces=["eth0=198.51.100.1/24"]))
    assert not res.incomplete
    rows = {r.dest.split(" → ")[0]: r for r in res.rows if r.kind == PUBLISHED}
    for s in services:
        if s.proto != "tcp" or not s.endpoints:
            continue
        row = rows.get(f"{s.cluster_ip}:{s.port}")
        assert row is not None, s.name
        targets = {f"{e.ip}:{e.port}" for e in s.endpoints}
        assert all(t in targets for t in row.dest.split(" → ")[1].split("  ")[0].split(" or ")
                   if t and not t.endswith("…")), (s.name, row.dest)


@pytest.mark.parametrize("hole", [0, 7, 0xFFFF])
def test_source_words_say_a_block_with_a_hole_without_a_double_but(hole: int) -> None:
    """kube-proxy masquerades what comes from outside the pod network *or* from the endpoint
    itself (hairpin): that set, taken from "any address not the host's own", was said "any
    address not the host's own but 10.42.0.0/16 but 10.42.0.7".  Its words now say what is
    outside the block, or in its hole -- and the set they name is the box's own."""
    from iptexplain.analysis.space import box_words
    from iptexplain.core.packets import Packets, subtract, union

    net = (10 << 24 | 42 << 16, 10 << 24 | 42 << 16 | 0xFFFF)
    host = (198 << 24 | 51 << 16 | 100 << 8 | 1,) * 2
    entry = Packets(family=4, src=subtract(((0, 2**32 - 1),), (host,)), dst=(host,), proto=((6, 6),))
    hole_addr = net[0] + hole
    box = entry.copy(src=union(subtract(entry.src, (net,)), ((hole_addr, hole_addr),)))
    words = box_words(box, entry, {"src": "any address not the host's own"})
    shown = f"{hole_addr >> 24}.{hole_addr >> 16 & 255}.{hole_addr >> 8 & 255}.{hole_addr & 255}"
    assert words.count(" but ") == 0, words
    assert f"any address not the host's own outside 10.42.0.0/16, or {shown}" in words, words
