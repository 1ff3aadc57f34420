"""`iptexplain trace` as scripts use it: exit statuses, one-line errors, JSON and DOT output,
standard input, the bundled examples, --help and shell completion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from iptexplain import cli

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "fixtures" / "seed-docker.v4.save"
# The installed console script (pip install -e .), next to the interpreter running the tests.
SCRIPT = str(Path(sys.executable).with_name("iptexplain"))

PUBLISHED = ["--example", "docker", "-p", "tcp", "-s", "203.0.113.7", "-i", "eth0", "--dport", "9525"]
DIRECT = ["--example", "docker", "-p", "tcp", "-s", "203.0.113.7", "-i", "eth0", "-d", "172.17.0.6",
          "--dport", "9522"]
KUBE = ["--example", "kube", "-p", "udp", "-s", "10.244.0.5", "-i", "cni0", "-d", "10.96.0.10",
        "--dport", "53"]

# Half the new connections to port 80 are dropped: the ways disagree.
HALF_DROPPED = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --dport 80 -m statistic --mode random --probability 0.5 -j DROP
COMMIT
"""


def run(args: list[str], stdin: str | None = None):
    return CliRunner().invoke(cli.main, ["trace", *args], input=stdin, catch_exceptions=False)


def one_line(text: str) -> str:
    lines = text.strip("\n").splitlines()
    assert len(lines) == 1, text
    return lines[0]


# -- errors: one line, exit 2 -------------------------------------------------------------------


@pytest.mark.parametrize("args,expect", [
    (["--dport", "abc"], "invalid port/service `abc'"),
    (["--state", "SYN"], "expected one of NEW, ESTABLISHED"),
    (["-s", "10.0.0.300"], "10.0.0.300"),
    (["-p", "tcpx"], "unknown protocol `tcpx'"),
    (["--bogus"], "No such option '--bogus'"),
    (["-6", "-s", "10.0.0.1"], "-6 given with an IPv4 address"),
    (["-p", "icmp", "--dport", "3"], "need a protocol with ports"),
    (["--example", "nope"], "'nope' is not one of"),
    (["x.save", "--example", "docker"], "not both"),
    (["--mark", "zz"], "invalid number `zz'"),
])
def test_usage_errors_are_one_line_exit_2(args, expect):
    r = run(args)
    assert r.exit_code == 2
    line = one_line(r.stderr)
    assert line.startswith("iptexplain trace: ")
    assert expect in line
    assert r.stdout == ""


def test_input_error_is_file_line_exit_2(tmp_path):
    bad = tmp_path / "bad.save"
    bad.write_text("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 99999 -j ACCEPT\nCOMMIT\n")
    r = run([str(bad), "-p", "tcp", "--dport", "22"])
    assert r.exit_code == 2
    assert one_line(r.stderr).startswith(f"iptexplain: {bad}:3: ")


def test_family_mismatch_with_the_input_is_an_input_error(tmp_path):
    v6 = tmp_path / "r6.save"
    v6.write_text("*filter\n:INPUT DROP [0:0]\n-A INPUT -p tcp --dport 22 -j ACCEPT\nCOMMIT\n")
    r = run([str(v6), "-6", "-p", "tcp", "--dport", "22", "--json"])
    assert r.exit_code == 2 and "has no IPv6 tables" in one_line(r.stderr)
    v6.write_text("*filter\n:INPUT DROP [0:0]\n-A INPUT -s 2001:db8::/32 -p tcp --dport 22 -j ACCEPT\nCOMMIT\n")
    r = run([str(v6), "-p", "tcp", "-d", "192.0.2.1", "--dport", "22"])
    assert r.exit_code == 2
    assert one_line(r.stderr) == f"iptexplain: {v6}: the input has no IPv4 tables (only IPv6: give -6 and IPv6 addresses)"
    # no address given: the family the input has
    r = run([str(v6), "-p", "tcp", "-s", "2001:db8::7", "--dport", "22", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["flow"]["family"] == 6


def test_missing_file_exit_2():
    r = run(["/nonexistent/rules.save", "--dport", "22"])
    assert r.exit_code == 2
    assert one_line(r.stderr) == "iptexplain: /nonexistent/rules.save: No such file or directory"


def test_without_file_and_without_live_reading(monkeypatch):
    from iptexplain import sources

    real = sources._optional
    monkeypatch.setattr(sources, "_optional", lambda m: None if m == "iptexplain.live" else real(m))
    r = run(["--dport", "22"])
    assert r.exit_code == 2
    line = one_line(r.stderr)
    assert "no FILE given and live reading is not available" in line
    assert "sudo iptables-save | iptexplain trace -" in line


def test_internal_error_is_one_line_exit_4(monkeypatch):
    from iptexplain.netfilter import tracer

    def boom(*a, **k):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(tracer, "trace_flow", boom)
    monkeypatch.delenv("IPTEXPLAIN_DEBUG", raising=False)
    r = run(PUBLISHED)
    assert r.exit_code == 4
    line = one_line(r.stderr)
    assert "internal error: RuntimeError: kaboom" in line and "Traceback" not in r.output


# -- exit statuses of real traces ---------------------------------------------------------------


def test_published_port_forwarded_exit_0():
    r = run(PUBLISHED + ["--width", "100"])
    assert r.exit_code == 0, r.output
    assert "FORWARDED" in r.stdout
    assert "\x1b[" not in r.stdout  # not a terminal: no colour


def test_direct_to_container_dropped_exit_1():
    r = run(DIRECT)
    assert r.exit_code == 1, r.output
    assert "DROPPED" in r.stdout


def test_kube_fork_every_way_forwarded_exit_0():
    r = run(KUBE + ["--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["forks"] is True and doc["result"] == "forwarded" and doc["exit_status"] == 0
    assert len(doc["outcomes"]) == 2


def test_disagreeing_fork_exit_3_from_stdin():
    r = run(["-", "-p", "tcp", "-s", "192.0.2.7", "-d", "192.0.2.1", "-i", "eth0", "--dport", "80",
             "--iface", "eth0=192.0.2.1/24"], stdin=HALF_DROPPED)
    assert r.exit_code == 3, r.output
    assert "FORKS" in r.stdout
    assert "<stdin>:5" in " ".join(r.stdout.split())


def test_json_document():
    r = run(PUBLISHED + ["--format", "json"])
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    assert doc["schema"] == "iptexplain.trace/1"
    assert doc["flow"]["dport"] == 9525 and doc["flow"]["proto"] == "tcp"
    (way,) = doc["outcomes"]
    assert way["outcome"]["kind"] == "forwarded"
    assert way["outcome"]["rule"]["spec"].startswith("-A DOCKER -d 172.17.0.6/32")
    assert way["outcome"]["rule"]["line"] == 18


def test_dot_graph():
    r = run(PUBLISHED + ["--format", "dot"])
    assert r.exit_code == 0
    assert r.stdout.startswith("digraph iptexplain {")
    assert '"filter/FORWARD" -> "filter/DOCKER"' in r.stdout


def test_dport_without_proto_assumes_tcp_and_says_so():
    r = run(["--example", "docker", "--dport", "9525", "--json"])
    doc = json.loads(r.stdout)
    assert doc["flow"]["proto"] == "tcp"
    assert any("proto tcp assumed" in n["message"] for n in doc["notes"])


def test_verbose_shows_rules_passed_over():
    quiet = run(PUBLISHED + ["--width", "120"]).stdout
    loud = run(PUBLISHED + ["--width", "120", "-v"]).stdout
    assert "✗" not in quiet and "passed over" in quiet
    assert "✗" in loud


def test_file_argument_and_stdin_agree():
    a = run([str(SEED), "-p", "tcp", "-s", "203.0.113.7", "-i", "eth0", "-d", "198.51.100.1",
             "--dport", "9525", "--iface", "eth0=198.51.100.1/24", "--json"])
    b = run(["-", "-p", "tcp", "-s", "203.0.113.7", "-i", "eth0", "-d", "198.51.100.1",
             "--dport", "9525", "--iface", "eth0=198.51.100.1/24", "--json"], stdin=SEED.read_text())
    assert a.exit_code == b.exit_code == 0
    da, db = json.loads(a.stdout), json.loads(b.stdout)
    assert da["result"] == db["result"] == "forwarded"

    def walk(doc):
        return [(s["kind"], s["chain"], s["rule"] and s["rule"]["line"]) for s in doc["path"]["steps"]]

    assert walk(da) == walk(db)
    assert da["ruleset"]["source"] == str(SEED) and db["ruleset"]["source"] == "<stdin>"


# -- help, completion, start-up -----------------------------------------------------------------


def test_help_has_examples_and_exit_statuses():
    r = CliRunner().invoke(cli.main, ["trace", "--help"])
    assert r.exit_code == 0
    for text in ("Examples:", "--example docker", "Exit status:", "NO_COLOR", "_IPTEXPLAIN_COMPLETE",
                 "--from-container", "--in-interface"):
        assert text in r.output


def test_help_does_not_import_rich_or_the_tracer():
    code = ("import sys\nfrom click.testing import CliRunner\nfrom iptexplain.cli import main\n"
            "CliRunner().invoke(main, ['trace', '--help'])\n"
            "print(sorted(m for m in sys.modules if m.startswith(('rich', 'iptexplain.netfilter'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_shell_completion_offers_examples_and_states():
    env = {**os.environ, "_IPTEXPLAIN_COMPLETE": "bash_complete", "COMP_WORDS": "iptexplain trace --example d",
           "COMP_CWORD": "3"}
    out = subprocess.run([SCRIPT], env=env, capture_output=True, text=True)
    assert "docker" in out.stdout
    env["COMP_WORDS"], env["COMP_CWORD"] = "iptexplain trace --state ES", "3"
    out = subprocess.run([SCRIPT], env=env, capture_output=True, text=True)
    assert "ESTABLISHED" in out.stdout


# -- the other inputs: ipsets, saved `ip` output, listings --------------------------------------

BLOCKLIST = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m set --match-set blocked src -j DROP
COMMIT
"""


def test_ipset_decides_the_set_match(tmp_path):
    rules = tmp_path / "r.save"
    rules.write_text(BLOCKLIST)
    sets = tmp_path / "sets.save"
    sets.write_text("create blocked hash:net family inet hashsize 1024 maxelem 65536\n"
                    "add blocked 203.0.113.0/24\n")
    common = [str(rules), "-p", "tcp", "-d", "192.0.2.1", "-i", "eth0", "--dport", "22",
              "--iface", "eth0=192.0.2.1/24", "--ipset", str(sets)]
    assert run(common + ["-s", "203.0.113.9"]).exit_code == 1
    assert run(common + ["-s", "198.51.100.9"]).exit_code == 0
    # without the set's contents the ruleset cannot decide: the trace forks, the ways disagree
    assert run(common[:-2] + ["-s", "203.0.113.9"]).exit_code == 3


def test_bad_ipset_file_is_file_line(tmp_path):
    sets = tmp_path / "sets.save"
    sets.write_text("add nosuch 10.0.0.1\n")
    r = run(["--example", "docker", "--dport", "9525", "--ipset", str(sets)])
    assert r.exit_code == 2
    assert one_line(r.stderr) == f"iptexplain: {sets}:1: add to set nosuch before its create line"


def test_host_file_from_saved_ip_output(tmp_path):
    addr = tmp_path / "addr.json"
    addr.write_text(json.dumps([
        {"ifindex": 1, "ifname": "lo", "flags": ["LOOPBACK", "UP"], "operstate": "UNKNOWN",
         "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8}]},
        {"ifindex": 2, "ifname": "ens3", "flags": ["UP"], "operstate": "UP", "link_type": "ether",
         "addr_info": [{"family": "inet", "local": "192.0.2.10", "prefixlen": 24}]},
    ]))
    r = run([str(SEED), "--host", str(addr), "-p", "tcp", "-s", "203.0.113.7", "-i", "ens3",
             "-d", "192.0.2.10", "--dport", "9525", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert {"name": "ens3", "addrs": ["192.0.2.10/24"]}.items() <= next(
        i for i in doc["host"]["interfaces"] if i["name"] == "ens3").items()
    assert doc["result"] == "forwarded"  # the host's own address: Docker's DNAT applies
    assert any(n["message"].startswith(f"interfaces and addresses from {addr}") for n in doc["notes"])


def test_listing_fidelity_warning_comes_first():
    listing = ROOT / "fixtures" / "seed-blog-listing.txt"
    r = run([str(listing), "-p", "tcp", "-s", "203.0.113.7", "-i", "eth0", "-d", "198.51.100.1",
             "--dport", "9525", "--iface", "eth0=198.51.100.1/24", "--width", "200"])
    assert r.exit_code == 3, r.output  # uncertain: it rests on what the listing hid
    lines = r.stdout.splitlines()
    assert "(iptables -L listing," in lines[1]
    notes = [line for line in lines[2:] if line.startswith((" ! ", " i "))]
    assert notes and notes[0].startswith(" ! ")
    warnings = [line for line in notes if line.startswith(" ! ")]
    assert any("without -v" in line for line in warnings)
    # warnings before any informational note
    assert notes.index(warnings[-1]) < len(warnings)


def test_seed_listing_verdict_is_marked_uncertain():
    # `iptexplain trace fixtures/seed-blog-listing.txt --dport 9525` (issue 19's seed): -nL hid
    # Docker's `-i docker0 -j RETURN`; Docker's standard rules fill it in, and the answer is the
    # kernel's -- DNAT to 172.17.0.6:9525, FORWARD through Docker's chains, forwarded -- said to
    # rest on that inference, with the way to confirm it; exit status 3 (uncertain).
    listing = ROOT / "fixtures" / "seed-blog-listing.txt"
    r = run([str(listing), "--dport", "9525", "--width", "200"])
    assert r.exit_code == 3, r.output
    text = r.stdout
    assert "✔? FORWARDED to 172.17.0.6:9525 via docker0" in text
    assert "DNAT: dst 198.51.100.1:9525 → 172.17.0.6:9525" in text
    assert "filter FORWARD → DOCKER-USER → DOCKER-ISOLATION-STAGE-1 → DOCKER" in text
    assert "hidden `! -i docker0` filled in from Docker's standard rules" in text
    assert "printed without -v, which does not show interface matches" in text  # the -nL warning
    assert "UNCERTAIN: every way rests on" in text and "`iptables-save`" in text
    doc = json.loads(run([str(listing), "--dport", "9525", "--json"]).stdout)
    assert doc["uncertain"] is True and doc["outcomes"][0]["outcome"]["uncertain"] is True
    assert doc["outcomes"][0]["outcome"]["kind"] == "forwarded"
    assert "Docker's standard rules" in doc["outcomes"][0]["outcome"]["uncertain_reason"]
    # --reply keeps the doubt: the answer rests on the same rules.
    rep = run([str(listing), "--dport", "9525", "--reply", "--json"])
    assert rep.exit_code == 3 and json.loads(rep.stdout)["uncertain"] is True
    exact = json.loads(run([str(SEED), "--dport", "9525", "--json"]).stdout)
    assert exact["uncertain"] is False
