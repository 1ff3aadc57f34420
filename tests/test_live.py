"""Live reading (iptexplain.inputs.live, iptc_reader, host.running.read_host, snapshot, docker_api).

Every test that reads a live ruleset does it inside a throw-away network namespace
(``unshare -n -m``): a child process builds the host there -- interfaces, addresses, routes,
sysctls, a ruleset loaded with ``iptables-legacy-restore`` or ``iptables-nft-restore`` -- saves
what the host's own tools print (``iptables-*-save -c``, ``ip -j ...``), and calls ``read_live()``.
The test then checks that reading live gives the same rule graph and host model as parsing the
saved text, and that a trace of each is the same trace.  Nothing touches the machine's own
namespace: the namespace dies with the child.
"""

from __future__ import annotations

import http.server
import importlib.util
import json
import os
import shutil
import socketserver
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from iptexplain.core.errors import InputError
from iptexplain.graph import Ruleset
from iptexplain.host.readers import host_from_dict, host_from_ip_json, host_to_dict, parse_sysctl_text
from iptexplain.inputs.files import ruleset_from_text
from iptexplain.parse import parse_text
from iptexplain.parse.save import parse_save
from iptexplain.render.save import save_table

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
SEED = FIXTURES / "seed-docker.v4.save"
LIVE_FIXTURES = [
    SEED,
    FIXTURES / "live" / "docker20_containers_nft.v4.save",
    FIXTURES / "live" / "iptables-tests__wireless.v4.save",
    FIXTURES / "live" / "firewalld-iptables-backend_nft.v6.save",
    FIXTURES / "live" / "k3s-raspberrypi_kuberouter-netpol-flannel_nft-1.8.10_2026.v6.save",
]
BACKENDS = ("legacy", "nft")
HAVE_IPTC = importlib.util.find_spec("iptc") is not None
# How the legacy backend is read: python-iptables (the `live' extra) when installed.
LEGACY_HOW = "python-iptables" if HAVE_IPTC else "iptables-legacy-save -c"


def require_iptc() -> None:
    if HAVE_IPTC:
        return
    if os.environ.get("CI") == "true":
        pytest.fail("python-iptables (the `live' extra) is not installed under CI", pytrace=False)
    pytest.skip("python-iptables (the `live' extra) is not installed")


def _namespace_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for tool in ("unshare", "ip", "iptables-legacy-restore", "iptables-nft-restore",
                 "ip6tables-legacy-restore", "ip6tables-nft-restore", "setpriv"):
        if shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None:
            return f"`{tool}' is not installed"
    p = subprocess.run(["unshare", "-n", "-m", "true"], capture_output=True, text=True)
    if p.returncode != 0:
        return f"cannot create a network namespace: {p.stderr.strip()}"
    return None


@pytest.fixture(scope="module")
def netns() -> None:
    reason = _namespace_unavailable()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"namespaces unavailable under CI: {reason}", pytrace=False)
    pytest.skip(reason)


# ---------------------------------------------------------------------------------------------
# The in-namespace agent.  It runs as `unshare -n -m python -c AGENT`, reads a JSON request on
# stdin and prints one JSON answer.  Each step is a fixed argument list run with check=True.

AGENT = r'''
import json, os, subprocess, sys
req = json.load(sys.stdin)
out = {}

def run(argv, **kw):
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kw).stdout

def sysctl(key, value):
    with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
        f.write(value)
# No IPv6 link-local addresses: their duplicate address detection ends at a random moment and
# would change the local routes between two reads.
sysctl("net.ipv6.conf.default.addr_gen_mode", "1")
for argv in req.get("setup", []):
    run(argv)
for key, value in req.get("sysctls", {}).items():
    with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
        f.write(value)
for load in req.get("load", []):
    pre = "ip6tables" if load["family"] == 6 else "iptables"
    run([f"{pre}-{load['backend']}-restore"], input=load["text"])
saved = {}
for b, fam in req.get("save", []):
    pre = "ip6tables" if fam == 6 else "iptables"
    saved[f"{b}{fam}"] = run([f"{pre}-{b}-save", "-c"])
out["saved"] = saved
if req.get("ip"):
    out["ip"] = {
        "addr": run(["ip", "-j", "-d", "addr", "show"]),
        "route4": run(["ip", "-j", "-4", "route", "show", "table", "all"]),
        "route6": run(["ip", "-j", "-6", "route", "show", "table", "all"]),
    }
def names(fam):
    try:
        return open("/proc/net/ip_tables_names" if fam == 4 else "/proc/net/ip6_tables_names").read().split()
    except FileNotFoundError:
        return []
out["legacy_before"] = {4: names(4), 6: names(6)}
exec(req.get("code", ""))
out["legacy_after"] = {4: names(4), 6: names(6)}
print(json.dumps(out))
'''

LIVE_CODE = r'''
from iptexplain.core.errors import InputError
from iptexplain.host.readers import host_to_dict
from iptexplain.inputs.live import read_live
from iptexplain.render.save import save_ruleset
try:
    rs, host = read_live(req.get("family"), req.get("backend"))
    out["live"] = {
        "save": save_ruleset(rs, counters=True),
        "notes": [[n.kind, n.message] for n in rs.notes],
        "sources": sorted({r.source for r in rs.rules()}),
        "lines": sorted([r.table, r.chain, r.number, r.line] for r in rs.rules()),
        "host": host_to_dict(host),
        "format": rs.format,
    }
except InputError as e:
    out["error"] = str(e)
'''


def in_namespace(request: dict, timeout: float = 180) -> dict:
    """Run the agent in a fresh network + mount namespace; its JSON answer."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("IPTEXPLAIN_DEBUG", None)
    p = subprocess.run(
        ["unshare", "-n", "-m", "--propagation", "private", "--", sys.executable, "-c", AGENT],
        input=json.dumps(request), capture_output=True, text=True, timeout=timeout, env=env, cwd=str(ROOT),
    )
    assert p.returncode == 0, f"agent failed ({p.returncode}): {p.stderr[-3000:]}"
    return json.loads(p.stdout.strip().splitlines()[-1])


# A Docker-like host: eth0 198.51.100.1/24 with a default route, docker0 172.17.0.1/16 (a bridge
# with one veth port), IPv6 on eth0, a static route and a blackhole.
TOPOLOGY = [
    ["ip", "link", "set", "lo", "up"],
    ["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0-peer"],
    ["ip", "link", "set", "eth0-peer", "up"],
    ["ip", "link", "set", "eth0", "up"],
    ["ip", "addr", "add", "198.51.100.1/24", "dev", "eth0"],
    ["ip", "-6", "addr", "add", "2001:db8:1::1/64", "dev", "eth0", "nodad"],
    ["ip", "link", "add", "docker0", "type", "bridge"],
    ["ip", "addr", "add", "172.17.0.1/16", "dev", "docker0"],
    ["ip", "link", "set", "docker0", "up"],
    ["ip", "link", "add", "vethc6", "type", "veth", "peer", "name", "vethc6-peer"],
    ["ip", "link", "set", "vethc6", "master", "docker0"],
    ["ip", "link", "set", "vethc6", "up"],
    ["ip", "route", "add", "default", "via", "198.51.100.254", "dev", "eth0"],
    ["ip", "route", "add", "10.99.0.0/16", "via", "198.51.100.253", "dev", "eth0"],
    ["ip", "route", "add", "blackhole", "192.0.2.0/24"],
    ["ip", "-6", "route", "add", "default", "via", "2001:db8:1::fe", "dev", "eth0"],
    ["ip", "rule", "add", "fwmark", "0x4000", "lookup", "100", "pref", "100"],
    ["ip", "route", "add", "10.50.0.0/16", "via", "198.51.100.250", "dev", "eth0", "table", "100"],
]
SYSCTLS = {"net.ipv4.ip_forward": "1", "net.ipv4.conf.docker0.route_localnet": "1"}


def family_of(path: Path) -> int:
    return 6 if ".v6." in path.name else 4


def canonical(rs: Ruleset, counters: bool = True) -> str:
    """The graph as save text, tables in canonical order (the kernel lists legacy tables in the
    order they were created, which says nothing about the rules)."""
    return "".join(save_table(t, counters) for fam in rs.families() for t in rs.tables_of(fam))


def same_rules(a: str, b: str) -> bool:
    """Two save texts hold the same graph (counters aside: they move while a test runs)."""
    return canonical(parse_text(a, "a"), counters=False) == canonical(parse_text(b, "b"), counters=False)


def host_facts(d: dict) -> dict:
    """The parts of a host model that come from the kernel (not notes or provenance)."""
    return {"interfaces": d["interfaces"], "routes": d["routes"]}


def load_request(path: Path, backend: str, **extra) -> dict:
    fam = family_of(path)
    return {
        "setup": TOPOLOGY, "sysctls": SYSCTLS,
        "load": [{"backend": backend, "family": fam, "text": path.read_text()}],
        "save": [[backend, fam]], "ip": True, "code": LIVE_CODE, **extra,
    }


# ---------------------------------------------------------------------------------------------
# Live = saved


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("path", LIVE_FIXTURES, ids=lambda p: p.name)
def test_live_reading_equals_parsing_the_saved_dump(netns, path: Path, backend: str) -> None:
    fam = family_of(path)
    ans = in_namespace(load_request(path, backend))
    assert "error" not in ans, ans.get("error")
    live = ans["live"]
    saved_text = ans["saved"][f"{backend}{fam}"]
    # Same rule graph as the host's own save command's output (counters move as the namespace
    # sends its own packets, so they are compared in test_counters_are_read) …
    assert canonical(parse_text(live["save"], "live"), counters=False) == canonical(
        parse_save(saved_text, "saved", family=fam), counters=False)
    # Rules point at their line in the save command's output (python-iptables' text is laid
    # out line for line like iptables-legacy-save's).
    assert live["lines"] == sorted([r.table, r.chain, r.number, r.line]
                                   for r in parse_save(saved_text, "saved", family=fam).rules())
    # … and as the file that was loaded (what the kernel holds is what the file said).
    assert canonical(parse_text(live["save"], "live"), counters=False) == canonical(
        parse_text(path.read_text(), path.name), counters=False)
    # Same host model as parsing the saved `ip -j` output.
    ip = ans["ip"]
    saved_host = host_from_ip_json(ip["addr"], ip["route4"], ip["route6"])
    assert host_facts(live["host"]) == host_facts(host_to_dict(saved_host))
    # Which backend was read, and how.
    how = " ".join(m for k, m in live["notes"] if k == "live")
    if backend == "legacy":
        assert f"IPv{fam} from the legacy backend ({LEGACY_HOW}" in how
        assert live["sources"] == [f"{'ip' if fam == 4 else 'ip6'}tables-legacy-save"]
    else:
        assert f"IPv{fam} from the nf_tables backend ({'ip' if fam == 4 else 'ip6'}tables-nft-save -c" in how
        assert live["sources"] == [f"{'ip' if fam == 4 else 'ip6'}tables-nft-save"]
    assert live["format"] == "live"
    # Reading opened no legacy table that did not exist (opening one creates it).
    assert ans["legacy_after"] == ans["legacy_before"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_counters_are_read(netns, backend: str) -> None:
    rules = ("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
             "-A OUTPUT -d 127.0.0.9/32 -p udp -m udp --dport 9 -j ACCEPT\nCOMMIT\n")
    req = {"setup": [["ip", "link", "set", "lo", "up"]],
           "load": [{"backend": backend, "family": 4, "text": rules}],
           "code": r'''
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(3):
    s.sendto(b"x" * 10, ("127.0.0.9", 9))
s.close()
''' + LIVE_CODE}
    ans = in_namespace(req)
    rule = [line for line in ans["live"]["save"].splitlines() if "--dport 9" in line]
    # 3 packets of 20 (IP) + 8 (UDP) + 10 bytes
    assert rule == ["[3:114] -A OUTPUT -d 127.0.0.9/32 -p udp -m udp --dport 9 -j ACCEPT"]


def test_live_host_model_has_the_kernel_facts(netns) -> None:
    ans = in_namespace(load_request(SEED, "nft"))
    host = host_from_dict(ans["live"]["host"])
    docker0 = host.interfaces["docker0"]
    assert docker0.kind == "bridge" and [str(a) for a in docker0.addrs if a.family == 4] == ["172.17.0.1/16"]
    assert host.interfaces["eth0"].kind == "veth"
    assert "2001:db8:1::1/64" in [str(a) for a in host.interfaces["eth0"].addrs]
    assert host.interfaces["lo"].kind == "loopback"
    routes = {(r.table, r.type, r.dst): r for r in host.routes if r.family == 4}
    default = routes[("main", "unicast", "default")]
    assert (default.dev, default.via, default.family) == ("eth0", "198.51.100.254", 4)
    assert routes[("main", "unicast", "10.99.0.0/16")].via == "198.51.100.253"
    assert ("main", "blackhole", "192.0.2.0/24") in routes
    # addrtype LOCAL comes from the local table: the host's own addresses are there.
    assert routes[("local", "local", "198.51.100.1/32")].dev == "eth0"
    assert routes[("local", "local", "172.17.0.1/32")].dev == "docker0"
    assert routes[("local", "broadcast", "172.17.255.255/32")].dev == "docker0"
    v6_default = [r for r in host.routes if r.family == 6 and r.dst == "default"]
    assert v6_default and v6_default[0].via == "2001:db8:1::fe"
    assert routes[("main", "unicast", "172.17.0.0/16")].src == "172.17.0.1"  # MASQUERADE's source
    assert routes[("100", "unicast", "10.50.0.0/16")].via == "198.51.100.250"
    assert [n for n in host.notes if n.startswith("policy routing")] == [
        "policy routing: IPv4 has 1 routing rule(s) beyond local/main/default "
        "(100: from all fwmark 0x4000 lookup 100); routes are looked up in the main table only"]
    assert host.sysctls["net.ipv4.ip_forward"] == "1"
    assert host.sysctls["net.ipv4.conf.docker0.route_localnet"] == "1"
    assert host.sysctls["net.ipv4.conf.eth0.route_localnet"] == "0"


# ---------------------------------------------------------------------------------------------
# Backend detection


def _notes(ans: dict) -> list[tuple[str, str]]:
    return [tuple(n) for n in ans["live"]["notes"]]


def test_detect_nft_only(netns) -> None:
    ans = in_namespace(load_request(SEED, "nft"))
    notes = _notes(ans)
    assert not [m for k, m in notes if k == "warning"]
    assert ans["legacy_after"] == {"4": [], "6": []}  # no legacy table was created by reading


def test_detect_legacy_only(netns) -> None:
    req = load_request(SEED, "legacy")
    req["code"] = LIVE_CODE + 'out["version"] = run(["iptables", "-V"])\n'
    ans = in_namespace(req)
    notes = _notes(ans)
    assert not [m for k, m in notes if k == "warning"]
    how = [m for k, m in notes if k == "live"]
    assert len(how) == 1 and f"IPv4 from the legacy backend ({LEGACY_HOW}, 18 rules)" in how[0]
    assert "IPv6: no tables in either backend" in how[0]
    # Docker on a legacy backend while the admin's `iptables' is the nft one: said plainly.
    mismatch = [m for k, m in notes if k == "backend"]
    if "nf_tables" in ans["version"]:
        assert mismatch == ["IPv4: the rules are in the legacy backend, but `iptables' on this host uses "
                            f"the nft one ({ans['version'].strip()}), so `iptables -L' does not show them; "
                            "`iptables-legacy' does"]
    else:
        assert mismatch == []
    assert sorted(ans["legacy_after"]["4"]) == ["filter", "nat"]


def test_forced_backend_without_tables_says_so_once(netns) -> None:
    """--backend legacy on a host whose rules are in nft: the legacy backend has no tables (not
    "either backend", which would contradict the note that the nft one has some)."""
    req = load_request(SEED, "nft")
    req["backend"] = "legacy"  # read_live(…, backend="legacy")
    ans = in_namespace(req)
    notes = _notes(ans)
    how = [m for k, m in notes if k == "live"]
    assert any("IPv4: no tables in the legacy backend (--backend legacy)" in m for m in how), notes
    assert not any("either backend" in m for _, m in notes), notes
    assert any(m.startswith("IPv4: the nft backend also has tables (filter, nat; 18 rules)") for _, m in notes)


def test_detect_both_backends_with_rules_warns(netns) -> None:
    other = FIXTURES / "live" / "docker20_containers_nft.v4.save"
    req = load_request(SEED, "nft")
    req["load"].append({"backend": "legacy", "family": 4, "text": other.read_text()})
    req["save"] = [["nft", 4], ["legacy", 4]]
    req["code"] = LIVE_CODE + r'''
out["version"] = run(["iptables", "-V"])
req["backend"] = "legacy"
exec(LIVE_AGAIN)
req["backend"] = "nft"
exec(LIVE_NFT)
'''.replace("LIVE_AGAIN", repr(LIVE_CODE.replace('out["live"]', 'out["forced"]'))).replace(
        "LIVE_NFT", repr(LIVE_CODE.replace('out["live"]', 'out["forced_nft"]')))
    ans = in_namespace(req)
    default = "nft" if "nf_tables" in ans["version"] else "legacy"
    chosen_text = ans["saved"][f"{default}4"]
    warnings = [m for k, m in _notes(ans) if k == "warning"]
    assert len(warnings) == 1 and "both iptables backends hold rules" in warnings[0]
    assert f"reads only the {default} one" in warnings[0]
    other = "legacy" if default == "nft" else "nft"
    assert warnings[0].endswith(f"trace the other with: sudo iptables-{other}-save | iptexplain trace -")
    assert same_rules(ans["live"]["save"], chosen_text)
    # --backend legacy reads the other ruleset, and says the nft tables are there too.
    forced = ans["forced"]
    assert same_rules(forced["save"], ans["saved"]["legacy4"])
    assert not same_rules(forced["save"], ans["saved"]["nft4"])
    assert ["warning", "IPv4: the nft backend also has tables (filter, nat; 18 rules); the kernel applies "
            "them too, but only the legacy backend was read"] in forced["notes"]
    forced_nft = ans["forced_nft"]
    assert same_rules(forced_nft["save"], ans["saved"]["nft4"])
    legacy_note = [m for k, m in forced_nft["notes"] if k == "warning"]
    assert len(legacy_note) == 1 and legacy_note[0].startswith("IPv4: the legacy backend also has tables (")
    assert "; 60 rules); the kernel applies them too, but only the nft backend was read" in legacy_note[0]


READ_ONLY_COMMANDS = {
    "iptables": [["-V"]],
    "iptables-nft-save": [["-c"]], "ip6tables-nft-save": [["-c"]],
    "iptables-legacy-save": [["-c"]], "ip6tables-legacy-save": [["-c"]],
    "ip": [["-j", "-d", "addr", "show"], ["-j", "-4", "route", "show", "table", "all"],
           ["-j", "-6", "route", "show", "table", "all"], ["-j", "rule", "show"], ["-j", "-6", "rule", "show"]],
    "nft": [["-j", "list", "ruleset"]],
    "ldconfig": [["-p"]],  # ctypes.util.find_library, when python-iptables finds libxtables
}


def test_reading_runs_only_read_only_commands_and_changes_nothing(netns) -> None:
    req = load_request(SEED, "nft")
    req["load"].append({"backend": "legacy", "family": 4, "text": (FIXTURES / "live" / "iptables-tests__wireless.v4.save").read_text()})
    req["load"].append({"backend": "legacy", "family": 6, "text": (FIXTURES / "live" / "firewalld-iptables-backend_nft.v6.save").read_text()})
    req["code"] = r'''
import re
def state():
    keep = lambda t: "".join(l for l in t.splitlines(True) if not l.startswith("#"))
    counters = lambda t: re.sub(r"\[\d+:\d+\]", "", t)
    return {c: counters(keep(run([c]))) for c in ("iptables-nft-save", "ip6tables-nft-save",
            "iptables-legacy-save", "ip6tables-legacy-save")} | {"ip": run(["ip", "addr"]) + run(["ip", "route", "show", "table", "all"]),
            "nft": re.sub(r"packets \d+ bytes \d+", "", run(["nft", "list", "ruleset"]))}
before = state()
calls = []
_Popen = subprocess.Popen
class Recording(_Popen):
    def __init__(self, args, *a, **kw):
        calls.append([args if isinstance(args, str) else list(args), bool(kw.get("shell"))])
        super().__init__(args, *a, **kw)
subprocess.Popen = Recording
from iptexplain.inputs.live import read_live
for backend in (None, "legacy", "nft"):
    read_live(None, backend)
subprocess.Popen = _Popen
out["calls"] = calls
out["same"] = state() == before
'''
    ans = in_namespace(req)
    assert ans["same"], "reading changed the rules or the host"
    assert ans["calls"]
    seen = set()
    for argv, shell in ans["calls"]:
        assert not shell and isinstance(argv, list), argv
        name = os.path.basename(argv[0])
        assert argv[1:] in READ_ONLY_COMMANDS.get(name, []), argv
        seen.add(name)
    assert {"iptables-nft-save", "ip6tables-nft-save", "ip", "nft"} <= seen
    assert "modprobe" not in seen  # python-iptables' import-time module loading is suppressed


def test_legacy_drop_policy_without_rules_counts_as_rules(netns) -> None:
    req = load_request(SEED, "nft")
    req["load"].append({"backend": "legacy", "family": 4,
                        "text": "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"})
    ans = in_namespace(req)
    warnings = [m for k, m in _notes(ans) if k == "warning"]
    assert len(warnings) == 1
    assert warnings[0].startswith("IPv4: both iptables backends hold rules (nf_tables: 18 rules; legacy: "
                                  "no rules, but DROP policy on filter FORWARD); the kernel applies both")


def test_legacy_tables_without_rules_do_not_hide_nft_rules(netns) -> None:
    req = load_request(SEED, "nft")
    req["load"].append({"backend": "legacy", "family": 4, "text": "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"})
    ans = in_namespace(req)
    notes = _notes(ans)
    assert not [m for k, m in notes if k == "warning"]
    assert any("legacy tables exist (raw) but hold no rules" in m for k, m in notes)
    assert same_rules(ans["live"]["save"], ans["saved"]["nft4"])


def test_legacy_read_without_python_iptables_uses_the_save_command(netns) -> None:
    require_iptc()
    req = load_request(FIXTURES / "live" / "iptables-tests__wireless.v4.save", "legacy")
    req["code"] = r'''
from iptexplain.inputs.live import read_ruleset
from iptexplain.render.save import save_ruleset
rs, reads, det = read_ruleset(4, "legacy", use_iptc=False)
rs2, reads2, _ = read_ruleset(4, "legacy", use_iptc=True)
out["plain"] = save_ruleset(rs, counters=True)
out["iptc"] = save_ruleset(rs2, counters=True)
out["how"] = [reads[0].how, reads2[0].how]
'''
    ans = in_namespace(req)
    assert ans["how"] == ["iptables-legacy-save -c", "python-iptables"]
    assert same_rules(ans["plain"], ans["iptc"]) and same_rules(ans["iptc"], ans["saved"]["legacy4"])


def test_large_legacy_tables_are_read_with_the_save_command(netns) -> None:
    require_iptc()
    req = load_request(FIXTURES / "live" / "iptables-tests__wireless.v4.save", "legacy")
    req["code"] = r'''
from iptexplain.inputs import iptc_reader
from iptexplain.inputs.live import read_ruleset
from iptexplain.render.save import save_ruleset
iptc_reader.MAX_RULES = 57  # the ruleset has 58
rs, reads, det = read_ruleset(4, "legacy")
out["how"], out["save"] = reads[0].how, save_ruleset(rs)
iptc_reader.MAX_RULES = 58
rs, reads, det = read_ruleset(4, "legacy")
out["how2"], out["save2"] = reads[0].how, save_ruleset(rs)
'''
    ans = in_namespace(req)
    assert ans["how"] == "iptables-legacy-save -c: 58 rules, faster than python-iptables"
    assert ans["how2"] == "python-iptables"
    assert same_rules(ans["save"], ans["save2"]) and same_rules(ans["save"], ans["saved"]["legacy4"])


def test_native_nftables_tables_are_read(netns) -> None:
    """A native table beside iptables-nft's is read with nft -j list ruleset (see
    tests/test_live_nft.py for the trace and the snapshot), and no longer only reported."""
    if shutil.which("nft", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("nft is not installed under CI")
        pytest.skip("nft is not installed")
    req = load_request(SEED, "nft")
    req["setup"] = TOPOLOGY + [
        ["nft", "add", "table", "inet", "myfw"],
        ["nft", "add", "chain", "inet", "myfw", "input", "{ type filter hook input priority 0; policy accept; }"],
    ]
    ans = in_namespace(req)
    assert [m for k, m in _notes(ans) if k == "warning"] == []
    assert "read 1 nftables table with nft -j list ruleset: inet myfw" in [m for k, m in _notes(ans)]
    assert same_rules(ans["live"]["save"], ans["saved"]["nft4"])


def test_tables_iptables_cannot_print_are_read_with_nft(netns) -> None:
    """iptables-nft-save cannot print a table nft changed (it says so in a comment); nft lists it
    whole, so the table is read with nft -j list ruleset, nft's extra base chain included."""
    if shutil.which("nft", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("nft is not installed under CI")
        pytest.skip("nft is not installed")
    req = load_request(SEED, "nft")
    req["setup"] = TOPOLOGY + [["true"]]
    req["code"] = r'''
run(["nft", "add", "rule", "ip", "filter", "INPUT", "tcp", "dport", "22", "ct", "state", "new", "limit", "rate",
     "3/minute", "burst", "5", "packets", "accept"])
run(["nft", "add", "chain", "ip", "nat", "weird", "{ type nat hook prerouting priority 5; }"])
''' + LIVE_CODE + '''
out["nft_tables"] = {t.name: sorted(t.chains) for t in rs.nft_tables}
'''
    ans = in_namespace(req)
    assert [m for k, m in _notes(ans) if k == "warning"] == []
    notes = [m for k, m in _notes(ans)]
    assert ("IPv4: table filter has rules written with nft that iptables-nft-save cannot print: it is read "
            "with nft -j list ruleset") in notes
    assert ("IPv4: table nat has base chains made with nft that iptables-nft-save does not show: the table "
            "is read with nft -j list ruleset") in notes
    assert ans["nft_tables"]["ip filter"] == ["DOCKER", "DOCKER-ISOLATION-STAGE-1", "DOCKER-ISOLATION-STAGE-2",
                                              "DOCKER-USER", "FORWARD", "INPUT", "OUTPUT"]
    assert "weird" in ans["nft_tables"]["ip nat"] and "DOCKER" in ans["nft_tables"]["ip nat"]
    assert ans["live"]["save"].strip() == ""  # no table left to iptables-nft-save


def test_host_without_ip_json_or_without_ip(netns) -> None:
    """An iproute2 without JSON output (CentOS 7's) is read in text form, to the same model;
    without iproute2 the model is empty and says why."""
    req = load_request(SEED, "nft")
    req["code"] = r'''
from iptexplain.host import readers, running as hostio
out["json"] = readers.host_to_dict(hostio.read_host())
real_run_ip = hostio.run_ip
def old_ip(args):
    if "-j" in args:
        raise hostio.InputError('Option "-j" is unknown, try "ip -help".', "live host")
    return real_run_ip(args)
hostio.run_ip = old_ip
out["text"] = readers.host_to_dict(hostio.read_host())
hostio.find_tool = lambda name: None
out["none"] = readers.host_to_dict(hostio.read_host())
'''
    ans = in_namespace(req)
    assert host_facts(ans["text"]) == host_facts(ans["json"])
    assert any("no JSON output" in n for n in ans["text"]["notes"])
    assert ans["none"]["interfaces"] == [] and ans["none"]["routes"] == []
    assert any("`ip' (iproute2) is not installed" in n for n in ans["none"]["notes"])
    assert ans["none"]["sysctls"]["net.ipv4.ip_forward"] == "1"


def test_python_iptables_failure_falls_back_to_the_save_command(netns) -> None:
    """A rule python-iptables would misread (a match revision its module does not have) makes
    the reader use iptables-legacy-save, which prints every revision right."""
    require_iptc()
    req = load_request(SEED, "legacy")
    req["code"] = r'''
from iptexplain.inputs import iptc_reader
from iptexplain.inputs.live import read_ruleset
from iptexplain.render.save import save_ruleset
def mismatch(module, what):
    if module.name == "conntrack":
        raise iptc_reader.RevisionMismatch(f"{what} conntrack has revision 1, libxtables prints revision 3")
iptc_reader.check_revision = mismatch
rs, reads, det = read_ruleset(4, "legacy")
out["how"], out["save"] = reads[0].how, save_ruleset(rs)
'''
    ans = in_namespace(req)
    assert ans["how"] == ("iptables-legacy-save -c (python-iptables failed: RevisionMismatch: match conntrack "
                          "has revision 1, libxtables prints revision 3)")
    assert same_rules(ans["save"], ans["saved"]["legacy4"])


def test_revision_check_compares_entry_and_module() -> None:
    from types import SimpleNamespace

    from iptexplain.inputs.iptc_reader import RevisionMismatch, check_revision

    def module(entry_rev: int, module_rev: int):
        user = SimpleNamespace(revision=entry_rev)
        return SimpleNamespace(name="multiport", _ptr=[SimpleNamespace(u=SimpleNamespace(user=user))],
                               _module=SimpleNamespace(revision=module_rev))

    check_revision(module(1, 1), "match")
    with pytest.raises(RevisionMismatch, match="match multiport has revision 0, libxtables prints revision 1"):
        check_revision(module(0, 1), "match")


def test_empty_host_reads_as_no_rules(netns) -> None:
    ans = in_namespace({"setup": [["ip", "link", "set", "lo", "up"]], "code": LIVE_CODE})
    assert ans["live"]["save"] == ""
    assert ("live", "no iptables rules loaded on backend nft: every hook accepts") in _notes(ans)
    assert ans["legacy_after"] == {"4": [], "6": []}


# ---------------------------------------------------------------------------------------------
# Clear one-line errors


def test_permission_denied_is_one_clear_line(netns) -> None:
    # Root without capabilities (as a non-root user would be): the save command gets EPERM.
    req = load_request(SEED, "nft")
    req["code"] = r'''
p = subprocess.run(["setpriv", "--bounding-set=-all", "--inh-caps=-all", sys.executable, "-m",
                    "iptexplain", "snapshot"], capture_output=True, text=True)
out["rc"], out["stdout"], out["stderr"] = p.returncode, p.stdout, p.stderr
'''
    ans = in_namespace(req)
    assert ans["rc"] == 2
    assert ans["stdout"] == ""
    lines = ans["stderr"].strip().splitlines()
    assert len(lines) == 1, ans["stderr"]
    assert "permission denied" in lines[0]
    assert "sudo iptables-save | iptexplain trace -" in lines[0]
    assert "Traceback" not in ans["stderr"]


def test_missing_save_command_is_one_clear_line(netns) -> None:
    req = {"setup": [["ip", "link", "set", "lo", "up"]], "code": r'''
from iptexplain.core.errors import InputError
import iptexplain.inputs.live as L
L.SEARCH_PATH = ""
os.environ["PATH"] = "/nonexistent"
for backend in ("nft", "legacy", None):
    try:
        L.read_ruleset(4, backend)
        out[str(backend)] = "no error"
    except InputError as e:
        out[str(backend)] = str(e)
'''}
    ans = in_namespace(req)
    assert ans["nft"] == ("iptables-nft-save: `iptables-nft-save' is not installed (package iptables): "
                          "install it, or read a saved dump: iptexplain trace FILE")
    # No legacy table exists: the legacy backend has nothing to read and needs no command.
    assert ans["legacy"] == "no error"
    assert ans["None"] == ans["nft"]


def test_iptables_before_1_8_reads_legacy_with_plain_iptables_save(netns) -> None:
    """CentOS 7: iptables 1.4.21, no -legacy/-nft commands, `iptables-save' is the legacy one."""
    req = load_request(SEED, "legacy")
    req["code"] = r'''
import tempfile, shutil as sh
import iptexplain.inputs.live as L
from iptexplain.render.save import save_ruleset
old = tempfile.mkdtemp()
os.symlink(sh.which("iptables-legacy-save", path="/usr/sbin:/sbin"), os.path.join(old, "iptables-save"))
with open(os.path.join(old, "iptables"), "w") as f:
    f.write("#!/bin/sh\necho iptables v1.4.21\n")
os.chmod(os.path.join(old, "iptables"), 0o755)
L.SEARCH_PATH = old
os.environ["PATH"] = old
rs, reads, det = L.read_ruleset(4, None, use_iptc=False)
out["how"], out["source"], out["save"], out["notes"] = reads[0].how, reads[0].source, save_ruleset(rs), [[n.kind, n.message] for n in rs.notes]
sh.rmtree(old)
'''
    ans = in_namespace(req)
    assert ans["how"] == "iptables-save -c"
    assert same_rules(ans["save"], ans["saved"]["legacy4"])
    assert not [m for k, m in ans["notes"] if k == "warning"]


def test_unknown_backend_is_an_input_error() -> None:
    from iptexplain.inputs.live import detect

    with pytest.raises(InputError, match="unknown backend `nftables'"):
        detect((4,), "nftables")


# ---------------------------------------------------------------------------------------------
# Snapshots


SNAPSHOT_CODE = LIVE_CODE + r'''
p = subprocess.run([sys.executable, "-m", "iptexplain", "snapshot"], capture_output=True, text=True)
out["snapshot"], out["snapshot_rc"], out["snapshot_err"] = p.stdout, p.returncode, p.stderr
p = subprocess.run([sys.executable, "-m", "iptexplain", "snapshot", "-4", "-o", "/proc/self/fd/1"],
                   capture_output=True, text=True)
out["snapshot4"], out["snapshot4_err"] = p.stdout, p.stderr
'''


@pytest.mark.parametrize("backend", BACKENDS)
def test_snapshot_round_trip(netns, backend: str, tmp_path: Path) -> None:
    from iptexplain.inputs.snapshot import is_snapshot, load_snapshot

    req = load_request(SEED, backend)
    req["code"] = SNAPSHOT_CODE
    ans = in_namespace(req)
    assert ans["snapshot_rc"] == 0, ans["snapshot_err"]
    text = ans["snapshot"]
    assert is_snapshot(text)
    doc = json.loads(text)
    assert doc["schema"] == "iptexplain-snapshot" and doc["version"] == 1
    assert doc["backend"] == {"4": backend, "6": doc["backend"]["6"]}
    rs, host = load_snapshot(text, "host.snap")
    live = ans["live"]
    assert canonical(rs, counters=False) == canonical(parse_text(live["save"], "live"), counters=False)
    assert host_facts(host_to_dict(host)) == host_facts(live["host"])
    assert host.sysctls == host_from_dict(live["host"]).sysctls
    assert host.sysctls["net.ipv4.ip_forward"] == "1"
    # Rules point at the line of the dump kept in the snapshot.
    tool = "iptables-legacy-save" if backend == "legacy" else "iptables-nft-save"
    dnat = [r for r in rs.rules() if r.target_name == "DNAT"][0]
    assert dnat.source == f"host.snap[{tool}]"
    assert doc["rulesets"]["4"]["text"].splitlines()[dnat.line - 1].endswith(
        "-j DNAT --to-destination 172.17.0.6:9525")
    # `show` and the input reader read the file like a dump (parse_text reads iptables text only).
    path = tmp_path / "host.snap"
    path.write_text(text)
    assert canonical(ruleset_from_text(text, str(path))) == canonical(rs)
    assert ruleset_from_text(text, str(path), family=6).families() in ([], [6])
    from click.testing import CliRunner

    from iptexplain.cli import main

    res = CliRunner().invoke(main, ["show", str(path)])
    assert res.exit_code == 0, res.output
    assert "DOCKER" in res.output
    # -o FILE writes the same document (here for IPv4 only) and says so on stderr.
    doc4 = json.loads(ans["snapshot4"])
    assert sorted(doc4["rulesets"]) == ["4"]
    assert "written to /proc/self/fd/1" in ans["snapshot4_err"]


def test_snapshot_file_is_private_and_errors_are_one_line(netns, tmp_path: Path) -> None:
    out_file = tmp_path / "host.snap"
    req = load_request(SEED, "nft")
    req["code"] = r'''
for path in (req["path"], req["path"] + ".missing/dir/x.snap"):
    p = subprocess.run([sys.executable, "-m", "iptexplain", "snapshot", "-o", path], capture_output=True, text=True)
    out.setdefault("runs", []).append([p.returncode, p.stdout, p.stderr])
'''
    req["path"] = str(out_file)
    ans = in_namespace(req)
    (rc, stdout, stderr), (rc2, stdout2, stderr2) = ans["runs"]
    assert rc == 0 and stdout == ""
    assert stderr.startswith("iptexplain: snapshot of ") and stderr.strip().endswith(f"written to {out_file}")
    assert "IPv4 nft" in stderr and "18 rules" in stderr
    assert out_file.stat().st_mode & 0o777 == 0o600
    from iptexplain.inputs.snapshot import load_snapshot

    rs, host = load_snapshot(out_file.read_text(), str(out_file))
    assert rs.rule_count() == 18 and "docker0" in host.interfaces
    assert rc2 == 2 and stdout2 == ""
    assert stderr2 == f"iptexplain: {out_file}.missing/dir/x.snap: No such file or directory\n"


def test_snapshot_keeps_ipsets_the_rules_use(netns) -> None:
    from iptexplain.inputs.ipset import parse_ipset_save
    from iptexplain.inputs.snapshot import load_snapshot, snapshot_ipsets

    rules = ("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
             "-A INPUT -m set --match-set blocked src -j DROP\nCOMMIT\n")
    req = {"setup": [["ip", "link", "set", "lo", "up"], ["ipset", "create", "blocked", "hash:ip"],
                     ["ipset", "add", "blocked", "203.0.113.66"]],
           "load": [{"backend": "nft", "family": 4, "text": rules}],
           "code": SNAPSHOT_CODE}
    ans = in_namespace(req)
    assert ans["snapshot_rc"] == 0, ans["snapshot_err"]
    kept = snapshot_ipsets(ans["snapshot"], "h.snap")
    assert kept is not None and kept[1] == "h.snap[ipset save]"
    sets = parse_ipset_save(*kept)
    assert list(sets) == ["blocked"] and len(sets["blocked"].members) == 1
    rs, _ = load_snapshot(ans["snapshot"], "h.snap")
    assert [r.spec() for r in rs.rules()] == ["-A INPUT -m set --match-set blocked src -j DROP"]
    # A ruleset without ipsets keeps none.
    plain = in_namespace({"setup": [["ipset", "create", "unused", "hash:ip"]],
                          "load": [{"backend": "nft", "family": 4, "text": SEED.read_text()}],
                          "code": SNAPSHOT_CODE})
    assert snapshot_ipsets(plain["snapshot"]) is None


def test_bad_snapshots_are_one_line_errors(tmp_path: Path) -> None:
    from iptexplain.inputs.snapshot import load_snapshot

    with pytest.raises(InputError) as e:
        load_snapshot('{"schema": "iptexplain-snapshot", "version": 99, "rulesets": {}}', "s.snap")
    assert str(e.value).startswith("s.snap: snapshot version 99 is not supported")
    with pytest.raises(InputError) as e:
        load_snapshot('{"schema": "iptexplain-snapshot",\n "version": 1,\n "rulesets": {', "s.snap")
    assert str(e.value).startswith("s.snap:3: not a valid snapshot")
    bad_rules = json.dumps({"schema": "iptexplain-snapshot", "version": 1,
                            "rulesets": {"4": {"source": "iptables-nft-save",
                                               "text": "*filter\n-A INPUT -j NOPE_CHAIN\nCOMMIT\n"}},
                            "host": {}})
    with pytest.raises(InputError) as e:
        load_snapshot(bad_rules, "s.snap")
    assert str(e.value).startswith("s.snap[iptables-nft-save]:2: ")
    # Through the CLI: exit status 2 and one line.
    from click.testing import CliRunner

    from iptexplain.cli import main

    p = tmp_path / "bad.snap"
    p.write_text('{"schema": "iptexplain-snapshot", "version": 1, "rulesets": 7}')
    res = CliRunner().invoke(main, ["show", str(p)])
    assert res.exit_code == 2
    assert res.output.strip() == f"iptexplain: {p}: snapshot has no `rulesets'"


# ---------------------------------------------------------------------------------------------
# Live trace = trace of the saved dump + saved ip -j output


def _strip(value):
    """Trace JSON without provenance (file names, notes about where facts came from)."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in ("source", "notes")}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


FLOWS = [
    dict(family=4, proto="tcp", src="203.0.113.9", dst="198.51.100.1", dport=9525, iniface="eth0"),
    dict(family=4, proto="tcp", src="203.0.113.9", dst="198.51.100.1", dport=22, iniface="eth0"),
    dict(family=4, proto="tcp", src="172.17.0.6", dst="93.184.216.34", sport=40000, dport=443, iniface="docker0"),
    dict(family=4, proto="tcp", dst="198.51.100.1", dport=9525, from_host=True),
]


@pytest.mark.parametrize("backend", BACKENDS)
def test_live_trace_equals_trace_of_saved_dump(netns, backend: str) -> None:
    """The saved side is what ops would attach: the save command's dump, `ip -j addr`,
    `ip -j route show table all` and `sysctl -a` output, parsed offline."""
    tracer = pytest.importorskip("iptexplain.netfilter.tracer")
    from iptexplain.netfilter.trace import Flow
    from iptexplain.render.json_out import trace_json

    req = load_request(SEED, backend)
    req["code"] = LIVE_CODE + r'''
import pickle, base64
from iptexplain.netfilter.trace import Flow
from iptexplain.netfilter.tracer import trace_flow
from iptexplain.render.json_out import trace_json
out["traces"] = [trace_json(trace_flow(rs, Flow(**f), host)) for f in req["flows"]]
import shutil, re
pattern = r"^net\.(ipv4\.ip_forward|ipv4\.conf\.|ipv6\.conf\.all\.forwarding|bridge\.)"
if shutil.which("sysctl"):
    out["sysctl"] = run(["sysctl", "-a", "--pattern", pattern])
else:  # what `sysctl -a` prints, read the way it reads it
    lines = []
    for d, _, files in os.walk("/proc/sys/net"):
        for f in files:
            key = os.path.join(d, f)[len("/proc/sys/"):].replace("/", ".")
            if re.match(pattern, key):
                try:
                    lines.append(f"{key} = {open(os.path.join(d, f)).read().strip()}")
                except OSError:
                    pass
    out["sysctl"] = "\n".join(lines) + "\n"
'''
    req["flows"] = FLOWS
    ans = in_namespace(req)
    assert "error" not in ans, ans.get("error")
    # The saved dump is named after the command that printed it, as the live reader names it.
    saved_rs = parse_save(ans["saved"][f"{backend}4"], f"iptables-{backend}-save", family=4)
    ip = ans["ip"]
    saved_host = host_from_ip_json(ip["addr"], ip["route4"], ip["route6"])
    saved_host.sysctls.update(parse_sysctl_text(ans["sysctl"], "sysctl.txt"))
    assert saved_host.sysctls["net.ipv4.ip_forward"] == "1"
    results = set()
    for flow, live_trace in zip(FLOWS, ans["traces"]):
        offline = trace_json(tracer.trace_flow(saved_rs, Flow(**flow), saved_host))
        offline = json.loads(json.dumps(offline))
        assert _strip(live_trace) == _strip(offline), flow
        results.add(live_trace["result"])
    assert len(results) > 1  # the flows are told apart (accepted/DNATed vs dropped …)


# ---------------------------------------------------------------------------------------------
# Docker API names (a fake daemon on a unix socket in tmp_path)


CONTAINERS = [
    {
        "Id": "3f2a9c1b7d5e4f60a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718",
        "Names": ["/gallant_lumiere"],
        "Image": "aylei/aliyun-exporter:0.3.1",
        "Ports": [{"IP": "0.0.0.0", "PrivatePort": 9525, "PublicPort": 9525, "Type": "tcp"},
                  {"IP": "::", "PrivatePort": 9525, "PublicPort": 9525, "Type": "tcp"},
                  {"PrivatePort": 8080, "Type": "tcp"}],
        "NetworkSettings": {"Networks": {"bridge": {"IPAddress": "172.17.0.6", "GlobalIPv6Address": ""}}},
    },
    {
        "Id": "aa11", "Names": ["/db"], "Image": "postgres:16", "Ports": [],
        "NetworkSettings": {"Networks": {"backend": {"IPAddress": "172.18.0.2",
                                                     "GlobalIPv6Address": "fd00:18::2"}}},
    },
]


class _FakeDocker(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def _serve(path: Path, status: int, body: bytes):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.server.paths.append(self.path)  # type: ignore[attr-defined]
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

        def address_string(self) -> str:
            return "unix"

    srv = _FakeDocker(str(path), Handler)
    srv.paths = []  # type: ignore[attr-defined]
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    return srv


def test_live_trace_names_the_container(netns) -> None:
    """End to end on a live host with a Docker daemon answering on /var/run/docker.sock (a fake one,
    on a tmpfs mounted over /run inside the test's private mount namespace)."""
    req = load_request(SEED, "nft")
    req["containers"] = CONTAINERS
    req["code"] = r'''
import http.server, socketserver, threading
run(["mount", "-t", "tmpfs", "tmpfs", "/run"])
body = json.dumps(req["containers"]).encode()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
    def address_string(self):
        return "unix"
class S(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
srv = S("/var/run/docker.sock", H)
threading.Thread(target=srv.serve_forever, daemon=True).start()
''' + LIVE_CODE + r'''
p = subprocess.run([sys.executable, "-m", "iptexplain", "trace", "-p", "tcp", "-s", "203.0.113.9",
                    "-d", "198.51.100.1", "--dport", "9525", "-i", "eth0"],
                   capture_output=True, text=True, env=dict(os.environ, COLUMNS="200"))
out["trace"], out["trace_rc"], out["trace_err"] = p.stdout, p.returncode, p.stderr
srv.shutdown()
'''
    ans = in_namespace(req)
    containers = ans["live"]["host"]["containers"]
    assert containers["172.17.0.6"]["name"] == "gallant_lumiere"
    assert containers["172.17.0.6"]["image"] == "aylei/aliyun-exporter:0.3.1"
    assert ans["trace_rc"] == 0, ans["trace_err"]
    assert "gallant_lumiere" in ans["trace"]


def test_docker_api_names_containers(tmp_path: Path) -> None:
    from iptexplain.inputs.docker_api import add_containers, describe
    from iptexplain.host.model import HostModel

    sock = tmp_path / "docker.sock"
    srv = _serve(sock, 200, json.dumps(CONTAINERS).encode())
    try:
        host = HostModel()
        assert add_containers(host, str(sock)) == 3
    finally:
        srv.shutdown()
        srv.server_close()
    assert srv.paths == ["/containers/json"]
    c = host.containers["172.17.0.6"]
    assert (c["name"], c["image"], c["network"]) == ("gallant_lumiere", "aylei/aliyun-exporter:0.3.1", "bridge")
    assert describe(c) == "gallant_lumiere (aylei/aliyun-exporter:0.3.1, 9525/tcp published)"
    assert c["ports"] == ["0.0.0.0:9525->9525/tcp", "[::]:9525->9525/tcp", "8080/tcp"]
    assert host.containers["fd00:18::2"]["name"] == "db"
    assert describe(host.containers["172.18.0.2"]) == "db (postgres:16)"


def test_docker_host_unix_socket_is_followed(tmp_path: Path, monkeypatch) -> None:
    from iptexplain.inputs.docker_api import DOCKER_SOCKET, add_containers, socket_path
    from iptexplain.host.model import HostModel

    sock = tmp_path / "rootless.sock"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{sock}")
    assert socket_path() == str(sock)
    srv = _serve(sock, 200, json.dumps(CONTAINERS[:1]).encode())
    try:
        host = HostModel()
        assert add_containers(host) == 1
    finally:
        srv.shutdown()
        srv.server_close()
    assert host.containers["172.17.0.6"]["name"] == "gallant_lumiere"
    monkeypatch.setenv("DOCKER_HOST", "tcp://192.0.2.1:2375")
    assert socket_path() == DOCKER_SOCKET


@pytest.mark.parametrize("status,body", [(500, b'{"message": "boom"}'), (200, b"not json"), (200, b'{"a": 1}')])
def test_docker_api_failures_are_silent(tmp_path: Path, status: int, body: bytes) -> None:
    from iptexplain.inputs.docker_api import add_containers
    from iptexplain.host.model import HostModel

    sock = tmp_path / "docker.sock"
    srv = _serve(sock, status, body)
    try:
        host = HostModel()
        assert add_containers(host, str(sock)) == 0
    finally:
        srv.shutdown()
        srv.server_close()
    assert host.containers == {} and host.notes == []


def test_docker_api_absent_or_unresponsive_socket(tmp_path: Path) -> None:
    import socket as socketlib

    from iptexplain.inputs.docker_api import add_containers
    from iptexplain.host.model import HostModel

    host = HostModel()
    assert add_containers(host, str(tmp_path / "missing.sock")) == 0
    plain = tmp_path / "plain-file"
    plain.write_text("")
    assert add_containers(host, str(plain)) == 0
    # A daemon that accepts but never answers: the timeout ends the wait, no names.
    mute = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM)
    mute.bind(str(tmp_path / "mute.sock"))
    mute.listen(1)
    try:
        assert add_containers(host, str(tmp_path / "mute.sock"), timeout=0.2) == 0
    finally:
        mute.close()
    assert host.containers == {}
