"""bench/gen_kube.py: the kube-proxy-shaped rulesets the benchmark measures must be real ones.

* what it writes parses, with the chains and rules a kube-proxy node of that size has;
* iptables itself accepts it (``iptables-nft-restore --test`` / legacy, in a private namespace),
  and ``iptables-save`` prints it back the same (so it is iptables-save's own spelling:
  probabilities as the kernel's fixed point, ``--set-xmark``, quoting);
* the kernel agrees with the tracer on it: a ClusterIP flow forks into each endpoint of that
  service with probability 1/n, and real connections are DNATed to those endpoints only.

No timing here: speed is measured by bench/run.py.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import kernel_lab
from kernel_lab import HostIface, Peer, Topology, require_lab

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import gen_kube  # noqa: E402

from iptexplain.host.model import HostModel, IfAddr, Interface  # noqa: E402
from iptexplain.netfilter.trace import FORWARDED, Flow  # noqa: E402
from iptexplain.netfilter.tracer import trace_flow  # noqa: E402
from iptexplain.parse import parse_text
from iptexplain.parse.deferred import read_deferred  # noqa: E402
from iptexplain.parse.deferred_s import read_deferred_s  # noqa: E402


def _ruleset(n: int, seed: int = 7, endpoints: int | None = None):
    services = gen_kube.make_services(n, seed, endpoints)
    text = gen_kube.render(services)
    return services, text, parse_text(text, f"kube-{n}.save")


def test_probability_is_printed_as_iptables_save_prints_the_kernel_value() -> None:
    # lround(p * 2^31) / 2^31 with 11 decimals: libxt_statistic's save of kube-proxy's values.
    assert gen_kube.probability_text(1 / 2) == "0.50000000000"
    assert gen_kube.probability_text(1 / 3) == "0.33333333349"
    assert gen_kube.probability_text(1 / 5) == "0.20000000019"
    assert gen_kube.probability_text(1 / 4) == "0.25000000000"


def test_generation_is_deterministic_per_seed() -> None:
    a = gen_kube.render(gen_kube.make_services(40, seed=3))
    assert a == gen_kube.render(gen_kube.make_services(40, seed=3))
    assert a != gen_kube.render(gen_kube.make_services(40, seed=4))


def test_chain_names_are_kube_proxys() -> None:
    # kube-proxy names the default/kubernetes:https chain KUBE-SVC-NPX46M4PTMTKRN6Y on every
    # cluster (base32 of the SHA-256 of "default/kubernetes:https" + "tcp"); the real node dump
    # in the corpus has the same name.
    services = gen_kube.make_services(5, seed=1)
    assert services[0].name == "default/kubernetes:https"
    assert services[0].svc_chain == "KUBE-SVC-NPX46M4PTMTKRN6Y"
    assert services[0].cluster_ip == "10.96.0.1"


def test_generated_ruleset_parses_with_the_expected_structure() -> None:
    services, text, rs = _ruleset(50)
    nat = rs.table("nat")
    filt = rs.table("filter")
    assert nat is not None and filt is not None and rs.table("mangle") is not None
    live = [s for s in services if s.endpoints]
    dead = [s for s in services if not s.endpoints]
    eps = [e for s in live for e in s.endpoints]
    svc_chains = [c for c in nat.chains if c.startswith("KUBE-SVC-")]
    sep_chains = [c for c in nat.chains if c.startswith("KUBE-SEP-")]
    assert sorted(svc_chains) == sorted(s.svc_chain for s in live)
    assert sorted(sep_chains) == sorted(e.sep for e in eps)

    # KUBE-SERVICES: one rule per service with endpoints (+ its load-balancer IP), then the
    # nodeports rule last, as kube-proxy writes it.
    kube_services = nat.chains["KUBE-SERVICES"].rules
    assert len(kube_services) == len(live) + sum(1 for s in live if s.lb_ip) + 1
    assert kube_services[-1].jump == "KUBE-NODEPORTS"
    by_jump = {r.jump: r for r in kube_services}
    for s in live:
        r = by_jump[s.svc_chain]
        assert str(r.header.dst) == f"{s.cluster_ip}/32" and r.header.proto == s.proto

    # KUBE-SVC-*: the masquerade rule, then a statistic cascade over the endpoints.
    for s in live:
        rules = nat.chains[s.svc_chain].rules
        assert rules[0].jump == "KUBE-MARK-MASQ" and rules[0].header.src_inv
        assert [r.jump for r in rules[1:]] == [e.sep for e in s.endpoints]
        n = len(s.endpoints)
        for i, r in enumerate(rules[1:]):
            stats = [m for m in r.matches if m.name == "statistic"]
            if i == n - 1:
                assert not stats
            else:
                assert len(stats) == 1 and abs(stats[0].probability - 1 / (n - i)) < 1e-9

    # KUBE-SEP-*: mark hairpin traffic, DNAT to the endpoint.
    for e in eps:
        mark, dnat = nat.chains[e.sep].rules
        assert str(mark.header.src) == f"{e.ip}/32" and mark.jump == "KUBE-MARK-MASQ"
        assert dnat.target.name == "DNAT" and dnat.target.save_args() == ["--to-destination", f"{e.ip}:{e.port}"]

    # filter: services without endpoints are rejected in KUBE-SERVICES.
    assert len(filt.chains["KUBE-SERVICES"].rules) == len(dead)
    assert all(r.target_name == "REJECT" for r in filt.chains["KUBE-SERVICES"].rules)
    assert not rs.not_understood() or set(rs.not_understood()) <= {"sctp"}


def test_size_is_kube_proxy_scale() -> None:
    # About 14 lines a service: 10,000 services make about 140,000 lines.
    lines = gen_kube.render(gen_kube.make_services(1000, seed=1)).count("\n")
    assert 12_000 < lines < 16_000


def _restore_test(backend: str, text: str) -> subprocess.CompletedProcess:
    return subprocess.run(["unshare", "-n", "-m", f"iptables-{backend}-restore", "--test"],
                          input=text, capture_output=True, text=True, timeout=120)


def _need_root_tools(*tools: str) -> None:
    missing = [t for t in ("unshare", *tools) if shutil.which(t) is None]
    reason = "needs root" if os.geteuid() != 0 else (f"missing {', '.join(missing)}" if missing else None)
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} under CI", pytrace=False)
    pytest.skip(reason)


@pytest.mark.parametrize("backend", ["nft", "legacy"])
def test_iptables_accepts_the_generated_ruleset(backend: str) -> None:
    _need_root_tools(f"iptables-{backend}-restore")
    _, text, _ = _ruleset(50)
    p = _restore_test(backend, text)
    assert p.returncode == 0, p.stderr
    # The check can fail: a bad option value in one rule is refused.
    broken = text.replace("--mode random", "--mode randomly", 1)
    assert broken != text and _restore_test(backend, broken).returncode != 0


def test_iptables_save_prints_the_generated_text_back() -> None:
    """Loaded into a namespace and saved again, every rule line comes back byte for byte:
    the generator writes iptables-save's own spelling, not merely something it accepts."""
    _need_root_tools("iptables-nft-restore", "iptables-nft-save")
    _, text, _ = _ruleset(30)
    p = subprocess.run(["unshare", "-n", "-m", "sh", "-c", "iptables-nft-restore && iptables-nft-save"],
                       input=text, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr

    def body(t: str) -> list[str]:
        return [line for line in t.splitlines() if line.startswith(("-A", ":", "*"))]

    mine, theirs = body(text), body(p.stdout)
    assert len(mine) == len(theirs)
    assert sorted(mine) == sorted(theirs)


# ---------------------------------------------------------------------------------------------
# The tracer against the kernel on a generated ruleset.


def _topology(client: str, peers: dict[str, str]) -> Topology:
    """An outside client on eth0, pods on the cni0 bridge (pod CIDR 10.244.0.0/16)."""
    return Topology(ifaces=[
        HostIface("eth0", ["192.168.0.1/24"], peers=[Peer("client", [f"{client}/24"])]),
        HostIface("cni0", ["10.244.0.1/16"], bridge=True,
                  peers=[Peer(name, [f"{ip}/16"]) for name, ip in peers.items()]),
    ])


def _host_model(topo: Topology) -> HostModel:
    h = HostModel(source="kernel lab")
    h.add_interface(Interface("lo", [IfAddr("127.0.0.1", 8, 4)], kind="loopback"))
    for i in topo.ifaces:
        iface = h.add_interface(Interface(i.name, kind="bridge" if i.bridge else "veth"))
        for a in i.addrs:
            ip = ipaddress.ip_interface(a)
            iface.addrs.append(IfAddr(str(ip.ip), ip.network.prefixlen, ip.version))
    h.sysctls.update(kernel_lab.DEFAULT_HOST_SYSCTLS)
    h.sysctls.update(topo.sysctls)
    return h


@pytest.mark.parametrize("size", [20, 10_000])
def test_cluster_ip_flow_forks_into_the_endpoints_and_the_kernel_agrees(kernel_labs, size: int) -> None:
    """20 services of 3 endpoints each, and the benchmark's own 10k-service ruleset (a service
    from the middle of KUBE-SERVICES, as bench/run.py traces it)."""
    require_lab("nft")
    services, text, rs = _ruleset(size, seed=11, endpoints=3 if size <= 20 else None)
    target = next(s for s in services[size // 4:] if s.proto == "tcp" and len(s.endpoints) >= 3)
    other = next(s for s in services if s is not target and s.proto == "tcp" and s.port != target.port
                 and s.endpoints)
    peers = {f"ep{i}": e.ip for i, e in enumerate(target.endpoints)}
    peers |= {f"other{i}": e.ip for i, e in enumerate(other.endpoints)}
    topo = _topology("192.168.0.2", peers)
    flow = Flow(4, "tcp", src="192.168.0.2", dst=target.cluster_ip, dport=target.port, iniface="eth0")

    # The tracer: one branch per endpoint, each with probability 1/n, DNATed to it -- on the
    # eager graph, and on the dump as `iptexplain trace FILE` reads it (chains kept as text
    # until the trace reaches them: iptexplain.parse.deferred), which must say the same.
    tr = trace_flow(rs, flow, _host_model(topo))
    leaves = list(tr.leaves())
    deferred = read_deferred([text], f"kube-{size}.save")
    as_read = list(trace_flow(deferred, flow, _host_model(topo)).leaves())
    assert deferred.deferred is not None
    assert [(lf.outcome.kind, lf.outcome.packet, lf.probability, [c.text for c in lf.conditions]) for lf in as_read] \
        == [(lf.outcome.kind, lf.outcome.packet, lf.probability, [c.text for c in lf.conditions]) for lf in leaves]
    assert tr.forks
    assert {leaf.outcome.kind for leaf in leaves} == {FORWARDED}
    want = {(e.ip, str(e.port)) for e in target.endpoints}
    got = {(leaf.outcome.packet["dst"], str(leaf.outcome.packet["dport"])) for leaf in leaves}
    assert got == want
    for leaf in leaves:
        assert leaf.probability is not None and abs(leaf.probability - 1 / len(target.endpoints)) < 1e-6
        assert any("statistic" in c.text or "random" in c.text for c in leaf.conditions) or leaf is leaves[-1]

    # The kernel: over several connections, only this service's endpoints, at its target port.
    # Only where the packets arrive is compared: no per-flow counter dumps or rule traces,
    # which on 140,000 rules would cost more than the test.
    lab = kernel_labs(topo, counters=False, trace=False)
    lab.load(text, "nft", 4)
    reached = set()
    for _ in range(12):
        obs = lab.send(kernel_lab.Flow("client", target.cluster_ip, target.port, listen_port=target.endpoints[0].port))
        assert obs.outcome == "delivered", obs.describe()
        d = obs.delivery
        assert d is not None and d.ns in peers and d.ns.startswith("ep"), obs.describe()
        assert (d.dst, str(d.dport)) in want, obs.describe()
        reached.add(d.ns)
    # 12 connections all to one of n >= 3 endpoints: probability at most 3 * 3^-12, about 6e-6.
    assert len(reached) >= 2, reached


# ---------------------------------------------------------------------------------------------
# The layouts bench/run.py --layouts times (issue 17): the same rules as kube-proxy writes them,
# and as `iptables -t nat -S` / `-nvL` print them.  Each is checked against the real iptables in
# a private namespace; no timing here.


_BUILTIN = {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"}


def _chains_of(save_text: str) -> dict[tuple[str, str], list[str]]:
    """(table, chain) -> its rule lines in order, for every declared or used chain (a built-in
    chain only when it has rules: kube-proxy's input never declares them)."""
    out: dict[tuple[str, str], list[str]] = {}
    table = ""
    for line in save_text.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":"):
            out.setdefault((table, line[1:].split(" ", 1)[0]), [])
        elif line.startswith("-A "):
            out.setdefault((table, line.split(" ", 2)[1]), []).append(line)
    return {k: v for k, v in out.items() if v or k[1] not in _BUILTIN}


def test_restore_layout_is_kube_proxys_and_iptables_loads_the_same_rules() -> None:
    """kube-proxy's restore input: no header, declarations first, KUBE-SERVICES in one run per
    service.  Loaded by iptables-nft-restore (no --noflush: a fresh namespace) and saved again,
    it is the same ruleset, chain by chain and rule by rule in order, as the save layout."""
    _need_root_tools("iptables-nft-restore", "iptables-nft-save")
    services = gen_kube.make_services(40, seed=5)
    save, restore = gen_kube.render(services), gen_kube.render_restore(services)
    assert "# Generated by" not in restore and "# Completed" not in restore
    nat = restore[restore.index("*nat\n"):]
    body = nat.splitlines()[1:]
    first_rule = next(i for i, line in enumerate(body) if line.startswith("-A "))
    assert all(line.startswith(":") for line in body[:first_rule])
    assert not any(line.startswith(":") for line in body[first_rule:])
    runs = sum(1 for a, b in zip(body, body[1:]) if b.startswith("-A KUBE-SERVICES ") and not a.startswith("-A KUBE-SERVICES "))
    assert runs >= len([s for s in services if s.endpoints]) - 1  # interleaved, not one run
    assert _chains_of(restore) == _chains_of(save)  # same rules, same order within each chain

    p = subprocess.run(["unshare", "-n", "-m", "sh", "-c", "iptables-nft-restore --test < /dev/stdin"],
                       input=restore, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    loaded = subprocess.run(["unshare", "-n", "-m", "sh", "-c", "iptables-nft-restore && iptables-nft-save"],
                            input=restore, capture_output=True, text=True, timeout=120)
    assert loaded.returncode == 0, loaded.stderr
    assert _chains_of(loaded.stdout) == _chains_of(save)


def test_listings_are_the_real_iptables_views_and_iptexplain_reads_the_same_rules() -> None:
    """`iptables -t nat -S` and `-nvL` of the generated ruleset, printed by the real iptables
    in a namespace: -S holds the save text's nat rules word for word; iptexplain reads both
    into the nat chains of the save text, with the same rules and jumps."""
    _need_root_tools("iptables-nft-restore", "iptables-nft")
    services, save, rs = _ruleset(25, seed=5)
    views = gen_kube.iptables_listings(save, "nat")
    nat_rules = [line for (t, _), rules in _chains_of(save).items() if t == "nat" for line in rules]
    assert sorted(line for line in views["S"].splitlines() if line.startswith("-A ")) == sorted(nat_rules)
    want = {name: [(r.jump, r.target_name) for r in c.rules] for name, c in rs.table("nat").chains.items()}
    for key in ("S", "nvL"):
        got_rs = parse_text(views[key], f"nat.{key}", table="nat")
        got = {name: [(r.jump, r.target_name) for r in c.rules] for name, c in got_rs.table("nat").chains.items()}
        assert got == want, key
    # A listing shows a chain header per chain: a refused text raises, nothing silently empty.
    with pytest.raises(RuntimeError):
        gen_kube.iptables_listings(save.replace("--mode random", "--mode randomly", 1), "nat")


def test_trace_is_the_same_on_every_layout() -> None:
    """What `bench/run.py --layouts` times must be the same question: the ClusterIP flow's trace on
    kube-proxy's restore input equals the save layout's; on nat -S / -nvL it reaches the same
    endpoints."""
    from iptexplain.render.json_out import trace_json

    _need_root_tools("iptables-nft-restore", "iptables-nft")
    services = gen_kube.make_services(60, seed=8)
    save, restore = gen_kube.render(services), gen_kube.render_restore(services)
    svc = next(s for s in services[30:] if s.proto == "tcp" and len(s.endpoints) >= 3)
    flow = Flow(4, "tcp", src="10.244.77.7", dst=svc.cluster_ip, dport=svc.port, iniface="cni0")

    def doc(rs) -> dict:  # noqa: ANN001
        d = trace_json(trace_flow(rs, flow, HostModel(source="test")), rs)
        return {k: v for k, v in d.items() if k not in ("notes", "ruleset", "path", "outcomes")} | {
            "outcomes": [(o["outcome"]["kind"], o["outcome"]["packet"], o["probability"]) for o in d["outcomes"]]}

    base = doc(parse_text(save, "k.save"))
    assert doc(parse_text(restore, "k.restore")) == base
    assert len(base["outcomes"]) == len(svc.endpoints)
    views = gen_kube.iptables_listings(save, "nat")
    want = {(e.ip, str(e.port)) for e in svc.endpoints}
    for key in ("S", "nvL"):
        d = doc(parse_text(views[key], f"nat.{key}", table="nat"))
        assert {(p["dst"], str(p["dport"])) for _, p, _ in d["outcomes"]} == want, key
        if key == "S":  # the real iptables' -S output is read by the layout scan, to the same trace
            deferred = read_deferred_s(views["S"], "nat.S", table="nat")
            assert deferred.deferred is not None
            assert doc(deferred) == d
