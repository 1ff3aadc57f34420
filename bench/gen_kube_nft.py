#!/usr/bin/env python3
"""Generate a kube-proxy nftables-mode node's ``nft list ruleset`` at any scale.

kube-proxy's nftables mode (``pkg/proxy/nftables/proxier.go``) keeps everything in one table,
``table ip kube-proxy``: a handful of base chains (``filter-prerouting`` … at ``dstnat - 10``,
``nat-prerouting`` / ``nat-output`` at ``dstnat``, ``nat-postrouting`` at ``srcnat``), the
dispatch chain ``services`` whose two rules look the packet up in the verdict maps
``service-ips`` (``ip daddr . meta l4proto . th dport``) and ``service-nodeports``, and per
service port the chains ``service-HASH-ns/svc/proto/port`` (a masquerade rule, then
``numgen random mod N vmap { 0 : goto endpoint-…, … }``), ``external-…`` (NodePort and
LoadBalancer traffic), ``local-…`` (``externalTrafficPolicy: Local``), ``firewall-…``
(``loadBalancerSourceRanges``) and per endpoint ``endpoint-HASH-…__IP/PORT`` (``ip saddr EP
jump mark-for-masquerade``, ``meta l4proto tcp dnat to EP:PORT``).  Services without endpoints
go to ``no-endpoint-services`` / ``no-endpoint-nodeports`` (``goto reject-chain``), every
ClusterIP to ``cluster-ips``, session affinity to ``affinity-…`` sets updated from the endpoint
chain.

This script writes what ``nft list ruleset`` (nft 1.0.x) prints for such a node: objects in the
order kube-proxy's first full sync creates them (the listing keeps creation order), spelled and
wrapped as nft prints them (``meta mark set meta mark | 0x00004000``, ``priority dstnat - 10``
on prerouting but ``-110`` on the other hooks, a named map's elements one per line).  The only
freedom nft keeps is the order of a hash set's elements; :func:`kernel_listing` gives the
kernel's own listing of the text (and its JSON), which is what the benchmark reads.

The services are those of :mod:`gen_kube` (same seed, same cluster IPs, endpoints, NodePorts,
LoadBalancer IPs and source ranges); names are kube-proxy's: ``base32(sha256(name))[:8]-name``.

Usage::

    python bench/gen_kube_nft.py 10000 > kube-10k.nft
    python bench/gen_kube_nft.py 50 --endpoints 3 --seed 7 -o small.nft
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_kube  # noqa: E402
from gen_kube import NODE_IP, POD_CIDR, SERVICE_CIDR, Service, make_services  # noqa: E402

MASQ_MARK = "0x00004000"  # kube-proxy's --masquerade-bit 14, as nft prints a mark
AFFINITY_TIMEOUT = "3h"  # sessionAffinityConfig.clientIP.timeoutSeconds 10800, as nft prints it

# (name, type, hook, priority as nft prints it): proxier.go's nftablesBaseChains, in its order.
# nft prints a standard priority name only where it is defined for the hook (dstnat: prerouting;
# srcnat: postrouting); elsewhere the number.
BASE_CHAINS = (
    ("filter-prerouting", "filter", "prerouting", "dstnat - 10"),
    ("filter-input", "filter", "input", "-110"),
    ("filter-forward", "filter", "forward", "-110"),
    ("filter-output", "filter", "output", "-110"),
    ("filter-output-post-dnat", "filter", "output", "-90"),
    ("nat-prerouting", "nat", "prerouting", "dstnat"),
    ("nat-output", "nat", "output", "-100"),
    ("nat-postrouting", "nat", "postrouting", "srcnat"),
)
# proxier.go's nftablesJumpChains: (chain jumped to, base chain, condition), in its order.
JUMP_CHAINS = (
    ("nodeport-endpoints-check", "filter-input", "ct state new "),
    ("service-endpoints-check", "filter-input", "ct state new "),
    ("service-endpoints-check", "filter-forward", "ct state new "),
    ("service-endpoints-check", "filter-output", "ct state new "),
    ("firewall-check", "filter-prerouting", "ct state new "),
    ("firewall-check", "filter-output", "ct state new "),
    ("services", "nat-output", ""),
    ("services", "nat-prerouting", ""),
    ("masquerading", "nat-postrouting", ""),
    ("cluster-ips-check", "filter-forward", "ct state new "),
    ("cluster-ips-check", "filter-output-post-dnat", "ct state new "),
)
# A named map of a concatenated key prints one element per line, a set of addresses two a line.
_NEWLINE = ",\n\t\t\t     "


def chain_base(name: str) -> str:
    """kube-proxy's hashAndTruncate: the first 8 base32 characters of the name's SHA-256, a dash,
    the name (never longer than 240 characters for a service port name)."""
    return base64.b32encode(hashlib.sha256(name.encode()).digest()).decode()[:8] + "-" + name


@dataclass
class NftService:
    """One service port with its kube-proxy nftables names (:class:`gen_kube.Service` beside)."""

    svc: Service
    base: str  # ns/name/proto/portname with its hash
    endpoints: list[tuple[str, int, str]]  # (ip, port, endpoint chain base)
    affinity: bool

    @property
    def cluster_chain(self) -> str:
        return "service-" + self.base

    @property
    def local_chain(self) -> str:
        return "local-" + self.base

    @property
    def external_chain(self) -> str:
        return "external-" + self.base

    @property
    def firewall_chain(self) -> str:
        return "firewall-" + self.base

    @property
    def port_name(self) -> str:
        """``ns/svc:port``: the comment kube-proxy writes on a no-endpoint element."""
        return self.svc.name


def nft_services(services: list[Service]) -> list[NftService]:
    """kube-proxy's nftables names for :func:`gen_kube.make_services`' services; one in 25 with
    ``sessionAffinity: ClientIP`` (chosen from its name, so the same for every size)."""
    out = []
    for s in services:
        ns, _, rest = s.name.partition("/")
        svc_name, _, port_name = rest.partition(":")
        name = f"{ns}/{svc_name}/{s.proto}/{port_name}"
        eps = [(e.ip, e.port, chain_base(f"{name}__{e.ip}/{e.port}")) for e in s.endpoints]
        affinity = bool(eps) and hashlib.sha256(s.name.encode()).digest()[0] < 10
        out.append(NftService(s, chain_base(name), eps, affinity))
    return out


def _local_endpoints(n: NftService) -> list[tuple[str, int, str]]:
    """The endpoints on this node of an ``externalTrafficPolicy: Local`` service (as gen_kube's
    KUBE-SVL chain: the first half)."""
    return n.endpoints[: max(1, len(n.endpoints) // 2)]


def _elements(elements: dict[str, str], per_line: int | None) -> str:
    """A named set's elements as nft prints them: ``per_line`` a line (None: one a line)."""
    items = list(elements.values())
    if not items:
        return ""
    if per_line is None:
        return "{ " + _NEWLINE.join(items) + " }"
    out = []
    for i, it in enumerate(items):
        if i:
            out.append(_NEWLINE if i % per_line == 0 else ", ")
        out.append(it)
    return "{ " + "".join(out) + " }"


def render(services: list[Service]) -> str:
    """``nft list ruleset`` of a kube-proxy nftables-mode node serving ``services``."""
    nsvcs = nft_services(services)
    # Per set, key -> element: kube-proxy's nftElementStorage keeps one element per key (two
    # services given the same LoadBalancer IP and port: the later one's verdict, as its
    # ensureElem deletes and re-adds a key whose value changed).
    cluster_ips: dict[str, str] = {}
    service_ips: dict[str, str] = {}
    firewall_ips: dict[str, str] = {}
    no_ep_services: dict[str, str] = {}
    no_ep_nodeports: dict[str, str] = {}
    service_nodeports: dict[str, str] = {}
    affinity_sets: list[str] = []
    chains: dict[str, list[str]] = {}

    # setupNFTables: base chains, jump chains, the fixed chains.
    for name, _t, _h, _p in BASE_CHAINS:
        chains[name] = []
    for dst, src, cond in JUMP_CHAINS:
        chains.setdefault(dst, [])
        chains[src].append(f"{cond}jump {dst}")
    for name in ("services", "cluster-ips-check", "masquerading", "mark-for-masquerade"):
        chains.setdefault(name, [])
    chains["mark-for-masquerade"].append(f"meta mark set meta mark | {MASQ_MARK}")
    chains["masquerading"] += [
        f"meta mark & {MASQ_MARK} == 0x00000000 return",
        f"meta mark set meta mark ^ {MASQ_MARK}",
        "masquerade fully-random",
    ]
    chains["cluster-ips-check"] += [
        'ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"',
        f'ip daddr {SERVICE_CIDR} drop comment "Drop traffic to unallocated ClusterIPs"',
    ]
    chains["reject-chain"] = ["reject"]
    chains["service-endpoints-check"].append("ip daddr . meta l4proto . th dport vmap @no-endpoint-services")
    chains["nodeport-endpoints-check"].append(
        "ip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports")
    chains["firewall-check"].append("ip daddr . meta l4proto . th dport vmap @firewall-ips")
    chains["services"] += [
        "ip daddr . meta l4proto . th dport vmap @service-ips",
        "ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports",
    ]

    # syncProxyRules: per service port.
    for n in nsvcs:
        s = n.svc
        p = s.proto
        has_eps = bool(n.endpoints)
        local = s.local_policy and has_eps
        external = has_eps and (s.node_port is not None or s.lb_ip is not None)
        for _ip, _port, eb in n.endpoints:
            chains.setdefault("endpoint-" + eb, [])
        if has_eps:
            chains.setdefault(n.cluster_chain, [])
        if local:
            chains.setdefault(n.local_chain, [])
        if external:
            chains.setdefault(n.external_chain, [])
        fw = bool(s.lb_ip and s.source_ranges)
        if fw:
            chains.setdefault(n.firewall_chain, [])
        key = f"{s.cluster_ip} . {p} . {s.port}"
        cluster_ips[s.cluster_ip] = s.cluster_ip
        if has_eps:
            service_ips[key] = f"{key} : goto {n.cluster_chain}"
        else:
            no_ep_services[key] = f'{key} comment "{n.port_name}" : goto reject-chain'
        if s.lb_ip:
            lb_key = f"{s.lb_ip} . {p} . {s.port}"
            if has_eps:
                service_ips[lb_key] = f"{lb_key} : goto {n.external_chain}"
            if fw:
                firewall_ips[lb_key] = f"{lb_key} : goto {n.firewall_chain}"
            if not has_eps:
                no_ep_services[lb_key] = f'{lb_key} comment "{n.port_name}" : goto reject-chain'
        if s.node_port is not None:
            if has_eps:
                service_nodeports[f"{p} . {s.node_port}"] = f"{p} . {s.node_port} : goto {n.external_chain}"
            else:
                no_ep_nodeports[f"{p} . {s.node_port}"] = \
                    f'{p} . {s.node_port} comment "{n.port_name}" : goto reject-chain'
        if not has_eps:
            continue
        chains[n.cluster_chain].append(
            f"ip daddr {s.cluster_ip} {p} dport {s.port} ip saddr != {POD_CIDR} jump mark-for-masquerade")
        if external:
            ext = chains[n.external_chain]
            if not local:
                ext.append("jump mark-for-masquerade")
            else:
                ext += [
                    f'ip saddr {POD_CIDR} goto {n.cluster_chain} comment "short-circuit pod traffic"',
                    'fib saddr type local jump mark-for-masquerade comment "masquerade local traffic"',
                    f'fib saddr type local goto {n.cluster_chain} comment "short-circuit local traffic"',
                ]
            ext.append(f"goto {n.local_chain if local else n.cluster_chain}")
        if fw:
            chains[n.firewall_chain].append(f"ip saddr != {', '.join(s.source_ranges)} drop"
                                            if len(s.source_ranges) == 1 else
                                            f"ip saddr != {{ {', '.join(s.source_ranges)} }} drop")
        if n.affinity:
            affinity_sets += ["affinity-" + eb for _ip, _port, eb in n.endpoints]
        _balance(chains, n, n.cluster_chain, n.endpoints)
        if local:
            _balance(chains, n, n.local_chain, _local_endpoints(n))
        for ip, port, eb in n.endpoints:
            rules = chains["endpoint-" + eb]
            rules.append(f"ip saddr {ip} jump mark-for-masquerade")
            if n.affinity:
                rules.append(f"update @affinity-{eb} {{ ip saddr }}")
            rules.append(f"meta l4proto {p} dnat to {ip}:{port}")

    out: list[str] = ["table ip kube-proxy {", '\tcomment "rules for kube-proxy"']
    blocks: list[list[str]] = []

    def set_block(kind: str, name: str, type_: str, comment: str | None, elements: str,
                  extra: tuple[str, ...] = ()) -> None:
        b = [f"\t{kind} {name} {{", f"\t\ttype {type_}", *extra]
        if comment:
            b.append(f'\t\tcomment "{comment}"')
        if elements:
            b.append(f"\t\telements = {elements}")
        b.append("\t}")
        blocks.append(b)

    addr_key = "ipv4_addr . inet_proto . inet_service : verdict"
    set_block("set", "cluster-ips", "ipv4_addr", "Active ClusterIPs", _elements(cluster_ips, 2))
    set_block("set", "nodeport-ips", "ipv4_addr", "IPs that accept NodePort traffic", _elements({NODE_IP: NODE_IP}, 2))
    set_block("map", "no-endpoint-services", addr_key,
              "vmap to drop or reject packets to services with no endpoints", _elements(no_ep_services, None))
    set_block("map", "no-endpoint-nodeports", "inet_proto . inet_service : verdict",
              "vmap to drop or reject packets to service nodeports with no endpoints",
              _elements(no_ep_nodeports, None))
    set_block("map", "firewall-ips", addr_key, "destinations that are subject to LoadBalancerSourceRanges",
              _elements(firewall_ips, None))
    set_block("map", "service-ips", addr_key, "ClusterIP, ExternalIP and LoadBalancer IP traffic",
              _elements(service_ips, None))
    set_block("map", "service-nodeports", "inet_proto . inet_service : verdict", "NodePort traffic",
              _elements(service_nodeports, None))
    for name in affinity_sets:
        set_block("set", name, "ipv4_addr", None, "",
                  ("\t\tsize 65535", "\t\tflags dynamic,timeout", f"\t\ttimeout {AFFINITY_TIMEOUT}"))
    base = {name: (t, h, pr) for name, t, h, pr in BASE_CHAINS}
    for name, rules in chains.items():
        b = [f"\tchain {name} {{"]
        if name in base:
            t, h, pr = base[name]
            b.append(f"\t\ttype {t} hook {h} priority {pr}; policy accept;")
        if name == "reject-chain":
            b.append('\t\tcomment "helper for @no-endpoint-services / @no-endpoint-nodeports"')
        b += [f"\t\t{r}" for r in rules]
        b.append("\t}")
        blocks.append(b)
    for i, b in enumerate(blocks):
        if i:
            out.append("")
        out += b
    out.append("}")
    return "\n".join(out) + "\n"


def _balance(chains: dict[str, list[str]], n: NftService, chain: str,
             endpoints: list[tuple[str, int, str]]) -> None:
    """writeServiceToEndpointRules: affinity lookups, then ``numgen random mod N vmap { … }``."""
    rules = chains[chain]
    if n.affinity:
        rules += [f"ip saddr @affinity-{eb} goto endpoint-{eb}" for _ip, _port, eb in endpoints]
    els = ", ".join(f"{i} : goto endpoint-{eb}" for i, (_ip, _port, eb) in enumerate(endpoints))
    rules.append(f"numgen random mod {len(endpoints)} vmap {{ {els} }}")


def kernel_listing(text: str, timeout: float = 600.0) -> dict[str, str]:
    """``nft list ruleset`` and ``nft -j list ruleset`` of ``text`` as the kernel lists it back:
    loaded with ``nft -f`` into a fresh, private network namespace (``unshare -n -m``, root) --
    never the machine's own ruleset.  Raises ``RuntimeError`` with nft's message when it refuses
    the text."""
    with tempfile.TemporaryDirectory(prefix="gen-kube-nft-") as d:
        src, t_out, j_out = f"{d}/in.nft", f"{d}/out.nft", f"{d}/out.json"
        with open(src, "w") as f:
            f.write(text)
        script = 'nft -f "$1" && nft list ruleset > "$2" && nft -j list ruleset > "$3"'
        p = subprocess.run(["unshare", "-n", "-m", "sh", "-c", script, "sh", src, t_out, j_out],
                           capture_output=True, text=True, timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError(f"nft: {p.stderr.strip()[:2000]}")
        with open(t_out) as f_t, open(j_out) as f_j:
            return {"text": f_t.read(), "json": f_j.read()}


def trace_args(services: list[Service]) -> list[str]:
    """``iptexplain trace`` options of a ClusterIP flow to a service with several endpoints from
    the middle of ``service-ips`` (as bench/run.py's iptables case picks one)."""
    mid = len(services) // 2
    s = next((x for x in services[mid:] + services[:mid] if len(x.endpoints) >= 2 and x.proto == "tcp"),
             services[0])
    return ["-p", s.proto, "-s", "10.244.7.7", "-d", s.cluster_ip, "--dport", str(s.port)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("services", type=int, help="number of service ports")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--endpoints", type=int, default=None, help="same endpoint count for every service")
    ap.add_argument("-o", "--output", default="-")
    ap.add_argument("--kernel", action="store_true",
                    help="the kernel's listing of the text (loaded in a private namespace; root)")
    ap.add_argument("--json", action="store_true", help="with --kernel: nft -j list ruleset")
    a = ap.parse_args(argv)
    text = render(make_services(a.services, a.seed, a.endpoints))
    if a.kernel:
        text = kernel_listing(text)["json" if a.json else "text"]
    if a.output == "-":
        sys.stdout.write(text)
    else:
        with open(a.output, "w") as f:
            f.write(text)
    return 0


__all__ = ["chain_base", "gen_kube", "kernel_listing", "nft_services", "render", "trace_args"]

if __name__ == "__main__":
    sys.exit(main())
