"""``iptables -S`` text read by the layout scan (iptexplain.parse.deferred_s): chains kept as
text, rules read when looked at -- the same reader design as iptables-save text.

What it must keep: the eager reader's ruleset (tables, chains, policies, lines, notes), traces
equal to the eager ones (whole JSON documents) on kube-proxy rulesets and on every real -S file
and every save dump turned into -S text, the eager reader's errors with the same words and lines
(when the rule holding one is read), and the general reader for anything the scan does not
expect."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

from corpus_index import CORPUS, corpus_available, save_files
from iptexplain.core.errors import InputError
from iptexplain.graph import BUILTIN_CHAINS
from iptexplain.host.model import HostModel
from iptexplain.netfilter.trace import Flow
from iptexplain.netfilter.tracer import trace_flow
from iptexplain.parse import parse_text
from iptexplain.parse import deferred_s
from iptexplain.parse.deferred import DeferredChain, GiveUp
from iptexplain.parse.deferred_s import read_deferred_s
from iptexplain.parse.partial import name_gaps
from iptexplain.render.json_out import trace_json

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import gen_kube  # noqa: E402

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def save_to_s(save: str, prompts: bool = True, tables: tuple[str, ...] | None = None) -> str:
    """What ``iptables [-t TABLE] -S`` prints for each table of an iptables-save text, one
    command after another (a prompt line naming each, or none): the built-in chains' policies,
    the user chains, then the rules chain by chain, word for word as saved
    (tests/test_bench_gen.py checks this against the real iptables on a kube-proxy ruleset)."""
    out: list[str] = []
    table = None
    policies: list[str] = []
    chains: list[str] = []
    rules: list[str] = []
    for line in save.splitlines():
        if line.startswith("*"):
            table, policies, chains, rules = line[1:], [], [], []
        elif line.startswith(":") and table:
            name, policy = line[1:].split()[:2]
            (policies if policy != "-" else chains).append(f"-P {name} {policy}" if policy != "-" else f"-N {name}")
        elif line.startswith("-A ") and table:
            rules.append(line)
        elif line == "COMMIT" and table:
            if tables is None or table in tables:
                if prompts:
                    out.append(f"# iptables -t {table} -S" if table != "filter" else "# iptables -S")
                # -S prints every built-in chain's policy, in the kernel's order.
                order = {c: i for i, c in enumerate(BUILTIN_CHAINS[table])}
                out += sorted(policies, key=lambda p: order.get(p.split()[1], 99))
                out += chains + rules
            table = None
    return "\n".join(out) + "\n"


def _graph(rs) -> tuple:  # noqa: ANN001
    return tuple(
        (key, t.line, c.name, c.table, c.builtin, c.policy, c.policy_known, c.listed, c.counters, c.line, c.gaps,
         tuple((r.line, r.number, r.spec(), r.counters, r.jump, r.goto) for r in c.rules),
         tuple(r.line for r in c.references))
        for key, t in rs.tables.items() for c in t.chains.values()
    ), rs.format, rs.whole, sorted(rs.hidden)


def _notes(rs) -> list:  # noqa: ANN001
    # A module's own note (anonymized MACs) is given when a rule holding it is read: the
    # deferred read's contract, as for iptables-save text (tests/test_deferred.py).
    return [(n.kind, n.message, n.line) for n in rs.notes if n.kind != "anonymized"]


def _both(text: str, source: str = "s", table: str | None = None):  # noqa: ANN202
    """(deferred read or None when the scan gives up, eager read or the InputError it raised)."""
    try:
        d = read_deferred_s(text, source, table=table)
        name_gaps(d)
    except GiveUp:
        d = None
    try:
        e = parse_text(text, source, table=table)
    except InputError as err:
        e = err
    return d, e


def _check_same(text: str, source: str, table: str | None = None, flows: list[Flow] = ()) -> bool:  # noqa: B006
    """Deferred read equal to the eager one: notes at load, traces (whole JSON), then -- all
    read -- the graph; False when the scan gave up."""
    d, e = _both(text, source, table)
    if d is None:
        return False
    if isinstance(e, InputError):
        with pytest.raises(InputError) as late:
            d.parse_all()
        assert (late.value.message, late.value.line) == (e.message, e.line)
        return True
    assert _notes(d) == _notes(e)
    assert d.rule_count() == e.rule_count()
    for flow in flows:
        try:
            want = trace_json(trace_flow(e, flow, HostModel(source="test")), e)
        except InputError:
            continue
        got = trace_json(trace_flow(d, flow, HostModel(source="test")), d)
        want["notes"] = [n for n in want["notes"] if n["kind"] != "anonymized"]
        got["notes"] = [n for n in got["notes"] if n["kind"] != "anonymized"]
        assert got == want, flow
    d.parse_all()
    assert _graph(d) == _graph(e)
    return True


def _kube_flows(services, n: int = 6, seed: int = 0) -> list[Flow]:  # noqa: ANN001
    rnd = random.Random(seed)
    picked = rnd.sample(services, min(n, len(services)))
    out = [Flow(4, s.proto, src="10.244.77.7", dst=s.cluster_ip, dport=s.port, iniface="cni0") for s in picked]
    out += [Flow(4, s.proto, src="203.0.113.9", dst="192.0.2.10", dport=s.node_port, iniface="eth0")
            for s in picked if s.node_port]
    out.append(Flow(4, "tcp", src="10.244.1.2", dst="10.96.0.1", dport=443, from_host=True))
    return out


@pytest.mark.parametrize("n,seed", [(40, 1), (150, 2)])
@pytest.mark.parametrize("prompts", [True, False])
def test_kube_proxy_s_text_traces_as_the_eager_reader(n: int, seed: int, prompts: bool) -> None:
    services = gen_kube.make_services(n, seed)
    save = gen_kube.render(services)
    flows = _kube_flows(services, seed=seed)
    # nat alone (bench's layout), with and without --table, and every table one after another
    nat = save_to_s(save, prompts=False, tables=("nat",))
    assert _check_same(nat, "nat.S", table="nat", flows=flows)
    assert _check_same(nat, "nat.S", flows=flows)  # nat inferred from its chains and targets
    assert _check_same(save_to_s(save, prompts=prompts), "all.S", flows=flows)


def test_kube_proxy_s_text_stays_text_until_looked_at() -> None:
    services = gen_kube.make_services(300, seed=3)
    text = save_to_s(gen_kube.render(services), prompts=False, tables=("nat",))
    rs = read_deferred_s(text, "nat.S", table="nat")
    nat = rs.table("nat")
    assert rs.format == "S" and not rs.whole and rs.deferred is not None
    assert all(isinstance(c, DeferredChain) and not c.read for c in nat.chains.values())
    assert rs.rule_count() == text.count("\n-A ")
    svc = nat.chains["KUBE-SERVICES"]
    assert svc.size == text.count("\n-A KUBE-SERVICES ") and not svc.read
    flow = _kube_flows(services, 1)[0]
    trace_flow(rs, flow, HostModel(source="test"))
    read = [c.name for c in nat.chains.values() if c.read]
    assert "KUBE-SERVICES" in read and len(read) < 12, read


def _s_files() -> list[Path]:
    out = sorted(FIXTURES.rglob("*.S"))
    if corpus_available():
        out += sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.name.endswith(".S"))
    return out


def _flows_of(text: str) -> list[Flow]:
    import re

    dsts = re.findall(r" -d (\d+\.\d+\.\d+\.\d+)/32", text)[:2] or ["192.0.2.10"]
    out = [Flow(4, "tcp", src="198.51.100.7", dst=d, dport=443, iniface="eth0") for d in dsts]
    out += [Flow(4, "tcp", src="10.0.0.5", dst="203.0.113.9", dport=80, iniface="eth1", outiface="eth0"),
            Flow(4, "udp", dst="192.0.2.53", dport=53, from_host=True),
            Flow(4, "tcp", src="172.17.0.2", dst="8.8.8.8", dport=53, iniface="docker0")]
    return out


@pytest.mark.parametrize("path", _s_files(), ids=lambda p: p.name)
def test_real_s_files_read_as_the_eager_reader(path: Path) -> None:
    text = path.read_text(errors="replace")
    table = next((t for t in BUILTIN_CHAINS if f".{t}." in path.name), None)
    for t in {table, None}:
        _check_same(text, str(path), table=t, flows=_flows_of(text))


def test_real_iptables_s_output_is_taken() -> None:
    """iptables' own -S output (the corpus' generated files): the scan must not give up on it."""
    paths = [p for p in _s_files() if "generated" in str(p) or "moby" in p.name]
    taken = [p for p in paths if _both(p.read_text(errors="replace"), str(p))[0] is not None]
    assert len(paths) >= 10 and len(taken) >= 0.8 * len(paths), sorted(set(map(str, paths)) - set(map(str, taken)))


@pytest.mark.parametrize("path", save_files(), ids=lambda p: p.name)
def test_save_dumps_as_s_text_read_as_the_eager_reader(path: Path) -> None:
    """Every fixture and corpus dump, as the -S commands of each of its tables print it."""
    text = path.read_text(errors="replace")
    if "*" not in text or "\r" in text:
        return
    s = save_to_s(text)
    family = 6 if ".v6." in path.name else 4
    flows = [] if family == 6 else _flows_of(text)
    _check_same(s, str(path) + ".S", flows=flows)


BASE = """# iptables -t nat -S
-P PREROUTING ACCEPT
-P INPUT ACCEPT
-P OUTPUT ACCEPT
-P POSTROUTING ACCEPT
-N A
-N B
-N C
-A PREROUTING -p tcp -m tcp --dport 80 -j A
-A OUTPUT -j C
{rules}
"""


@pytest.mark.parametrize("rules,chain,message", [
    ("-A A -p tcp -m tcp --dport 99999 -j B\n-A C -j ACCEPT", "A", "invalid port/service `99999' specified"),
    ("-A B -j POSTROUTING\n-A C -j B", "B", "cannot jump to built-in chain `POSTROUTING'"),
    ("-A A -j B\n-A B -j MASQUERADE\n-A C -j ACCEPT", "B", "MASQUERADE is only valid in POSTROUTING, not in PREROUTING"),
    ("-A C -j MASQUERADE\n-A C -j ACCEPT", "C", "MASQUERADE is only valid in POSTROUTING, not in OUTPUT"),
    ("-A A -s 10.0.0.1/32 -j B\n-A B -p tcp -m hl --hl-eq 5 -j ACCEPT\n-A C -j ACCEPT", "B",
     "an IPv6 module in an IPv4 table"),
])
def test_errors_wait_for_the_rule_and_read_as_eager_ones(rules: str, chain: str, message: str) -> None:
    text = BASE.format(rules=rules)
    with pytest.raises(InputError, match=message) as eager:
        parse_text(text, "f")
    rs = read_deferred_s(text, "f")  # nothing at load: the scan checks the layout only
    with pytest.raises(InputError) as late:
        for r in rs.table("nat").chains[chain].rules:
            r.parse()
    assert str(late.value) == str(eager.value)
    assert late.value.line == eager.value.line and text.splitlines()[late.value.line - 1].startswith(f"-A {chain} ")


@pytest.mark.parametrize("change", [
    lambda t: t.replace("\n", "\r\n"),                                         # CRLF
    lambda t: t.replace("-A OUTPUT -j C\n", "-A OUTPUT -j C \n"),             # a blank at a line end
    lambda t: t.replace("-A OUTPUT -j C", "-A OUTPUT -s 10.0.0.1,10.0.0.2 -j C"),  # several rules of one line
    lambda t: t.replace("-A OUTPUT -j C", "-A OUTPUT -j NOWHERE"),            # an excerpt: chain not shown
    lambda t: t.replace("-N C\n", ""),                                         # rules of an undeclared chain
    lambda t: t.replace("-A OUTPUT -j C", "-I OUTPUT -j C"),                   # another command
    lambda t: t.replace("-A OUTPUT -j C", "-A OUTPUT -j C\n-A PREROUTING -j B"),   # a chain's rules in two runs
    lambda t: t.replace("-A OUTPUT -j C", "-A OUTPUT -m comment --comment 'a b' -j C"),
    lambda t: t.replace("-A OUTPUT -j C", "[1:2] -A OUTPUT -j C"),             # counters before the rule
    lambda t: t.replace("-A OUTPUT -j C", "  -A OUTPUT -j C"),                 # indented
    lambda t: t.replace("-A OUTPUT -j C", "...\n-A OUTPUT -j C"),              # an elision
    lambda t: t.replace("# iptables -t nat -S", "*nat"),                        # a save dump's line
    lambda t: t + "# iptables -t nat -S\n-P PREROUTING ACCEPT\n",              # a table given twice
    lambda t: t + "-A C -p tcp -m tcp --dport",                                # cut off mid-rule (a note)
    lambda t: t + "-A C -j DNAT --to-destination 10.0.0.1\n# iptables -S\n-P INPUT ACCEPT\n-A INPUT -j DNAT --to-destination 1.2.3.4",
    lambda t: t.replace("-N A\n", "-N A\n-N A\n"),                             # declared twice
    lambda t: t.replace("-P INPUT ACCEPT", "-P INPUT REJECT"),
    lambda t: t + "-P INPUT ACCEPT\n-A INPUT -j ACCEPT\n" * 40,            # more commands' output than tables
    lambda t: t.replace("-A OUTPUT -j C", "-A OUTPUT -d localhost -j C").replace("# iptables -t nat -S\n", ""),
])
def test_the_scan_gives_up_on_what_it_does_not_expect(change) -> None:  # noqa: ANN001
    good = BASE.format(rules="-A A -j B")
    read_deferred_s(good, "f")
    text = change(good)
    with pytest.raises(GiveUp):
        read_deferred_s(text, "f")
    # ... and the general reader reads it (or reports it) as before
    try:
        parse_text(text, "f")
    except InputError:
        pass


def test_table_option_and_prompts() -> None:
    body = BASE.format(rules="-A A -j B").replace("# iptables -t nat -S\n", "")
    rs = read_deferred_s(body, "f", table="nat")
    assert rs.tables_shown() == ("nat",)
    with pytest.raises(GiveUp):  # a prompt naming a table where --table named one
        read_deferred_s(BASE.format(rules=""), "f", table="nat")
    # a prose prompt is a skipped line, as the general reader says
    prose = "root@node:~# iptables -t nat -S\n" + body
    assert _check_same(prose, "p")
    assert any(n.kind == "skipped" for n in parse_text(prose, "p").notes)


@pytest.mark.parametrize("text", [
    # -S -v: counters after the policy and inside each rule
    "-P INPUT ACCEPT -c 10 600\n-P FORWARD DROP -c 0 0\n-P OUTPUT ACCEPT -c 5 300\n-N X\n"
    "-A INPUT -i lo -c 4 240 -j ACCEPT\n-A INPUT -p tcp -m tcp --dport 22 -c 1 60 -j X\n-A X -c 1 60 -j ACCEPT\n",
    # built-in chains without their -P lines (policies unknown), a chain nothing jumps to
    "-N X\n-N Y\n-A INPUT -j X\n-A X -p udp -m udp --dport 53 -j ACCEPT\n-A Y -j DROP\n",
    # two commands' output without prompts: a -P after rules starts the next
    "-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n-A INPUT -j ACCEPT\n"
    "-P PREROUTING ACCEPT\n-P INPUT ACCEPT\n-P OUTPUT ACCEPT\n-P POSTROUTING ACCEPT\n-N K\n"
    "-A PREROUTING -d 10.96.0.1/32 -p tcp -m tcp --dport 443 -j K\n-A K -j DNAT --to-destination 10.244.1.2:6443\n",
    # a long spelling iptables does not print
    "-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n-N X\n-A INPUT -p tcp --jump X\n-A X --jump DROP\n",
    # IPv6: ip6tables -S
    "-P INPUT DROP\n-P FORWARD DROP\n-P OUTPUT ACCEPT\n-N ICMP\n-A INPUT -p ipv6-icmp -j ICMP\n"
    "-A INPUT -s fd00::/8 -p tcp -m tcp --dport 22 -j ACCEPT\n-A ICMP -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j ACCEPT\n",
])
def test_layouts_iptables_prints_are_read_as_the_eager_reader(text: str) -> None:
    flows = [Flow(4, "tcp", src="10.0.0.1", dst="10.96.0.1", dport=443, iniface="eth0"),
             Flow(4, "tcp", src="10.0.0.1", dst="10.0.0.2", dport=22, iniface="eth0")]
    if "fd00" in text:
        flows = [Flow(6, "tcp", src="fd00::1", dst="fd00::2", dport=22, iniface="eth0"),
                 Flow(6, "ipv6-icmp", src="2001:db8::1", dst="fd00::2", iniface="eth0")]
    assert _check_same(text, "v", flows=flows)


def test_trace_reads_large_s_text_deferred(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`iptexplain trace FILE -t nat` and `trace -` of -S text: the deferred read (said in a
    note), the same JSON as the general reader's otherwise."""
    from click.testing import CliRunner

    from iptexplain.cli import main

    services = gen_kube.make_services(120, seed=6)
    text = save_to_s(gen_kube.render(services), prompts=False, tables=("nat",))
    path = tmp_path / "nat.S"
    path.write_text(text)
    svc = next(s for s in services if len(s.endpoints) >= 2 and s.proto == "tcp")
    args = ["-p", "tcp", "-s", "10.244.77.7", "-i", "cni0", "-d", svc.cluster_ip, "--dport", str(svc.port), "--json"]
    import json

    docs = {}
    for limit in (1 << 40, 1):
        monkeypatch.setattr(deferred_s, "DEFER_MIN", limit)
        monkeypatch.setattr("iptexplain.parse.DEFER_MIN", limit)
        for how, cmd, stdin in (("file", ["trace", str(path), "-t", "nat", *args], None),
                                ("stdin", ["trace", "-", *args], text)):
            out = CliRunner().invoke(main, cmd, input=stdin)
            assert out.exit_code == 3, out.output  # the other tables are unknown: an uncertain outcome
            docs[(limit, how)] = json.loads(out.output)
    for how in ("file", "stdin"):
        eager, lazy = docs[(1 << 40, how)], docs[(1, how)]
        assert [n for n in lazy["notes"] if n["kind"] == "lazy"] and not [n for n in eager["notes"] if n["kind"] == "lazy"]
        lazy["notes"] = [n for n in lazy["notes"] if n["kind"] != "lazy"]
        assert lazy == eager
