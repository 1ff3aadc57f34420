"""iptexplain.nft.deferred: an nft ruleset read for a trace (chains and big element lists kept as
text until reached) must trace exactly as the eager read does, and fail where it fails.

* the whole ``trace --json`` output, over many sampled flows, on every nft fixture (text and
  JSON: firewalld, Docker 29, kube-proxy's TestOverallNFTablesRules, LXD beside Docker, the
  inet servers) and on a generated kube-proxy node, equals the eager read's -- also with every
  element list deferred and every map walked in lazy pieces (thresholds at their lowest);
* a bad rule is reported with its ``FILE:LINE`` when the trace reaches it, and a ruleset read
  whole (``parse_all``, ``show``) reports what the eager reader reports;
* text not in nft's own layout is read by the eager reader.
"""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from iptexplain import cli
from iptexplain.core.errors import InputError
from iptexplain.nft import deferred, pieces
from iptexplain.nft.deferred import DeferredNftChain, GiveUp, read_nft_deferred
from iptexplain.nft.json_reader import read_nft_json
from iptexplain.nft.pieces import LazyPiece
from iptexplain.nft.reader import read_nft

ROOT = Path(__file__).resolve().parent.parent
NFT = ROOT / "fixtures" / "nft"
sys.path.insert(0, str(ROOT / "bench"))
import gen_kube_nft  # noqa: E402

FIXTURES = sorted(p for p in NFT.iterdir() if p.suffix in (".nft", ".json"))
LAZY_NOTE = "large input: rules were checked only"


@pytest.fixture(scope="module")
def node(tmp_path_factory) -> Path:
    """A generated kube-proxy nftables-mode node of 300 service ports."""
    path = tmp_path_factory.mktemp("nft") / "kube-300.nft"
    path.write_text(gen_kube_nft.render(gen_kube_nft.make_services(300, seed=5)))
    return path


def _flows(text: str, n: int, seed: int) -> list[list[str]]:
    """``trace`` options of ``n`` flows drawn from the addresses and ports the ruleset names."""
    rng = random.Random(seed)
    v6 = '"family": "ip6"' in text or "table ip6 " in text
    addrs = sorted(set(re.findall(r"\b(?:\d{1,3}\.){3}\d{1,3}\b", text))) or ["192.0.2.1"]
    ports = sorted({int(p) for p in re.findall(r"(?:dport|\.|:) (\d{1,5})\b", text) if 0 < int(p) < 65536}) or [80]
    out = []
    for _ in range(n):
        proto = rng.choice(["tcp", "tcp", "udp", "icmp"])
        args = ["-p", proto, "-s", rng.choice(addrs + ["203.0.113.9", "10.244.7.7"]), "-d", rng.choice(addrs)]
        if proto != "icmp":
            args += ["--dport", str(rng.choice(ports + [22, 443]))]
        if rng.random() < 0.4:
            args += ["-i", rng.choice(["eth0", "docker0", "lxdbr0", "cni0"])]
        out.append(args)
    if v6:
        v6addrs = sorted(set(re.findall(r"\b[0-9a-f]{1,4}(?::[0-9a-f]{0,4}){2,7}\b", text))) or ["2001:db8::1"]
        for _ in range(n // 2):
            out.append(["-6", "-p", "tcp", "-s", rng.choice(v6addrs), "-d", rng.choice(v6addrs),
                        "--dport", str(rng.choice(ports))])
    return out


def _trace(path: Path, args: list[str], eager: bool, monkeypatch) -> tuple[int, object]:
    with monkeypatch.context() as m:
        if eager:
            def give_up(*_a, **_k):
                raise GiveUp
            m.setattr(deferred, "read_nft_deferred", give_up)
            m.setattr(sys.modules["iptexplain.nft.json_reader"], "read_nft_deferred", give_up)
        r = CliRunner().invoke(cli.main, ["trace", str(path), *args, "--json"], catch_exceptions=False)
    if r.exit_code not in (0, 1, 3):
        return r.exit_code, r.output
    doc = json.loads(r.output)
    doc["notes"] = [n for n in doc.get("notes", []) if LAZY_NOTE not in n.get("message", "")]
    return r.exit_code, doc


def _same_traces(path: Path, flows: list[list[str]], monkeypatch) -> None:
    for args in flows:
        assert _trace(path, args, False, monkeypatch) == _trace(path, args, True, monkeypatch), args


@pytest.mark.parametrize("path", FIXTURES, ids=[p.name for p in FIXTURES])
def test_fixture_traces_equal_the_eager_reads(path: Path, monkeypatch) -> None:
    text = path.read_text()
    rs = read_nft_json(text, path.name, lazy=True) if path.suffix == ".json" else read_nft_deferred(text, path.name)
    assert rs.deferred is not None  # every fixture is nft's own listing: the scan takes it
    _same_traces(path, _flows(text, 12, seed=len(text)), monkeypatch)


@pytest.mark.parametrize("path", [p for p in FIXTURES if "kube-proxy" in p.name or "sets" in p.name],
                         ids=lambda p: p.name)
def test_every_list_deferred_and_every_map_in_pieces(path: Path, monkeypatch) -> None:
    """The thresholds at their lowest: every element list is read late (by the splitter or the
    grammar) and every named map is walked in lazy pieces; the traces do not change."""
    monkeypatch.setattr(deferred, "DEFER_ELEMENTS", 0)
    monkeypatch.setattr(pieces, "LAZY_MIN", 1)
    text = path.read_text()
    rs = read_nft_json(text, path.name, lazy=True) if path.suffix == ".json" else read_nft_deferred(text, path.name)
    if "kube-proxy" in path.name:
        assert any(type(s).__name__ == "DeferredNftSet" for t in rs.nft_tables for s in t.sets.values())
    _same_traces(path, _flows(text, 10, seed=3), monkeypatch)


def test_generated_node_traces_equal_the_eager_read(node: Path, monkeypatch) -> None:
    text = node.read_text()
    services = gen_kube_nft.make_services(300, seed=5)
    rng = random.Random(9)
    flows = [gen_kube_nft.trace_args(services)]
    for s in rng.sample(services, 10):
        flows.append(["-p", s.proto, "-s", rng.choice(["10.244.7.7", "203.0.113.9"]), "-d",
                      rng.choice([s.cluster_ip, s.lb_ip or s.cluster_ip]), "--dport", str(s.port)])
        if s.node_port:
            flows.append(["-p", s.proto, "-s", "203.0.113.9", "-d", gen_kube_nft.NODE_IP, "--dport", str(s.node_port)])
    flows += _flows(text, 6, seed=1)
    _same_traces(node, flows, monkeypatch)


def test_a_trace_reads_only_the_chains_it_reaches(node: Path) -> None:
    text = node.read_text()
    rs = read_nft_deferred(text, node.name)
    (table,) = rs.nft_tables
    services = gen_kube_nft.make_services(300, seed=5)
    from iptexplain.netfilter.trace import Flow
    from iptexplain.netfilter.tracer import trace_flow

    s = next(x for x in services[100:] if len(x.endpoints) >= 2 and x.proto == "tcp")
    trace_flow(rs, Flow(4, "tcp", src="192.0.2.7", dst=s.cluster_ip, dport=s.port, iniface="eth0"))
    read = [c.name for c in table.chains.values() if isinstance(c, DeferredNftChain) and c.read]
    assert 5 <= len(read) < 40, read
    assert len(table.chains) > 600
    # the services chain's map was walked in pieces, of which the index made only the one taken
    services_rules = table.chains["services"].rules
    lazy = [r for r in services_rules if isinstance(r, LazyPiece)]
    assert len(lazy) > 250 and sum(1 for r in lazy if r.parsed) <= 2
    assert rs.rule_count() == read_nft(text, node.name).rule_count()


def _error(fn) -> InputError:
    with pytest.raises(InputError) as e:
        fn()
    return e.value


def test_a_bad_rule_is_reported_at_its_line_when_reached_and_by_parse_all(node: Path) -> None:
    text = node.read_text()
    services = gen_kube_nft.make_services(300, seed=5)
    s = next(x for x in services[100:] if len(x.endpoints) >= 2 and x.proto == "tcp")
    ep = s.endpoints[0]
    bad = text.replace(f"ip saddr {ep.ip} jump", "ip saddr 10.244.300.1 jump", 1)
    assert bad != text
    eager = _error(lambda: read_nft(bad, "n.nft"))
    assert eager.line == bad[:bad.index("10.244.300.1")].count("\n") + 1
    rs = read_nft_deferred(bad, "n.nft")  # not read yet: no error
    got = _error(rs.parse_all)
    assert (got.message, got.line) == (eager.message, eager.line)
    runner = CliRunner()
    args = ["-p", "tcp", "-s", "192.0.2.7", "-d", s.cluster_ip, "--dport", str(s.port)]
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".nft") as f:
        f.write(bad)
        f.flush()
        r = runner.invoke(cli.main, ["trace", f.name, *args, "--json"])
        assert r.exit_code == 2 and f"{f.name}:{eager.line}: {eager.message}" in r.output
        # a flow that never reaches the bad chain traces, and says what was not checked
        other = next(x for x in services if x is not s and x.endpoints and x.proto == "tcp")
        r = runner.invoke(cli.main, ["trace", f.name, "-p", "tcp", "-s", "192.0.2.7", "-d", other.cluster_ip,
                                     "--dport", str(other.port), "--json"])
        assert r.exit_code in (0, 1, 3), r.output
        assert LAZY_NOTE in r.output
        r = runner.invoke(cli.main, ["show", f.name])
        assert r.exit_code == 2 and f"{f.name}:{eager.line}: {eager.message}" in r.output


def test_a_bad_map_element_is_reported_as_the_eager_read_reports_it(node: Path, monkeypatch) -> None:
    text = node.read_text()
    services = gen_kube_nft.make_services(300, seed=5)
    s = next(x for x in services[50:] if x.endpoints and x.proto == "tcp")
    key = f"{s.cluster_ip} . tcp . {s.port} :"
    bad = text.replace(key, f"{s.cluster_ip} . tcp . 70000 :", 1)
    assert bad != text
    eager = _error(lambda: read_nft(bad, "n.nft"))
    rs = read_nft_deferred(bad, "n.nft")
    got = _error(rs.parse_all)
    assert (got.message, got.line) == (eager.message, eager.line)
    # and a jump to a chain the table lacks, from a map element
    bad2 = text.replace(f"{key} goto {gen_kube_nft.nft_services([s])[0].cluster_chain}", f"{key} goto nowhere", 1)
    assert bad2 != text
    eager2 = _error(lambda: read_nft(bad2, "n.nft"))
    got2 = _error(read_nft_deferred(bad2, "n.nft").parse_all)
    assert (got2.message, got2.line) == (eager2.message, eager2.line)
    assert "nowhere" in got2.message


@pytest.mark.parametrize("change", [
    lambda t: t.replace("\n", "\r\n"),
    lambda t: t.replace("\tchain services {\n", "\tchain services {\n\n", 1),
    lambda t: t.replace("\t\tjump services\n", "\t\tjump services; counter\n", 1),
    lambda t: t.replace("\n\t}\n", "\n\t  }\n", 1),
    lambda t: t.replace("\tchain services {", "\tchain services { # x", 1),
])
def test_text_not_in_nfts_layout_is_read_eagerly(node: Path, change) -> None:
    text = change(node.read_text())
    with pytest.raises(GiveUp):
        read_nft_deferred(text, "n.nft")
    try:
        eager = read_nft(text, "n.nft")
    except InputError as e:
        assert _error(lambda: deferred.read_nft_lazy(text, "n.nft", lazy=True)).args == e.args
    else:
        assert deferred.read_nft_lazy(text, "n.nft", lazy=True).rule_count() == eager.rule_count()


def test_json_errors_name_the_rule_as_the_eager_json_read_does() -> None:
    text = (NFT / "kube-proxy-nftables.json").read_text()
    bad = text.replace('"jump": {"target": "mark-for-masquerade"}', '"jump": {"target": "nowhere"}', 1)
    assert bad != text
    eager = _error(lambda: read_nft_json(bad, "k.json"))
    got = _error(read_nft_json(bad, "k.json", lazy=True).parse_all)
    assert got.args == eager.args and got.line is None and "(in `" in got.message
