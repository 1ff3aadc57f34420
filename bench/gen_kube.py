#!/usr/bin/env python3
"""Generate kube-proxy-shaped ``iptables-save`` output at any scale (iptables mode, 1.28+ shapes).

The largest iptables rulesets in production are kube-proxy's: every Service port gets a line in
``KUBE-SERVICES``, a ``KUBE-SVC-*`` chain that load-balances with a cascade of
``-m statistic --mode random`` rules, and one ``KUBE-SEP-*`` chain per endpoint that marks hairpin
traffic for masquerading and DNATs to the pod.  This script writes what ``iptables-save`` (nf_tables
backend, v1.8.x) prints on such a node, so that iptexplain can be measured where it matters and
checked against the kernel on the very same text.

The shapes are the ones of the real dumps in the corpus (``kubernetes/k8s-ctr_kubeproxy-flannel…``)
and of kube-proxy's own ``TestOverallIPTablesRules``, put back in iptables-save's canonical order
and spelling:

* ``KUBE-SERVICES``: ``-d CLUSTERIP/32 -p tcp -m comment --comment "ns/svc:port cluster IP" -m tcp
  --dport N -j KUBE-SVC-HASH`` (plus ``external IP`` / ``loadbalancer IP`` rules to ``KUBE-EXT-*``),
  ending with the ``addrtype --dst-type LOCAL -j KUBE-NODEPORTS`` rule;
* ``KUBE-SVC-*``: ``! -s PODCIDR … -j KUBE-MARK-MASQ`` then one rule per endpoint, all but the last
  with ``-m statistic --mode random --probability 1/(n-i)`` printed as iptables-save prints the
  kernel's fixed-point value (``0.33333333349``);
* ``KUBE-SEP-*``: ``-s EP/32 -j KUBE-MARK-MASQ`` and ``-p tcp -m tcp -j DNAT --to-destination EP:PORT``;
* ``KUBE-NODEPORTS`` / ``KUBE-EXT-*`` for NodePort and LoadBalancer services (some with
  ``externalTrafficPolicy: Local``: ``KUBE-SVL-*``), ``KUBE-MARK-MASQ``, ``KUBE-POSTROUTING``
  (``MARK --set-xmark 0x4000/0x0``, ``MASQUERADE --random-fully``), and in filter
  ``KUBE-FIREWALL``, ``KUBE-FORWARD``, ``KUBE-PROXY-FIREWALL``, ``KUBE-EXTERNAL-SERVICES``,
  ``KUBE-SERVICES … has no endpoints -j REJECT``, health-check ``KUBE-NODEPORTS``.

Chain and endpoint names are derived like kube-proxy derives them (base32 of a SHA-256 of the
service port name, protocol and endpoint), and the output is deterministic for a given seed.
10,000 services make about 140,000 lines.

Usage::

    python bench/gen_kube.py 10000 > kube-10k.save
    python bench/gen_kube.py 50 --endpoints 3 --seed 7 -o small.save
    python bench/gen_kube.py 20 --manifest m.json     # also the services, as JSON
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import ipaddress
import json
import random
import re
import sys
from dataclasses import asdict, dataclass, field

POD_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/12"
NODE_IP = "192.168.0.10"
MASQ_MARK = "0x4000"
HEADER_TIME = "Sat Jan 24 14:00:18 2026"

# Service port shapes seen on real clusters, weighted: (port name, protocol, port, targetPort).
PORT_SHAPES: tuple[tuple[str, str, int, int, int], ...] = (
    ("http", "tcp", 80, 8080, 30),
    ("https", "tcp", 443, 8443, 20),
    ("grpc", "tcp", 9090, 9090, 8),
    ("metrics", "tcp", 9153, 9153, 8),
    ("web", "tcp", 8080, 8080, 12),
    ("dns", "udp", 53, 53, 3),
    ("dns-tcp", "tcp", 53, 53, 3),
    ("redis", "tcp", 6379, 6379, 4),
    ("postgres", "tcp", 5432, 5432, 4),
    ("syslog", "udp", 514, 5140, 2),
    ("amqp", "tcp", 5672, 5672, 3),
    ("sctp-sig", "sctp", 3868, 3868, 1),
)
# Endpoint counts 0..5, weighted (an average near 2.6 gives kube-proxy's ~14 lines a service).
ENDPOINT_WEIGHTS = (2, 26, 24, 22, 14, 12)
NAMESPACES = ("default", "kube-system", "monitoring", "payments", "search", "checkout", "auth",
              "media", "ingress", "logging", "data", "ml", "batch", "edge", "billing")


@dataclass
class Endpoint:
    ip: str
    port: int
    sep: str  # KUBE-SEP-* chain


@dataclass
class Service:
    """One service port as kube-proxy sees it (``ns/name:port``)."""

    name: str  # "ns/svc:port"
    proto: str
    cluster_ip: str
    port: int
    svc_chain: str
    endpoints: list[Endpoint] = field(default_factory=list)
    node_port: int | None = None
    lb_ip: str | None = None
    local_policy: bool = False  # externalTrafficPolicy: Local
    ext_chain: str | None = None
    svl_chain: str | None = None
    fw_chain: str | None = None
    source_ranges: tuple[str, ...] = ()


def _hash(prefix: str, *parts: str) -> str:
    """kube-proxy's chain names: base32(sha256(parts))[:16] after the prefix."""
    digest = hashlib.sha256("".join(parts).encode()).digest()
    return prefix + base64.b32encode(digest).decode()[:16]


def probability_text(p: float) -> str:
    """The probability as iptables-save prints it: the kernel keeps ``lround(p * 2^31)``."""
    fixed = round(p * 0x80000000)
    return f"{fixed / 0x80000000:.11f}"


def make_services(n: int, seed: int = 1, endpoints: int | None = None) -> list[Service]:
    """``n`` service ports; ``endpoints`` forces the same endpoint count on every one."""
    rng = random.Random(seed)
    svc_net = ipaddress.IPv4Network(SERVICE_CIDR)
    pod_net = ipaddress.IPv4Network(POD_CIDR)
    shapes = [s[:4] for s in PORT_SHAPES]
    weights = [s[4] for s in PORT_SHAPES]
    cluster_ips = rng.sample(range(2, svc_net.num_addresses - 1), n)
    pod_ips = rng.sample(range(2, pod_net.num_addresses - 1), min(pod_net.num_addresses - 3, 6 * n + 10))
    pod_i = 0
    node_ports = rng.sample(range(30000, 32768), min(n, 2768))
    np_i = 0
    out: list[Service] = []
    for k in range(n):
        pname, proto, port, tport = rng.choices(shapes, weights)[0]
        ns = NAMESPACES[k % len(NAMESPACES)] if k >= 2 else "kube-system"
        name = f"{ns}/svc-{k:05d}:{pname}"
        if k == 0:
            name, proto, port, tport = "default/kubernetes:https", "tcp", 443, 6443
        cip = str(svc_net.network_address + (1 if k == 0 else cluster_ips[k]))
        svc = Service(name, proto, cip, port, _hash("KUBE-SVC-", name, proto))
        count = endpoints if endpoints is not None else rng.choices(range(6), ENDPOINT_WEIGHTS)[0]
        if k == 0:
            count = max(count, 1)
        for _ in range(count):
            ip = str(pod_net.network_address + pod_ips[pod_i % len(pod_ips)])
            pod_i += 1
            svc.endpoints.append(Endpoint(ip, tport, _hash("KUBE-SEP-", name, proto, f"{ip}:{tport}")))
        kind = rng.random() if k else 1.0
        if kind < 0.15 and np_i < len(node_ports) and proto != "sctp":
            svc.node_port = node_ports[np_i]
            np_i += 1
            svc.ext_chain = _hash("KUBE-EXT-", name, proto)
            if kind < 0.05:
                svc.lb_ip = f"203.0.{113 + (k // 250) % 3}.{k % 250 + 1}"
                if kind < 0.01:
                    svc.source_ranges = ("198.51.100.0/24",)
                    svc.fw_chain = _hash("KUBE-FW-", name, proto)
            if kind < 0.04 and svc.endpoints:
                svc.local_policy = True
                svc.svl_chain = _hash("KUBE-SVL-", name, proto)
        out.append(svc)
    return out


def render(services: list[Service], with_filter: bool = True, with_mangle: bool = True) -> str:
    """The iptables-save text of a kube-proxy node serving ``services``."""
    lines: list[str] = []
    w = lines.append
    gen = f"# Generated by iptables-save v1.8.10 (nf_tables) on {HEADER_TIME}"
    done = f"# Completed on {HEADER_TIME}"

    if with_mangle:
        w(gen)
        w("*mangle")
        for c in ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"):
            w(f":{c} ACCEPT [0:0]")
        for c in ("KUBE-IPTABLES-HINT", "KUBE-KUBELET-CANARY", "KUBE-PROXY-CANARY"):
            w(f":{c} - [0:0]")
        w("COMMIT")
        w(done)

    if with_filter:
        w(gen)
        w("*filter")
        w(":INPUT ACCEPT [0:0]")
        w(":FORWARD ACCEPT [0:0]")
        w(":OUTPUT ACCEPT [0:0]")
        for c in ("KUBE-EXTERNAL-SERVICES", "KUBE-FIREWALL", "KUBE-FORWARD", "KUBE-KUBELET-CANARY",
                  "KUBE-NODEPORTS", "KUBE-PROXY-CANARY", "KUBE-PROXY-FIREWALL", "KUBE-SERVICES"):
            w(f":{c} - [0:0]")
        w('-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL')
        w('-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS')
        w('-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES')
        w("-A INPUT -j KUBE-FIREWALL")
        w('-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL')
        w('-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD')
        w('-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES')
        w('-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES')
        w('-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL')
        w('-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES')
        w("-A OUTPUT -j KUBE-FIREWALL")
        for s in services:
            if s.node_port is not None and not s.endpoints:
                w(f'-A KUBE-EXTERNAL-SERVICES -p {s.proto} -m comment --comment "{s.name} has no endpoints" '
                  f"-m addrtype --dst-type LOCAL -m {s.proto} --dport {s.node_port} -j DROP")
        w('-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet connections" '
          "-m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP")
        w("-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP")
        w(f'-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark {MASQ_MARK}/{MASQ_MARK} -j ACCEPT')
        w('-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT')
        for s in services:
            if s.local_policy and s.node_port is not None:
                hc = 32000 + (int(s.svc_chain.encode().hex(), 16) % 700)
                w(f'-A KUBE-NODEPORTS -p tcp -m comment --comment "{s.name} health check node port" -m tcp --dport {hc} -j ACCEPT')
        for s in services:
            if s.fw_chain and s.lb_ip:
                w(f'-A KUBE-PROXY-FIREWALL -d {s.lb_ip}/32 -p {s.proto} -m comment --comment '
                  f'"{s.name} traffic not accepted by {s.fw_chain}" -m {s.proto} --dport {s.port} -j DROP')
        for s in services:
            if not s.endpoints:
                w(f'-A KUBE-SERVICES -d {s.cluster_ip}/32 -p {s.proto} -m comment --comment "{s.name} has no endpoints" '
                  f"-m {s.proto} --dport {s.port} -j REJECT --reject-with icmp-port-unreachable")
        w("COMMIT")
        w(done)

    # nat: the bulk of it.
    w(gen)
    w("*nat")
    for c in ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"):
        w(f":{c} ACCEPT [0:0]")
    chains: dict[str, list[str]] = {
        "KUBE-KUBELET-CANARY": [], "KUBE-MARK-MASQ": [], "KUBE-NODEPORTS": [],
        "KUBE-POSTROUTING": [], "KUBE-PROXY-CANARY": [], "KUBE-SERVICES": [],
    }
    chains["KUBE-MARK-MASQ"].append(f"-j MARK --set-xmark {MASQ_MARK}/{MASQ_MARK}")
    chains["KUBE-POSTROUTING"] += [
        f"-m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN",
        f"-j MARK --set-xmark {MASQ_MARK}/0x0",
        '-m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
    ]
    for s in services:
        p = s.proto
        if not s.endpoints:
            continue
        chains["KUBE-SERVICES"].append(
            f'-d {s.cluster_ip}/32 -p {p} -m comment --comment "{s.name} cluster IP" -m {p} --dport {s.port} -j {s.svc_chain}'
        )
        if s.lb_ip:
            dest = s.fw_chain or s.ext_chain
            chains["KUBE-SERVICES"].append(
                f'-d {s.lb_ip}/32 -p {p} -m comment --comment "{s.name} loadbalancer IP" -m {p} --dport {s.port} -j {dest}'
            )
        svc = chains.setdefault(s.svc_chain, [])
        svc.append(f'! -s {POD_CIDR} -d {s.cluster_ip}/32 -p {p} -m comment --comment "{s.name} cluster IP" '
                   f"-m {p} --dport {s.port} -j KUBE-MARK-MASQ")
        n = len(s.endpoints)
        for i, ep in enumerate(s.endpoints):
            stat = f" -m statistic --mode random --probability {probability_text(1.0 / (n - i))}" if i < n - 1 else ""
            svc.append(f'-m comment --comment "{s.name} -> {ep.ip}:{ep.port}"{stat} -j {ep.sep}')
            chains[ep.sep] = [
                f'-s {ep.ip}/32 -m comment --comment "{s.name}" -j KUBE-MARK-MASQ',
                f'-p {p} -m comment --comment "{s.name}" -m {p} -j DNAT --to-destination {ep.ip}:{ep.port}',
            ]
        if s.node_port is not None and s.ext_chain:
            chains["KUBE-NODEPORTS"].append(
                f'-p {p} -m comment --comment "{s.name}" -m {p} --dport {s.node_port} -j {s.ext_chain}'
            )
            if s.local_policy and s.svl_chain:
                chains[s.ext_chain] = [
                    f'-s {POD_CIDR} -m comment --comment "pod traffic for {s.name} external destinations" -j {s.svc_chain}',
                    f'-m comment --comment "masquerade LOCAL traffic for {s.name} external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ',
                    f'-m comment --comment "route LOCAL traffic for {s.name} external destinations" -m addrtype --src-type LOCAL -j {s.svc_chain}',
                    f"-j {s.svl_chain}",
                ]
                local = s.endpoints[: max(1, n // 2)]
                svl = chains.setdefault(s.svl_chain, [])
                for i, ep in enumerate(local):
                    stat = (f" -m statistic --mode random --probability {probability_text(1.0 / (len(local) - i))}"
                            if i < len(local) - 1 else "")
                    svl.append(f'-m comment --comment "{s.name} -> {ep.ip}:{ep.port}"{stat} -j {ep.sep}')
            else:
                chains[s.ext_chain] = [
                    f'-m comment --comment "masquerade traffic for {s.name} external destinations" -j KUBE-MARK-MASQ',
                    f"-j {s.svc_chain}",
                ]
            if s.fw_chain:
                chains[s.fw_chain] = [
                    f'-s {r} -m comment --comment "{s.name} loadbalancer IP" -j {s.ext_chain}' for r in s.source_ranges
                ] + [f'-m comment --comment "other traffic to {s.name} will be dropped by KUBE-PROXY-FIREWALL"']
    chains["KUBE-SERVICES"].append(
        '-m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" '
        "-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"
    )
    names = sorted(chains)
    for c in names:
        w(f":{c} - [0:0]")
    w('-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES')
    w('-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES')
    w('-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING')
    for c in names:
        for r in chains[c]:
            w(f"-A {c} {r}")
    w("COMMIT")
    w(done)
    return "\n".join(lines) + "\n"


# kube-proxy's restore input: which service a rule is written for (its comment names it).
_SERVICE_OF = re.compile(r'--comment "[^"]*?(?:default/kubernetes:https|/svc-(\d{5}):)')
_LAST_RULE = "NOTE: this must be the last rule in this chain"


# Within one service, the order syncProxyRules writes its chains in: the KUBE-SERVICES /
# KUBE-NODEPORTS (and filter) rules, then the internal, local, external and firewall chains,
# then the endpoints' chains.
_CHAIN_ORDER = ("KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-FW-", "KUBE-SEP-")


def _chain_rank(chain: str) -> int:
    return next((k + 1 for k, p in enumerate(_CHAIN_ORDER) if chain.startswith(p)), 0)


def _restore_group(rule: str) -> tuple[int, int]:
    """When kube-proxy's sync writes ``rule``: -1 for the fixed rules written before the service
    loop, the service's index inside the loop (then its chains in the loop's order), after the
    loop for the nodeports rule."""
    if _LAST_RULE in rule:
        return (1 << 30, 0)
    m = _SERVICE_OF.search(rule)
    if m is None:
        return (-1, 0)
    return (int(m.group(1)) if m.group(1) else 0, _chain_rank(rule.split(" ", 2)[1]))


def render_restore(services: list[Service]) -> str:
    """The same ruleset as :func:`render`, laid out as kube-proxy's iptables-mode sync writes its
    ``iptables-restore --noflush`` input (pkg/proxy/iptables/proxier.go, syncProxyRules): no
    ``# Generated by`` / ``# Completed`` lines, per table every ``:CHAIN - [0:0]`` line first
    (the chains buffer), then the rules buffer -- the fixed rules, then service by service each
    service's ``KUBE-SERVICES``/``KUBE-NODEPORTS``/``KUBE-SVC-*``/``KUBE-SEP-*`` rules together, so
    that a chain like ``KUBE-SERVICES`` comes in one run per service -- and the nodeports rule
    last.  Built-in chains are not declared (kube-proxy never restores them).  The jumps from the
    built-in chains, which kube-proxy adds with ``iptables -I`` rather than in this input, are
    written among the fixed rules so that the ruleset is the same as :func:`render`'s: the
    layout differs, the rules do not (checked against the real iptables in
    ``tests/test_bench_gen.py``)."""
    out: list[str] = []
    table = ""
    decls: list[str] = []
    rules: list[str] = []

    def flush() -> None:
        # A service's own chains (KUBE-SVC-…, KUBE-SEP-…) are written with the service, every
        # rule of them -- some (`-j KUBE-SVC-…' in KUBE-EXT-…) name no service in a comment.
        own: dict[str, tuple[int, int]] = {}
        for r in rules:
            c = r.split(" ", 2)[1]
            g = _restore_group(r)
            if _chain_rank(c) and g[0] >= 0:
                own.setdefault(c, g)

        def group(r: str) -> tuple[int, int]:
            return own.get(r.split(" ", 2)[1]) or _restore_group(r)

        first: dict[str, tuple[int, int]] = {}
        for r in rules:
            first.setdefault(r.split(" ", 2)[1], group(r))
        order = sorted(range(len(decls)), key=lambda i: first.get(decls[i][1:].split(" ", 1)[0], (-1, 0)))
        out.append(f"*{table}")
        out.extend(decls[i] for i in order)
        out.extend(sorted(rules, key=group))  # stable: each chain keeps its order
        out.append("COMMIT")

    builtin = {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"}
    for line in render(services).splitlines():
        if line.startswith("*"):
            table, decls, rules = line[1:], [], []
        elif line.startswith(":"):
            if line[1:].split(" ", 1)[0] not in builtin:
                decls.append(line)
        elif line.startswith("-A "):
            rules.append(line)
        elif line == "COMMIT":
            flush()
    return "\n".join(out) + "\n"


def iptables_listings(save_text: str, table: str = "nat", backend: str = "nft",
                      timeout: float = 600.0) -> dict[str, str]:
    """``iptables -t TABLE -S``, ``-nvL`` and ``-nL`` of ``save_text`` as the real
    iptables prints them: restored into a fresh, private network namespace (``unshare -n -m``,
    root) and listed there -- never the machine's own firewall.  Raises ``RuntimeError`` with
    iptables' message when it refuses the text."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="gen-kube-") as d:
        src, s_out, l_out, n_out = f"{d}/in.save", f"{d}/S.txt", f"{d}/nvL.txt", f"{d}/nL.txt"
        with open(src, "w") as f:
            f.write(save_text)
        script = (f'iptables-{backend}-restore < "$1" && iptables-{backend} -t {table} -S > "$2" '
                  f'&& iptables-{backend} -t {table} -nvL > "$3" && iptables-{backend} -t {table} -nL > "$4"')
        p = subprocess.run(["unshare", "-n", "-m", "sh", "-c", script, "sh", src, s_out, l_out, n_out],
                           capture_output=True, text=True, timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError(f"iptables-{backend}: {p.stderr.strip()}")
        with open(s_out) as f_s, open(l_out) as f_l, open(n_out) as f_n:
            return {"S": f_s.read(), "nvL": f_l.read(), "nL": f_n.read()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("services", type=int, help="number of service ports")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--endpoints", type=int, default=None, help="same endpoint count for every service")
    ap.add_argument("-o", "--output", default="-")
    ap.add_argument("--manifest", help="also write the services as JSON here")
    ap.add_argument("--nat-only", action="store_true", help="only the nat table")
    ap.add_argument("--restore-input", action="store_true",
                    help="kube-proxy's own iptables-restore input layout (no header, runs per service)")
    a = ap.parse_args(argv)
    services = make_services(a.services, a.seed, a.endpoints)
    text = render_restore(services) if a.restore_input else \
        render(services, with_filter=not a.nat_only, with_mangle=not a.nat_only)
    if a.output == "-":
        sys.stdout.write(text)
    else:
        with open(a.output, "w") as f:
            f.write(text)
    if a.manifest:
        with open(a.manifest, "w") as f:
            json.dump([asdict(s) for s in services], f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
