"""bench/gen_kube_nft.py: the kube-proxy nftables-mode node the benchmark measures must be a real one.

* it is what ``nft list ruleset`` prints: loaded with ``nft -f`` in a private namespace and listed
  back, the text is the same (a hash set's elements are listed in the kernel's order);
* kube-proxy's names (the hashes of TestOverallNFTablesRules' chains);
* iptexplain reads it with the chains and map elements a node of that size has, and the kernel
  agrees with the tracer: a ClusterIP flow forks into each endpoint of that service with
  probability 1/n, and real connections are DNATed to those endpoints only.

No timing here: speed is measured by bench/run.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import kernel_lab
from kernel_lab import require_lab
from test_bench_gen import _host_model, _need_root_tools, _topology

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import gen_kube_nft  # noqa: E402

from iptexplain.netfilter.trace import FORWARDED, Flow  # noqa: E402
from iptexplain.netfilter.tracer import trace_flow  # noqa: E402
from iptexplain.nft.reader import read_nft  # noqa: E402


def _node(n: int, seed: int = 7, endpoints: int | None = None):
    services = gen_kube_nft.make_services(n, seed, endpoints)
    return services, gen_kube_nft.render(services)


def _elements_unordered(text: str) -> str:
    """The text with each ``elements = { … }`` list sorted: the one freedom nft's listing has
    (a hash set lists its elements in the kernel's order)."""
    def sort(m: re.Match[str]) -> str:
        items = sorted(x.strip() for x in re.split(r",\n\s*|, ", m.group(1)))
        return "elements = { " + " | ".join(items) + " }"
    return re.sub(r"elements = \{ (.*?) \}", sort, text, flags=re.S)


def test_names_are_kube_proxys() -> None:
    # TestOverallNFTablesRules' chains (fixtures/nft/kube-proxy-nftables.nft): the same hashes.
    assert gen_kube_nft.chain_base("ns1/svc1/tcp/p80") == "ULMVA6XW-ns1/svc1/tcp/p80"
    assert gen_kube_nft.chain_base("ns1/svc1/tcp/p80__10.180.0.1/80") == "5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"
    fixture = (Path(__file__).resolve().parent.parent / "fixtures/nft/kube-proxy-nftables.nft").read_text()
    assert "chain service-ULMVA6XW-ns1/svc1/tcp/p80 {" in fixture


def test_generation_is_deterministic_per_seed() -> None:
    a = gen_kube_nft.render(gen_kube_nft.make_services(40, seed=3))
    assert a == gen_kube_nft.render(gen_kube_nft.make_services(40, seed=3))
    assert a != gen_kube_nft.render(gen_kube_nft.make_services(40, seed=4))


def test_nft_lists_the_generated_text_back() -> None:
    """Loaded with ``nft -f`` into a namespace and listed again, the text comes back line for
    line (element lists compared as sets): the generator writes nft's own listing, not merely
    something nft accepts."""
    _need_root_tools("nft")
    _, text = _node(60)
    back = gen_kube_nft.kernel_listing(text, timeout=120)["text"]
    assert _elements_unordered(back) == _elements_unordered(text)
    # The comparison can fail: a rule nft accepts but prints in its own words.
    wrong = text.replace("meta mark set meta mark | 0x00004000", "mark set mark or 0x4000", 1)
    assert wrong != text
    assert _elements_unordered(gen_kube_nft.kernel_listing(wrong, timeout=120)["text"]) != _elements_unordered(wrong)
    # And nft itself refuses a broken rule (check mode, nothing committed).
    broken = text.replace("numgen random mod", "numgen randomly mod", 1)
    p = subprocess.run(["unshare", "-n", "-m", "nft", "-c", "-f", "-"], input=broken, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode != 0 and "randomly" in p.stderr


def test_generated_node_reads_with_kube_proxys_structure() -> None:
    services, text = _node(80)
    rs = read_nft(text, "kube-80.nft")
    (table,) = rs.nft_tables
    assert table.name == "ip kube-proxy"
    nsvcs = gen_kube_nft.nft_services(services)
    live = [n for n in nsvcs if n.endpoints]
    svc_chains = sorted(c for c in table.chains if c.startswith("service-") and "/" in c)
    ep_chains = sorted(c for c in table.chains if c.startswith("endpoint-"))
    assert svc_chains == sorted(n.cluster_chain for n in live)
    assert ep_chains == sorted("endpoint-" + e[2] for n in live for e in n.endpoints)
    service_ips = table.sets["service-ips"]
    assert service_ips.is_vmap
    assert len(service_ips.elements) == len(live) + sum(1 for n in live if n.svc.lb_ip)
    assert len(table.sets["cluster-ips"].elements) == len(services)
    assert {c.name for c in table.chains.values() if c.is_base} == {b[0] for b in gen_kube_nft.BASE_CHAINS}


def test_size_is_kube_proxy_scale() -> None:
    # About 21 lines a service port (its chains, their blank lines, map elements): 10,000 make
    # about 210,000 lines.
    lines = gen_kube_nft.render(gen_kube_nft.make_services(1000, seed=1)).count("\n")
    assert 18_000 < lines < 25_000


def test_cluster_ip_flow_forks_into_the_endpoints_and_the_kernel_agrees(kernel_labs) -> None:
    require_lab("nft")
    services, text = _node(20, seed=11, endpoints=3)
    target = next(s for s in services[5:] if s.proto == "tcp" and len(s.endpoints) >= 3)
    peers = {f"ep{i}": e.ip for i, e in enumerate(target.endpoints)}
    topo = _topology("192.168.0.2", peers)
    flow = Flow(4, "tcp", src="192.168.0.2", dst=target.cluster_ip, dport=target.port, iniface="eth0")

    leaves = list(trace_flow(read_nft(text, "kube-20.nft"), flow, _host_model(topo)).leaves())
    assert {leaf.outcome.kind for leaf in leaves} == {FORWARDED}
    want = {(e.ip, str(e.port)) for e in target.endpoints}
    assert {(leaf.outcome.packet["dst"], str(leaf.outcome.packet["dport"])) for leaf in leaves} == want
    for leaf in leaves:
        assert leaf.probability is not None and abs(leaf.probability - 1 / 3) < 1e-6

    lab = kernel_labs(topo, counters=False, trace=False)
    lab.run(kernel_lab.HOST, "nft", "-f", "-", input=text)
    reached = set()
    for _ in range(12):
        obs = lab.send(kernel_lab.Flow("client", target.cluster_ip, target.port,
                                       listen_port=target.endpoints[0].port))
        assert obs.outcome == "delivered", obs.describe()
        d = obs.delivery
        assert d is not None and d.ns in peers, obs.describe()
        assert (d.dst, str(d.dport)) in want, obs.describe()
        reached.add(d.ns)
    # 12 connections all to one of 3 endpoints: probability 3 * 3^-12, about 6e-6.
    assert len(reached) >= 2, reached
