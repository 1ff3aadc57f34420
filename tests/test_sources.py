"""Where `iptexplain trace` gets its input (iptexplain.inputs.sources): an empty live host traces (every
hook accepts) while an empty FILE stays an error; the backend read live or kept by a snapshot
reaches the tracer (security before or after nat INPUT); ipsets read live or kept by a snapshot
decide `-m set` rules.

Live cases run the real command inside a throw-away network namespace (see test_live.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from iptexplain import cli
from test_live import TOPOLOGY, in_namespace, netns  # noqa: F401  (netns is a fixture)

# The CLI inside the namespace: each entry of req["traces"] is one `iptexplain trace` run;
# req["snapshot"] also takes a snapshot of the namespace's host.
TRACE_CODE = r'''
def cli(args):
    p = subprocess.run([sys.executable, "-m", "iptexplain", *args], capture_output=True, text=True)
    return {"rc": p.returncode, "stdout": p.stdout, "stderr": p.stderr}
out["traces"] = [cli(["trace", *args]) for args in req.get("traces", [])]
if req.get("snapshot"):
    out["snapshot"] = cli(["snapshot", *req["snapshot"]])
'''

HOST = ["--iface", "eth0=198.51.100.1/24"]
# A new connection from outside to the host's address, port 22.
TO_HOST = ["-p", "tcp", "-s", "203.0.113.7", "-i", "eth0", "-d", "198.51.100.1", "--dport", "22", "--json"]
FORWARDED = ["-p", "tcp", "-s", "198.51.100.7", "-i", "eth0", "-d", "93.184.216.34", "--dport", "443", "--json"]

BLOCKLIST = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m set --match-set blocked src -j DROP
COMMIT
"""

# security and nat both have INPUT rules: legacy runs security (priority 50) before nat INPUT
# (100), iptables-nft registers security at 150, after it.
SECURITY_AND_NAT = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -p tcp -m tcp --dport 9999 -j DNAT --to-destination 192.0.2.9
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
COMMIT
*security
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
COMMIT
"""


def doc(run: dict) -> dict:
    assert run["rc"] in (0, 1, 3), run["stderr"]
    return json.loads(run["stdout"])


def notes(d: dict) -> list[str]:
    return [n["message"] for n in d["notes"]]


def input_tables(d: dict) -> list[str]:
    return [s["table"] for s in d["path"]["steps"] if s["kind"] == "table" and s["hook"] == "INPUT"]


def trace(args: list[str], stdin: str | None = None):
    return CliRunner().invoke(cli.main, ["trace", *args], input=stdin, catch_exceptions=False)


# -- an empty ruleset ----------------------------------------------------------------------------


def test_empty_live_host_traces_every_hook_accepts(netns, tmp_path: Path) -> None:
    req = {"setup": TOPOLOGY, "sysctls": {"net.ipv4.ip_forward": "1"}, "code": TRACE_CODE,
           "traces": [FORWARDED, TO_HOST, ["--backend", "legacy", *TO_HOST]],
           "snapshot": ["-o", "/proc/self/fd/1"]}
    ans = in_namespace(req)
    fwd, local, legacy = (doc(r) for r in ans["traces"])
    assert fwd["result"] == "forwarded" and fwd["exit_status"] == 0
    assert local["result"] == "delivered"
    # the flow's addresses are IPv4: only IPv4 was read
    assert "no IPv4 iptables rules loaded on backend nft: every hook accepts" in notes(local)
    assert "no IPv4 iptables rules loaded on backend legacy: every hook accepts" in notes(legacy)
    assert not any(s["kind"] in ("table", "rule", "policy") for s in local["path"]["steps"])
    # reading created no legacy table (opening one would)
    assert ans["legacy_after"] == {"4": [], "6": []}
    # the snapshot of the empty host traces the same way, anywhere
    snap = tmp_path / "empty.snap"
    snap.write_text(ans["snapshot"]["stdout"])
    r = trace([str(snap), *TO_HOST])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["result"] == "delivered"
    # the snapshot read both families
    assert "no iptables rules loaded on backend nft: every hook accepts" in notes(d)


def test_live_family_without_rules_is_noted_not_refused(netns) -> None:
    flow6 = ["-6", "-p", "tcp", "-s", "2001:db8:9::1", "-i", "eth0", "-d", "2001:db8:1::1", "--dport", "22",
             "--json"]
    req = {"setup": TOPOLOGY, "code": TRACE_CODE,
           "load": [{"backend": "nft", "family": 4, "text": BLOCKLIST.replace("-m set --match-set blocked src",
                                                                              "-s 203.0.113.66")}],
           "traces": [flow6]}
    ans = in_namespace(req)
    for run in ans["traces"]:
        d = doc(run)
        assert d["result"] == "delivered"
        assert "no IPv6 iptables rules loaded on backend nft: every hook accepts" in notes(d)
        assert not any(m.startswith("no iptables rules") for m in notes(d))  # IPv4 has rules


def test_file_without_rules_stays_an_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.save"
    empty.write_text("# Generated by iptables-nft-save v1.8.9 (nf_tables)\n")
    for args, stdin in (([str(empty)], None), (["-"], "")):
        r = trace([*args, "--dport", "22"], stdin)
        assert r.exit_code == 2
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "no iptables rules found" in lines[0], r.stderr


# -- the backend reaches the tracer ------------------------------------------------------------


@pytest.mark.parametrize("backend,order", [("legacy", ["security", "nat"]), ("nft", ["nat", "security"])])
def test_backend_read_live_or_kept_in_a_snapshot_orders_the_hooks(netns, tmp_path: Path, backend: str,
                                                                  order: list[str]) -> None:
    req = {"setup": TOPOLOGY, "code": TRACE_CODE,
           "load": [{"backend": backend, "family": 4, "text": SECURITY_AND_NAT}],
           # detected, then forced to the backend that holds the rules
           "traces": [TO_HOST, ["--backend", backend, *TO_HOST]],
           "snapshot": ["-4", "-o", "/proc/self/fd/1"]}
    ans = in_namespace(req)
    for run in ans["traces"]:
        d = doc(run)
        assert input_tables(d) == order
        assert any(m.startswith(f"{backend} backend: security runs") for m in notes(d))
    snap = tmp_path / "host.snap"
    snap.write_text(ans["snapshot"]["stdout"])
    r = trace([str(snap), *TO_HOST])
    assert r.exit_code == 0, r.output
    assert input_tables(json.loads(r.stdout)) == order
    # a snapshot records its backend: forcing the other one is an input error
    other = "nft" if backend == "legacy" else "legacy"
    r = trace([str(snap), "--backend", other, *TO_HOST])
    assert r.exit_code == 2
    assert f"rules were read from the {backend} backend, not {other}" in r.stderr


def test_backend_of_a_file(tmp_path: Path) -> None:
    rules = tmp_path / "r.save"
    rules.write_text(SECURITY_AND_NAT)
    got = {}
    for b in ("auto", "legacy", "nft"):
        r = trace([str(rules), "--backend", b, *HOST, *TO_HOST])
        assert r.exit_code == 0, r.output
        got[b] = input_tables(json.loads(r.stdout))
    assert got == {"auto": ["nat", "security"], "legacy": ["security", "nat"], "nft": ["nat", "security"]}


# -- ipsets ----------------------------------------------------------------------------------------


def test_ipsets_read_live_and_kept_in_snapshots_decide_set_matches(netns, tmp_path: Path) -> None:
    blocked = ["-p", "tcp", "-s", "203.0.113.66", "-i", "eth0", "-d", "198.51.100.1", "--dport", "22", "--json"]
    req = {"setup": [*TOPOLOGY, ["ipset", "create", "blocked", "hash:ip"],
                     ["ipset", "add", "blocked", "203.0.113.66"]],
           "load": [{"backend": "nft", "family": 4, "text": BLOCKLIST}], "code": TRACE_CODE,
           "traces": [blocked, TO_HOST], "snapshot": ["-4", "-o", "/proc/self/fd/1"]}
    ans = in_namespace(req)
    dropped, passed = (doc(r) for r in ans["traces"])
    assert (dropped["result"], dropped["forks"]) == ("dropped", 0)
    assert (passed["result"], passed["forks"]) == ("delivered", 0)
    assert "ipset contents read live with `ipset save': 1 set (blocked)" in notes(dropped)

    snap = tmp_path / "h.snap"
    snap.write_text(ans["snapshot"]["stdout"])
    for args, status, result in ((blocked, 1, "dropped"), (TO_HOST, 0, "delivered")):
        r = trace([str(snap), *args])
        assert r.exit_code == status, r.output
        d = json.loads(r.stdout)
        assert (d["result"], d["forks"]) == (result, 0)
        assert f"ipset contents from the snapshot ({snap}[ipset save]): 1 set (blocked)" in notes(d)
    # the same rules without the sets' contents cannot decide: the trace forks
    rules = tmp_path / "r.save"
    rules.write_text(BLOCKLIST)
    r = trace([str(rules), *HOST, *blocked])
    assert r.exit_code == 3 and json.loads(r.stdout)["forks"] >= 1
    # --ipset FILE wins over the snapshot's sets, and says where its sets came from
    sets = tmp_path / "sets.save"
    sets.write_text("create blocked hash:ip family inet hashsize 1024 maxelem 65536\nadd blocked 203.0.113.7\n")
    r = trace([str(snap), "--ipset", str(sets), *TO_HOST])
    assert r.exit_code == 1, r.output
    assert f"ipset contents from {sets}: 1 set (blocked)" in notes(json.loads(r.stdout))


def test_live_ipset_failure_is_a_warning_and_the_set_match_forks(netns) -> None:
    # `ipset save' fails (the command is hidden from PATH): the trace still runs, and forks.
    code = TRACE_CODE.replace('[sys.executable, "-m", "iptexplain", *args]',
                              '[sys.executable, "-c", "import iptexplain.inputs.live as L, sys; '
                              'L.read_ipsets = lambda: (_ for _ in ()).throw(L.InputError(\'not installed\', '
                              '\'ipset\')); from iptexplain.cli import main; sys.argv[0] = \'iptexplain\'; main()", *args]')
    req = {"setup": [*TOPOLOGY, ["ipset", "create", "blocked", "hash:ip"]],
           "load": [{"backend": "nft", "family": 4, "text": BLOCKLIST}], "code": code, "traces": [TO_HOST]}
    d = doc(in_namespace(req)["traces"][0])
    assert d["forks"] >= 1 and d["exit_status"] == 3
    assert any(n["kind"] == "warning" and "rules use ipsets, but their contents could not be read" in n["message"]
               for n in d["notes"])


def test_sources_resolve_keeps_the_flow_family_and_backend(tmp_path: Path) -> None:
    from iptexplain.core.errors import InputError
    from iptexplain.inputs.sources import resolve

    v6 = tmp_path / "r6.save"
    v6.write_text("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
                  "-A INPUT -s 2001:db8::/32 -j DROP\nCOMMIT\n")
    got = resolve(str(v6), backend="legacy")
    assert (got.kind, got.family, got.backend, got.ipsets) == ("file", 6, "legacy", None)
    assert resolve(str(v6)).backend is None
    with pytest.raises(InputError, match="unknown backend"):
        resolve(str(v6), backend="iptables")
    with pytest.raises(InputError, match="no IPv4 tables"):
        resolve(str(v6), family=4)
