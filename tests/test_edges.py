"""A field left open does not bury the answer: the ways only edge packets take (invalid or
exceptional on the wire: port 0, TCP flags conntrack calls INVALID, martian sources, broadcast
destinations -- iptexplain.netfilter.edges) are shown as exceptions, and the exit status is the
ordinary packets' unless the user asks about the edge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from iptexplain import cli
from iptexplain.netfilter.edges import INVALID_TCP_FLAGS, VALID_TCP_FLAGS
from iptexplain.netfilter.packets import contains

ROOT = Path(__file__).resolve().parent.parent
SHOREWALL = str(ROOT / "fixtures" / "shorewall-universal.v4.save")


def trace(*args: str, stdin: str | None = None):
    return CliRunner().invoke(cli.main, ["trace", *args, "--width", "200"], input=stdin, catch_exceptions=False)


def test_source_port_zero_is_the_exception_not_the_answer() -> None:
    r = trace(SHOREWALL, "-s", "192.168.1.10", "--dport", "22")
    assert r.exit_code == 0, r.output
    tail = r.output.split("\n\n")[-1]
    first, *rest = tail.strip().splitlines()
    assert first.startswith("✔ DELIVERED to a local socket on 198.51.100.1:22"), tail
    assert "except edge packets" in rest[0] and "sport in 0 — source port 0: reserved" in rest[1], tail
    assert rest[2].strip().startswith("✘ DROPPED by filter logflags #2"), tail
    doc = json.loads(trace(SHOREWALL, "-s", "192.168.1.10", "--dport", "22", "--json").output)
    assert (doc["result"], doc["exit_status"]) == ("delivered", 0)
    edges = [o for o in doc["outcomes"] if o["edge"]]
    assert [o["outcome"]["kind"] for o in edges] == ["dropped"]
    assert edges[0]["conditions"][0]["edge"].startswith("source port 0")


def test_asking_about_the_edge_answers_for_it() -> None:
    r = trace(SHOREWALL, "-s", "192.168.1.10", "--sport", "0", "--dport", "22")
    assert r.exit_code == 1, r.output
    assert "except" not in r.output


def test_a_broadcast_destination_is_an_edge_way() -> None:
    r = trace(SHOREWALL, "-s", "192.168.1.10", "-d", "198.51.100.0/24", "-p", "udp", "--dport", "137", "--json")
    doc = json.loads(r.output)
    edge = [o for o in doc["outcomes"] if o["edge"]]
    assert len(edge) == 1 and "broadcast" in edge[0]["edge"]
    assert "198.51.100.255" in edge[0]["conditions"][0]["text"]
    # the ordinary ways still disagree (the host drops, the neighbours get it): exit 3
    assert doc["exit_status"] == 3 and doc["result"] == "forked"


INVALID_FLAGS = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --tcp-flags SYN,FIN SYN,FIN -j DROP
-A INPUT -p tcp -m tcp --tcp-flags FIN,ACK FIN -j DROP
-A INPUT -p tcp -m tcp --tcp-flags RST RST -j DROP
COMMIT
"""


def test_invalid_tcp_flags_are_edges_resets_are_not() -> None:
    # Segments without ACK, the rest open: SYN+FIN and FIN without ACK are not valid segments
    # (edges, dropped); a bare RST is (a real way, dropped); the rest is delivered: exit 3.
    r = trace("-", "--iface", "eth0=198.51.100.1/24", "--dport", "80", "--tcp-flags", "ACK", "NONE", "--json",
              stdin=INVALID_FLAGS)
    doc = json.loads(r.output)
    ways = sorted((o["edge"] is not None, o["outcome"]["rule"]["number"] if o["outcome"]["rule"] else 0,
                   o["outcome"]["kind"]) for o in doc["outcomes"])
    assert ways == [(False, 0, "delivered"), (False, 3, "dropped"), (True, 1, "dropped"), (True, 2, "dropped")], ways
    assert doc["exit_status"] == 3
    # ESTABLISHED, neither SYN nor RST: only FIN without ACK is left to the rules, an edge
    r2 = trace("-", "--iface", "eth0=198.51.100.1/24", "--dport", "80", "--state", "ESTABLISHED",
               "--tcp-flags", "SYN,RST", "NONE", stdin=INVALID_FLAGS)
    assert r2.exit_code == 0, r2.output
    assert "except edge packets" in r2.output and "TCP flags conntrack calls INVALID" in r2.output


@pytest.mark.parametrize("flags,valid", [
    (0x02, True), (0x12, True), (0x04, True), (0x14, True), (0x11, True), (0x10, True), (0x18, True),
    (0x32, True), (0xC2, True),
    (0x03, False), (0x00, False), (0x01, False), (0x06, False), (0x08, False), (0x3F, False),
])
def test_valid_flags_are_conntracks(flags: int, valid: bool) -> None:
    # tcp_valid_flags (nf_conntrack_proto_tcp.c), PSH/URG/ECE/CWR aside
    assert contains(VALID_TCP_FLAGS, flags) is valid
    assert contains(INVALID_TCP_FLAGS, flags) is not valid
