"""Flow options iptables users expect: ``--syn``, ``--tcp-flags MASK COMP`` (with ``!``), port
ranges (``--dport 1:1024``) and lists (``--dports 22,80``), spelled as iptables spells them."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from iptexplain import cli

# An ESTABLISHED segment meets a rule for resets: without its flags the trace cannot decide.
RESETS = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --tcp-flags RST RST -j DROP
-A INPUT -p tcp -m tcp ! --syn -m conntrack --ctstate NEW -j DROP
-A INPUT -p tcp -m tcp --dport 22 -j DROP
COMMIT
"""
HOST = ["--iface", "eth0=198.51.100.1/24"]


def trace(*args: str, stdin: str = RESETS):
    return CliRunner().invoke(cli.main, ["trace", "-", *HOST, *args], input=stdin, catch_exceptions=False)


@pytest.mark.parametrize("args,status", [
    # ESTABLISHED: FIN/RST open, the reset rule forks; the user who knows the segment decides it
    (["--dport", "80", "--state", "ESTABLISHED"], 3),
    (["--dport", "80", "--state", "ESTABLISHED", "--tcp-flags", "ALL", "ACK"], 0),
    (["--dport", "80", "--state", "ESTABLISHED", "--tcp-flags", "RST", "RST"], 1),
    (["--dport", "80", "--state", "ESTABLISHED", "!", "--tcp-flags", "RST", "RST"], 0),
    # NEW: a SYN unless told otherwise; `! --syn` meets the rule for NEW non-SYN segments
    (["--dport", "80"], 0),
    (["--dport", "80", "--syn"], 0),
    (["--dport", "80", "!", "--syn"], 1),
    (["--dport", "80", "--tcp-flags", "SYN,ACK", "ACK"], 1),
    # ranges and lists: the rule for port 22 splits them
    (["--dport", "1:1024"], 3),
    (["--dport", "23:1024"], 0),
    (["--dport", ":21"], 0),
    (["--dports", "22,80"], 3),
    (["--dports", "80,443,8000:8080"], 0),
    (["--dport", "22:22"], 1),
])
def test_flow_options_decide(args: list[str], status: int) -> None:
    r = trace(*args)
    assert r.exit_code == status, r.output


def test_syn_alone_assumes_tcp_and_says_so() -> None:
    r = trace("-d", "198.51.100.1", "!", "--syn", "--json")
    doc = json.loads(r.output)
    assert doc["flow"]["proto"] == "tcp" and doc["flow"]["tcp_flags"] == "! --syn"
    assert any("tcp assumed (! --syn" in n["message"] for n in doc["notes"])
    assert r.exit_code == 1


def test_ranges_in_json_and_headline_in_iptables_spelling() -> None:
    doc = json.loads(trace("--dports", "8000:8080,443", "--sport", "1024:", "--json").output)
    assert doc["flow"]["dport"] == "443,8000:8080"
    assert doc["flow"]["sport"] == "1024:65535"
    assert "--dports 443,8000:8080" in doc["flow"]["text"]
    assert "--sport 1024:65535" in doc["flow"]["text"]
    one = json.loads(trace("--dport", "80", "--json").output)
    assert one["flow"]["dport"] == 80 and "*:80" in one["flow"]["text"]


def test_reply_flags_describe_the_reply() -> None:
    # The answer of an established connection to port 80 of a peer: with its flags known
    # (a reset) the host's reset rule drops it; a plain ACK passes.
    rs = RESETS.replace("-A INPUT -p tcp -m tcp --tcp-flags RST RST -j DROP",
                        "-A INPUT -p tcp -m tcp --sport 80 --tcp-flags RST RST -j DROP")
    base = ["--from-host", "-d", "198.51.100.2", "--dport", "80", "--state", "ESTABLISHED", "--reply"]
    assert trace(*base, "--tcp-flags", "RST", "RST", stdin=rs).exit_code == 1
    assert trace(*base, "--tcp-flags", "ALL", "ACK", stdin=rs).exit_code == 0


@pytest.mark.parametrize("args,expect", [
    (["--dport", "1024:10"], "invalid portrange `1024:10'"),
    (["--dports", "22,,80"], "an empty port in the list"),
    (["--dport", "22", "--dports", "80"], "give one of --dport and --dports"),
    (["--syn", "--tcp-flags", "SYN", "SYN"], "give one of --syn, --tcp-flags"),
    (["-p", "udp", "--syn"], "--syn describes a TCP segment, not `udp'"),
    (["--tcp-flags", "SYN", "SYN,ACK"], "COMP has flags outside MASK"),
    (["--tcp-flags", "SYN", "BOGUS"], "Unknown TCP flag `BOGUS'"),
    (["!", "--dport", "22"], "`!' negates only --syn and --tcp-flags"),
])
def test_bad_flow_options_are_one_line_exit_2(args: list[str], expect: str) -> None:
    r = CliRunner().invoke(cli.main, ["trace", "--example", "docker", *args], catch_exceptions=False)
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0], r.output
