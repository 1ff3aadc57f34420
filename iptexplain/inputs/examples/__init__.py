"""Bundled example rulesets, so a newcomer sees a real trace right after ``pip install``.

``iptexplain trace --example docker --dport 9525`` traces the ruleset behind the seed blog post
(one container publishing host port 9525); ``--example kube -p udp -d 10.96.0.10 --dport 53``
traces a kube-proxy node where a Service has two endpoints, so the trace forks.

Each example is a real ruleset plus the host it ran on: the addresses and routes its rules
imply, written down here (a ruleset alone does not say which interface carries the default
route).  The trace's notes say that the host model is the example's.
"""

from __future__ import annotations

import pkgutil
from dataclasses import dataclass, field

from iptexplain.graph import Ruleset
from iptexplain.host.model import HostModel, IfAddr, Interface, Route
from iptexplain.parse import parse_text


@dataclass(frozen=True)
class Example:
    name: str
    file: str
    about: str
    try_: str  # a command line that shows something interesting
    interfaces: tuple[tuple[str, str, tuple[str, ...]], ...]  # (name, kind, addresses)
    routes: tuple[tuple[str, str, str | None], ...]  # (dst, dev, via)
    containers: dict[str, dict] = field(default_factory=dict)
    sysctls: dict[str, str] = field(default_factory=dict)


EXAMPLES: dict[str, Example] = {
    "docker": Example(
        name="docker",
        file="docker.save",
        about="Docker host: container gallant_lumiere (172.17.0.6) publishes host port 9525",
        try_="iptexplain trace --example docker -p tcp -s 203.0.113.7 -i eth0 --dport 9525",
        interfaces=(
            ("lo", "loopback", ("127.0.0.1/8",)),
            ("eth0", "ether", ("198.51.100.1/24",)),
            ("docker0", "bridge", ("172.17.0.1/16",)),
        ),
        routes=(
            ("default", "eth0", "198.51.100.254"),
            ("198.51.100.0/24", "eth0", None),
            ("172.17.0.0/16", "docker0", None),
        ),
        containers={
            "172.17.0.6": {"name": "gallant_lumiere", "image": "aylei/aliyun-exporter:0.3.1",
                           "ports": ["0.0.0.0:9525->9525/tcp", "9522/tcp"]},
        },
        sysctls={"net.ipv4.ip_forward": "1", "net.bridge.bridge-nf-call-iptables": "1"},
    ),
    "kube": Example(
        name="kube",
        file="kube.save",
        about="kube-proxy node: kube-dns 10.96.0.10 has two endpoints, chosen at random",
        try_="iptexplain trace --example kube -p udp -i cni0 -s 10.244.0.5 -d 10.96.0.10 --dport 53",
        interfaces=(
            ("lo", "loopback", ("127.0.0.1/8",)),
            ("eth0", "ether", ("172.31.7.91/20",)),
            ("flannel.1", "vxlan", ("10.244.0.0/32",)),
            ("cni0", "bridge", ("10.244.0.1/24",)),
        ),
        routes=(
            ("default", "eth0", "172.31.0.1"),
            ("172.31.0.0/20", "eth0", None),
            ("10.244.0.0/24", "cni0", None),
        ),
        sysctls={"net.ipv4.ip_forward": "1", "net.bridge.bridge-nf-call-iptables": "1"},
    ),
}


def names() -> list[str]:
    return sorted(EXAMPLES)


def example_text(name: str) -> str:
    ex = EXAMPLES[name]
    # pkgutil (loaded already by the extension registry) rather than importlib.resources: its
    # import is ~10 ms of a ~100 ms trace of an example
    data = pkgutil.get_data(__name__, ex.file)
    assert data is not None, f"example {name}: {ex.file} is missing from the package"
    return data.decode("utf-8")


def load_example(name: str, family: int | None = None) -> tuple[Ruleset, HostModel]:
    """The example's ruleset (source ``example:NAME``) and its host model."""
    ex = EXAMPLES[name]
    rs = parse_text(example_text(name), ex.file, "save", family)
    host = HostModel(source=f"example {name}")
    for iname, kind, addrs in ex.interfaces:
        ifc = Interface(iname, kind=kind)
        for a in addrs:
            address, _, plen = a.partition("/")
            ifc.addrs.append(IfAddr(address, int(plen), 6 if ":" in address else 4))
        host.add_interface(ifc)
    for dst, dev, via in ex.routes:
        host.routes.append(Route(dst, dev, via=via))
    host.containers = {k: dict(v) for k, v in ex.containers.items()}
    host.sysctls.update(ex.sysctls)
    host.notes.append(f"example {name}: {ex.about}; host addresses and routes are the example's")
    return rs, host
