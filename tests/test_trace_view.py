"""The trace views (rich text, JSON, Graphviz) over real traces of the seed rulesets, and over
hand-made traces for what the seed rulesets cannot produce (undecided, queued, a loop, a
rejection, a fork inside a fork).

Snapshots: tests/snapshots/*.txt|json, rendered without colour at a fixed width.  Regenerate with
UPDATE_SNAPSHOTS=1 and review every changed file by eye.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path as FilePath

import pytest

from snapshots import assert_snapshot

from iptexplain.examples import load_example
from iptexplain.host import HostModel
from iptexplain.netfilter.trace import (
    CONNTRACK, DELIVERED, DROPPED, FORWARDED, HOOK, SENT, NOTE, POLICY, QUEUED, REJECTED, REWRITE,
    ROUTE, RULE, TABLE, UNDECIDED, VERDICT, Condition, Flow, Fork, Outcome, Path, Step, Trace,
)
from iptexplain.parse import parse_text
from iptexplain.render.dot import render_dot
from iptexplain.render.json_out import SCHEMA, exit_status, result_of, trace_json
from iptexplain.render.trace_view import ContainerNames, TraceView, render_text

ROOT = FilePath(__file__).resolve().parent.parent
SEED = ROOT / "fixtures" / "seed-docker.v4.save"
WIDTH = 100


def seed_ruleset():
    return parse_text(SEED.read_text(), "seed-docker.v4.save")


# ---------------------------------------------------------------------------------------------
# Real traces of the seed flows (the tracer's output, through every view).

# (name, example, flow options, expected result)
SEED_FLOWS = [
    ("docker-published-port", "docker",
     dict(proto="tcp", src="203.0.113.7", sport=40000, dst="198.51.100.1", dport=9525, iniface="eth0"),
     FORWARDED),
    ("docker-closed-port", "docker",
     dict(proto="tcp", src="203.0.113.7", sport=40000, dst="198.51.100.1", dport=9522, iniface="eth0"),
     DELIVERED),
    ("docker-direct-to-container", "docker",
     dict(proto="tcp", src="203.0.113.7", sport=40000, dst="172.17.0.6", dport=9522, iniface="eth0"),
     DROPPED),
    ("docker-container-outbound", "docker",
     dict(proto="tcp", src="172.17.0.6", sport=40000, dst="93.184.215.14", dport=443, iniface="docker0"),
     FORWARDED),
    ("docker-host-local-published", "docker",
     dict(proto="tcp", sport=40000, dst="198.51.100.1", dport=9525, from_host=True),
     SENT),
    ("kube-dns-fork", "kube",
     dict(proto="udp", src="10.244.0.5", sport=40000, dst="10.96.0.10", dport=53, iniface="cni0"),
     FORWARDED),
]


def real_trace(example: str, opts: dict):
    from iptexplain.netfilter import tracer

    rs, host = load_example(example)
    return rs, tracer.trace_flow(rs, Flow(**opts), host, verbose=True)


@pytest.mark.parametrize("name,example,opts,expected", SEED_FLOWS, ids=[f[0] for f in SEED_FLOWS])
def test_seed_flow_views(name, example, opts, expected):
    rs, tr = real_trace(example, opts)
    assert result_of(tr) == expected
    text = render_text(tr, rs, width=WIDTH)
    assert_snapshot(f"{name}.txt", text)
    assert_snapshot(f"{name}.verbose.txt", render_text(tr, rs, width=WIDTH, verbose=True))
    doc = trace_json(tr, rs)
    assert doc["schema"] == SCHEMA
    assert_snapshot(f"{name}.json", json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    dot = render_dot(tr, rs)
    _check_dot(dot)
    assert_snapshot(f"{name}.dot", dot)


def test_kube_fork_is_two_ways_with_conditions():
    rs, tr = real_trace("kube", SEED_FLOWS[-1][2])
    assert tr.forks
    leaves = list(tr.leaves())
    assert len(leaves) == 2
    assert {round(lf.probability or 0, 2) for lf in leaves} == {0.5}
    text = render_text(tr, rs, width=WIDTH)
    assert "FORKS" in text and "50%" in text
    # both endpoints appear as rewrites in their own branch
    assert "10.244.0.2:53" in text and "10.244.0.3:53" in text
    assert exit_status(tr) == 0  # every way is forwarded


def test_published_port_view_names_the_decisive_rules():
    rs, tr = real_trace("docker", SEED_FLOWS[0][2])
    text = render_text(tr, rs, width=WIDTH)
    # the DNAT where it happens, and the container's name where its address appears
    assert re.search(r"✎ DNAT: dst 198\.51\.100\.1(:9525)? → 172\.17\.0\.6(:9525)? \(gallant_lumiere\)", text)
    assert "gallant_lumiere" in text
    # Docker-style chain path in the filter FORWARD table line
    assert re.search(r"filter FORWARD → DOCKER-USER → DOCKER-ISOLATION-STAGE-1 → DOCKER\b", text)
    # the closing line: outcome and the rule responsible, with its line number
    assert re.search(r"accepted by filter DOCKER #1 \(docker\.save:\d+\)", " ".join(text.split()))
    # default view hides the rules passed over, verbose shows them with their reason
    assert "✗" not in text
    verbose = render_text(tr, rs, width=WIDTH, verbose=True)
    assert "✗" in verbose


def test_listing_that_hides_interfaces_says_the_verdict_is_uncertain():
    # The seed blog post's pasted `iptables -nL`: nat DOCKER #1 lists as a bare `RETURN` (really
    # `-i docker0 -j RETURN`), so the flow is delivered "as listed" while the kernel DNATs it to
    # the container.  The view must not say DELIVERED with confidence.
    from iptexplain.netfilter import tracer

    rs = parse_text((ROOT / "fixtures" / "seed-blog-listing.txt").read_text(), "seed-blog-listing.txt")
    assert rs.format == "listing" and "interfaces" in rs.hidden
    tr = tracer.trace_flow(rs, Flow(dport=9525), verbose=True)
    text = render_text(tr, rs, width=WIDTH)
    assert_snapshot("seed-listing-hidden-interfaces.txt", text)
    flat = " ".join(text.split())
    # the deciding rules carry the mark and say what was filled in from Docker's standard rules
    assert re.search(r"✓\? DOCKER #2 ! -i docker0 -p tcp -m tcp --dport 9525 -j DNAT --to-destination "
                     r"172.17.0.6:9525 line 156 .*? \? hidden `! -i docker0` filled in from Docker's standard rules", flat)
    # the closing summary: uncertain, what it rests on, and what to read instead
    assert "✔? FORWARDED to 172.17.0.6:9525 via docker0" in flat
    assert "UNCERTAIN: every way rests on" in flat and "filled in from Docker's standard rules" in flat
    assert "iptables-save" in flat.split("UNCERTAIN", 1)[1]
    # ASCII consoles keep the mark
    ascii_text = _render_ascii(tr, rs)
    assert "OK? FORWARDED" in ascii_text and "? UNCERTAIN" in ascii_text
    doc = trace_json(tr, rs)
    assert_snapshot("seed-listing-hidden-interfaces.json", json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    assert doc["uncertain"] is True
    out = doc["outcomes"][0]["outcome"]
    assert out["uncertain"] is True and "Docker's standard rules" in out["uncertain_reason"]
    assert [(r["chain"], r["number"], r["line"]) for r in out["uncertain_rules"]][:2] == \
        [("PREROUTING", 1, 130), ("DOCKER", 2, 156)]
    marked = [(st["chain"], st["rule"]["number"]) for st in doc["path"]["steps"] if st["uncertain"]]
    assert ("DOCKER", 2) in marked and ("PREROUTING", 1) not in marked  # no -i/-o in Docker's rule


def test_uncertain_ways_of_a_fork_are_named_once_each_and_advised_once():
    listing = """Chain INPUT (policy DROP)
target     prot opt source               destination
ACCEPT     tcp  --  0.0.0.0/0            0.0.0.0/0            tcp dpt:22 limit: avg 3/min burst 5
REJECT     tcp  --  0.0.0.0/0            0.0.0.0/0            tcp dpt:22 reject-with tcp-reset
"""
    from iptexplain.netfilter import tracer

    rs = parse_text(listing, "input.nL")
    tr = tracer.trace_flow(rs, Flow(proto="tcp", src="203.0.113.7", dst="198.51.100.1", dport=22,
                                    iniface="eth0"))
    leaves = list(tr.leaves())
    # under / over the limit, and for each rule whether a hidden -i excludes the packet
    # (and, after each, what the tables the paste lacks could do)
    assert len(leaves) >= 5 and all(lf.outcome.uncertain for lf in leaves)
    assert {"delivered", "rejected", "dropped"} <= {lf.outcome.kind for lf in leaves}
    flat = " ".join(render_text(tr, rs, width=WIDTH).split())
    assert "✔? DELIVERED" in flat and "✘? REJECTED" in flat
    assert "? uncertain: rests on filter INPUT #1 `-p tcp -m tcp --dport 22 -m limit" in flat
    assert "? uncertain: rests on filter INPUT #2 `-p tcp -m tcp --dport 22 -j REJECT" in flat
    # the advice once, after the ways
    assert flat.count("For the full picture read `iptables-save`") == 1
    assert "UNCERTAIN: every way rests on rules the input did not show in full" in flat


def _render_ascii(tr, rs) -> str:
    import io

    from rich.console import Console

    buf = io.StringIO()
    console = Console(file=buf, width=WIDTH, force_terminal=False, no_color=True, highlight=False,
                      emoji=False, legacy_windows=False)
    console.print(*TraceView(tr, rs).renderables(ascii_only=True))
    return " ".join(buf.getvalue().split())


# ---------------------------------------------------------------------------------------------
# Hand-made traces: edge cases the seed rulesets do not produce.


def _rules():
    rs = seed_ruleset()
    return rs, {(r.table, r.chain, r.number): r for r in rs.rules()}


def _rule_step(r, matched, reason="", depth=0):
    return Step(RULE, table=r.table, chain=r.chain, rule=r, matched=matched, reason=reason, depth=depth)


def test_undecided_outcome_is_named_and_exits_3():
    rs, R = _rules()
    steps = [
        Step(HOOK, hook="INPUT"),
        Step(TABLE, hook="INPUT", table="filter", chain="INPUT"),
        Step(NOTE, table="filter", chain="INPUT", reason="module `foo' is not understood: cannot decide"),
    ]
    tr = Trace(Flow(proto="tcp", dport=22), Path(steps, Outcome(UNDECIDED, summary="undecided: opaque match foo")))
    text = render_text(tr, rs, width=WIDTH)
    assert "? UNDECIDED" in text or "? undecided" in text.lower()
    assert "! module `foo' is not understood" in text
    assert exit_status(tr) == 3
    assert result_of(tr) == UNDECIDED


def test_queued_outcome_exits_3():
    tr = Trace(Flow(), Path([Step(HOOK, hook="INPUT")], Outcome(QUEUED, summary="queued to NFQUEUE 0")))
    assert exit_status(tr) == 3
    assert "QUEUED" in render_text(tr, width=WIDTH)


def test_rejection_names_rule_line_and_reply():
    rs = parse_text("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 22 -j REJECT --reject-with tcp-reset\nCOMMIT\n",
                    "r.save")
    r = next(rs.rules())
    steps = [Step(HOOK, hook="INPUT"), Step(TABLE, hook="INPUT", table="filter", chain="INPUT"),
             _rule_step(r, True), Step(VERDICT, table="filter", chain="INPUT", verdict="REJECT")]
    tr = Trace(Flow(proto="tcp", dport=22), Path(steps, Outcome(REJECTED, rule=r, reply="tcp-reset")))
    text = render_text(tr, rs, width=WIDTH)
    flat = " ".join(text.split())
    assert "✘ REJECTED with tcp-reset — rejected by filter INPUT #1 (r.save:3)" in flat
    assert exit_status(tr) == 1


def test_policy_drop_is_responsible_when_no_rule_is():
    rs, R = _rules()
    steps = [Step(HOOK, hook="FORWARD"), Step(TABLE, hook="FORWARD", table="filter", chain="FORWARD"),
             _rule_step(R[("filter", "FORWARD", 5)], False, "in-interface eth0 ≠ docker0"),
             Step(POLICY, table="filter", chain="FORWARD", verdict="DROP")]
    tr = Trace(Flow(proto="tcp"), Path(steps, Outcome(DROPPED)))
    text = render_text(tr, rs, width=WIDTH)
    assert "dropped by policy DROP of filter FORWARD" in " ".join(text.split())
    # nothing matched in the table: folded onto one line, the policy named
    assert re.search(r"filter FORWARD +… 1 rule passed over +⇒ DROP \(policy\)", text)
    verbose = render_text(tr, rs, width=WIDTH, verbose=True)
    assert "✗ FORWARD #5" in verbose and "in-interface eth0 ≠ docker0" in verbose


def test_loop_note_and_nested_fork():
    rs, R = _rules()
    inner = Fork("limit: rate unknown", [
        (Condition("under the limit", None), Path([], Outcome(DELIVERED, summary="delivered locally"))),
        (Condition("over the limit", None), Path([Step(NOTE, reason="loop: DOCKER jumps back to itself")],
                                                 Outcome(UNDECIDED, summary="undecided: chain loop"))),
    ])
    outer = Fork("statistic mode random probability 0.25", [
        (Condition("statistic matched", 0.25), Path([], fork=inner)),
        (Condition("statistic did not match", 0.75), Path([], Outcome(DROPPED, summary="dropped"))),
    ])
    tr = Trace(Flow(proto="udp"), Path([Step(HOOK, hook="INPUT")], fork=outer))
    text = render_text(tr, rs, width=WIDTH)
    assert text.count("⑂ fork") == 2
    assert "[25%] statistic matched" in text and "[75%] statistic did not match" in text
    assert "! loop: DOCKER jumps back to itself" in text
    # leaf probabilities: 25% with unknown sub-condition -> "?" ; 75% dropped
    assert re.search(r"75% +statistic did not match", text)
    assert exit_status(tr) == 3
    doc = trace_json(tr, rs)
    assert doc["result"] == "forked" and doc["forks"] is True
    assert [o["probability"] for o in doc["outcomes"]] == [None, None, 0.75]
    branch = doc["path"]["fork"]["branches"][0]
    assert branch["condition"] == {"text": "statistic matched", "probability": 0.25, "edge": None}
    assert branch["path"]["fork"]["reason"] == "limit: rate unknown"


def test_ascii_console_uses_ascii_markers():
    import io

    from rich.console import Console

    rs, R = _rules()
    steps = [Step(HOOK, hook="FORWARD"), Step(TABLE, hook="FORWARD", table="filter", chain="FORWARD"),
             _rule_step(R[("filter", "FORWARD", 1)], True)]
    tr = Trace(Flow(proto="tcp"), Path(steps, Outcome(FORWARDED, summary="forwarded via docker0")))
    utf8 = io.StringIO()
    Console(file=utf8, width=80, color_system=None).print(TraceView(tr, rs))
    assert "✓ FORWARD #1" in utf8.getvalue() and "└──" in utf8.getvalue()

    class Latin1(io.StringIO):
        encoding = "latin-1"

    ascii_out = Latin1()
    Console(file=ascii_out, width=80, color_system=None).print(TraceView(tr, rs))
    text = ascii_out.getvalue()
    text.encode("ascii")  # nothing a latin-1 terminal cannot show
    assert "+ FORWARD #1" in text and "OK FORWARDED" in text


def test_container_names_annotate_addresses_but_not_prefixes_of_others():
    names = ContainerNames(HostModel(containers={"172.17.0.6": {"name": "/web"}}))
    assert names("dst 1.2.3.4:80 → 172.17.0.6:80") == "dst 1.2.3.4:80 → 172.17.0.6:80 (web)"
    assert names("to 172.17.0.6 via docker0") == "to 172.17.0.6 (web) via docker0"
    assert names("to 172.17.0.60 and 172.17.0.6/32") == "to 172.17.0.60 and 172.17.0.6/32"


def test_json_is_plain_data_with_every_step():
    rs, R = _rules()
    steps = [Step(HOOK, hook="PREROUTING"), Step(CONNTRACK, reason="NEW"),
             Step(TABLE, hook="PREROUTING", table="nat", chain="PREROUTING"),
             _rule_step(R[("nat", "PREROUTING", 1)], True),
             _rule_step(R[("nat", "DOCKER", 1)], False, "in-interface eth0 ≠ docker0", 1),
             Step(REWRITE, table="nat", chain="DOCKER", depth=1,
                  detail={"field": "dst", "before": "198.51.100.1:9525", "after": "172.17.0.6:9525",
                          "rule": R[("nat", "DOCKER", 2)], "set": {"b", "a"}}),
             Step(ROUTE, detail={"iface": "docker0"})]
    tr = Trace(Flow(proto="tcp", dport=9525), Path(steps, Outcome(FORWARDED, iface="docker0")))
    doc = json.loads(json.dumps(trace_json(tr, rs)))
    kinds = [s["kind"] for s in doc["path"]["steps"]]
    assert kinds == ["hook", "conntrack", "table", "rule", "rule", "rewrite", "route"]
    miss = doc["path"]["steps"][4]
    assert miss["matched"] is False and miss["reason"] == "in-interface eth0 ≠ docker0"
    assert miss["rule"]["line"] == 35 and miss["rule"]["spec"] == "-A DOCKER -i docker0 -j RETURN"
    detail = doc["path"]["steps"][5]["detail"]
    assert detail["rule"]["chain"] == "DOCKER" and detail["set"] == ["a", "b"]
    assert doc["outcomes"][0]["outcome"]["summary"] == "forwarded via docker0"
    assert doc["exit_status"] == 0 and doc["result"] == "forwarded"
    text = render_text(tr, rs, width=WIDTH)
    assert "✎ dst 198.51.100.1:9525 → 172.17.0.6:9525" in text
    assert "routing  forward via docker0" in text


def _check_dot(dot: str) -> None:
    """Structure always; Graphviz itself when it is installed."""
    assert dot.startswith("digraph iptexplain {") and dot.rstrip().endswith("}")
    declared = set(re.findall(r'^\s*"([^"]+)" \[', dot, re.M))
    for a, b in re.findall(r'^\s*"([^"]+)" -> "([^"]+)"', dot, re.M):
        assert a in declared and b in declared, (a, b)
    if shutil.which("dot"):
        out = subprocess.run(["dot", "-Tsvg"], input=dot, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr


GOTO_RULES = """*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:A - [0:0]
:B - [0:0]
:C - [0:0]
-A INPUT -j A
-A INPUT -p tcp --dport 22 -j ACCEPT
-A A -p tcp -g B
-A A -j DROP
-A B -p tcp --dport 80 -j ACCEPT
-A B -j C
-A C -p tcp --dport 443 -j RETURN
-A C -p tcp --dport 22 -j RETURN
COMMIT
"""


def test_goto_nests_under_the_rule_that_went_and_returns_above_it():
    """-g B from A: B's rules nest under `A #1 -g B`; falling off B returns to INPUT, not A."""
    from iptexplain.hostinfer import parse_host_options
    from iptexplain.netfilter.tracer import trace_flow

    rs = parse_text(GOTO_RULES, "goto.save")
    host = parse_host_options(ifaces=["eth0=192.0.2.1/24"])
    tr = trace_flow(rs, Flow(proto="tcp", src="192.0.2.7", dst="192.0.2.1", dport=22, iniface="eth0"), host)
    text = render_text(tr, rs, width=WIDTH, verbose=True)
    lines = text.splitlines()

    def indent(prefix: str) -> int:
        line = next(x for x in lines if prefix in x)
        return line.index(prefix.lstrip()[0])

    assert indent("✓ A #1  -p tcp -g B") < indent("✗ B #1") == indent("✓ B #2  -j C")
    assert indent("✓ B #2  -j C") < indent("✓ C #2")
    assert indent("↩ end of B: back to INPUT") == indent("✓ B #2  -j C")
    assert "filter INPUT → A → B → C  ⇒ ACCEPT" in text
    assert "accepted by filter INPUT #2 (goto.save:9)" in " ".join(text.split())
