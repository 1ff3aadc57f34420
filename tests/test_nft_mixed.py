"""Hosts where both stacks run, and nft's JSON on the command line.

iptables-nft's tables are in ``nft list ruleset`` too: given with the host's iptables-save dump
they are read once, from the dump (iptexplain/nft/mixed.py); alone, they are recognised as
iptables-nft's.  The rulesets are the fixtures the kernel listed (fixtures/nft/); what the kernel
does with the mixed host's packets is tests/test_nft_lab.py's and tests/test_nft_differential.py's.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from iptexplain.cli import main
from iptexplain.nft.json_reader import read_nft_json
from iptexplain.nft.mixed import is_iptables_nft, xt_rules
from iptexplain.nft.reader import read_nft
from iptexplain.parse import detect_format, parse_text
from iptexplain.parse.combine import combine

ROOT = Path(__file__).resolve().parent.parent
NFT = ROOT / "fixtures" / "nft"
SEED = ROOT / "fixtures" / "seed-docker.v4.save"
HOST = ["--iface", "eth0=198.51.100.1/24", "--iface", "docker0=172.17.0.1/16", "--iface", "lxdbr0=10.161.38.1/24"]


def _read(name: str):
    path = NFT / name
    text = path.read_text()
    return read_nft_json(text, name) if name.endswith(".json") else read_nft(text, name)


@pytest.mark.parametrize("name", ["mixed-docker-lxd.nft", "mixed-docker-lxd.json"])
def test_iptables_nft_tables_are_recognised_beside_native_ones(name: str) -> None:
    rs = _read(name)
    assert {t.name: is_iptables_nft(t) for t in rs.nft_tables} == {
        "ip filter": True, "ip nat": True, "inet lxd": False}


@pytest.mark.parametrize("name", ["iptables-nft-firewalld.nft", "iptables-nft-firewalld.json"])
def test_every_table_of_an_iptables_nft_host_is_recognised(name: str) -> None:
    rs = _read(name)
    assert len(rs.nft_tables) == 10 and all(is_iptables_nft(t) for t in rs.nft_tables)
    raw = next(t for t in rs.nft_tables if t.name == "ip raw")
    assert [r.text for r in xt_rules(raw)] == ["udp dport 137 counter xt target CT"] * 2 + [
        "tcp dport 21 counter xt target CT"]


@pytest.mark.parametrize("name", ["firewalld-nftables-backend.json", "kube-proxy-nftables.json",
                                  "docker29-nftables.json", "inet-server-sets.json"])
def test_native_tables_are_not_taken_for_iptables_ones(name: str) -> None:
    assert not any(is_iptables_nft(t) for t in _read(name).nft_tables)


def test_a_table_named_like_iptables_but_not_built_like_it_is_native() -> None:
    rs = read_nft("table ip filter {\n\tchain input {\n\t\ttype filter hook input priority 0; policy drop;\n"
                  "\t}\n}\n", "x")
    assert not is_iptables_nft(rs.nft_tables[0])


def test_save_and_nft_listing_of_one_host_read_iptables_tables_once() -> None:
    save = parse_text(SEED.read_text(), "seed.save")
    nft = read_nft((NFT / "mixed-docker-lxd.nft").read_text(), "ruleset.nft")
    rs = combine([save, nft])
    assert sorted(t.name for t in rs.tables.values()) == ["filter", "nat"]
    assert [t.name for t in rs.nft_tables] == ["inet lxd"]
    assert any("ip filter, ip nat are iptables-nft's, read from the iptables-save dump" in n.message
               for n in rs.notes)
    # the dump's rules keep their file and line; LXD's come from the nft listing
    assert {r.source for t in rs.tables.values() for r in t.rules()} == {"seed.save"}
    assert {r.source for t in rs.nft_tables for c in t.chains.values() for r in c.rules} == {"ruleset.nft"}


def test_an_nft_table_given_twice_is_read_once() -> None:
    a = read_nft((NFT / "src" / "lxd-lxdbr0.v4.nft").read_text(), "a.nft")
    b = read_nft((NFT / "src" / "lxd-lxdbr0.v4.nft").read_text(), "b.nft")
    rs = combine([parse_text(SEED.read_text(), "seed.save"), a, b])
    assert [t.name for t in rs.nft_tables] == ["inet lxd"]
    assert any("b.nft: table inet lxd is given again" in n.message for n in rs.notes)


def test_lxd_ticket_from_the_command_line() -> None:
    """`trace dump.save lxd.nft`: LXD's forward chain accepts the container's packet, Docker's
    FORWARD policy drops it (exit 1), and the trace names both."""
    res = CliRunner().invoke(main, ["trace", str(SEED), str(NFT / "src" / "lxd-lxdbr0.v4.nft"), "-p", "tcp",
                                    "-s", "10.161.38.10", "-i", "lxdbr0", "-d", "198.51.100.2", "--dport", "80",
                                    "--json", *HOST])
    assert res.exit_code == 1, res.output
    assert '"inet lxd"' in res.output and "policy of filter FORWARD" in res.output


def test_json_on_standard_input() -> None:
    """`nft -j list ruleset | iptexplain trace - --dport 8080`: detected, read, traced (a
    subprocess, as a pipe is)."""
    text = (NFT / "docker29-nftables.json").read_text()
    assert detect_format(text) == "nft-json"
    p = subprocess.run([sys.executable, "-m", "iptexplain", "trace", "-", "--dport", "8080", "-i", "eth0",
                        "-d", "198.51.100.1", "--iface", "eth0=198.51.100.1/24", "--iface", "bridge1=192.0.2.1/24"],
                       input=text, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 0, p.stderr + p.stdout
    assert "FORWARDED to 192.0.2.2:80 via bridge1" in p.stdout
    assert "nft-json" in p.stdout


@pytest.mark.parametrize("text, message", [
    ('{"nftables": [{"table": {"family": "ip", "name": "t"}}, {"chain": 5}]}',
     "<stdin>: nftables[1]: `chain': an object expected"),
    ('{"nftables": [', "<stdin>:1: not valid JSON: Expecting value (column 15)"),
])
def test_bad_json_is_one_line(text: str, message: str) -> None:
    res = CliRunner().invoke(main, ["trace", "-", "--dport", "22"], input=text)
    assert res.exit_code == 2
    assert res.output.strip().splitlines()[-1].endswith(message), res.output
