"""Where packets enter netfilter: the entry scenarios the analyses trace whole.

A scenario is a :class:`~iptexplain.netfilter.trace.Flow` with every field the user did not
give left open -- any source that can arrive on the interface, any destination (routing then
forks between the host's own addresses and each route), any port -- one per way into the
stack: arriving on each interface of the host (from the outside world, from containers on a
bridge), and sent by the host itself.  Each protocol family of interest is its own scenario
(TCP's first packet is a SYN, ICMP's an echo request: what ``trace`` assumes for a NEW flow).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from iptexplain.host import HostModel
from iptexplain.hostinfer import complete_host
from iptexplain.graph import Ruleset
from iptexplain.netfilter.flowstate import external_iface
from iptexplain.netfilter.trace import Flow

PROTOS = ("tcp", "udp", "icmp")
ANY = {4: "0.0.0.0/0", 6: "::/0"}


@dataclass
class Scenario:
    """One entry set: its flow and how to say where it comes from."""

    name: str  # "arriving on eth0", "from containers on docker0", "from this host"
    flow: Flow

    @property
    def key(self) -> str:
        return f"{self.name} ({self.flow.proto or 'any protocol'})"


def shared_host(rulesets: list[Ruleset], host: HostModel | None, family: int,
                iniface: str | None = None) -> HostModel:
    """One host model for several rulesets (diff compares them on the same host): the given
    one, completed from what each ruleset says about the host (every inference noted)."""
    h = host
    for rs in rulesets:
        h = complete_host(h, rs, Flow(family=family, iniface=iniface))
    assert h is not None
    return h


def entry_points(host: HostModel) -> list[tuple[str, str | None, bool]]:
    """(name, in-interface, from the host) for each way into the stack, the external interface
    first."""
    ext = external_iface(host, 4)
    names = [ext] + sorted(n for n, i in host.interfaces.items()
                           if n != ext and n != "lo" and i.kind != "loopback")
    out: list[tuple[str, str | None, bool]] = []
    for n in names:
        i = host.interfaces.get(n)
        bridge = i is not None and i.kind == "bridge"
        out.append((f"from containers on {n}" if bridge else f"arriving on {n}", n, False))
    out.append(("from this host", None, True))
    return out


def scenarios(host: HostModel, template: Flow) -> list[Scenario]:
    """The entry scenarios the user's flow options leave: the options narrow every scenario; an
    in-interface, ``--from-host`` or ``--from-container`` picks the one entry point."""
    fam = template.family
    if template.from_host or template.from_container or template.iniface:
        if template.from_host:
            name = "from this host"
        elif template.from_container:
            name = f"from container {template.from_container}"
        else:
            name = f"arriving on {template.iniface}"
        points = [(name, template.iniface, template.from_host)]
    else:
        points = entry_points(host)
    protos = [template.proto] if template.proto else list(PROTOS)
    out = []
    for name, iface, local in points:
        for p in protos:
            if p == "icmp" and fam == 6:
                p = "ipv6-icmp"
            flow = dataclasses.replace(template, proto=p, iniface=iface, from_host=local,
                                       dst=template.dst or ANY[fam])
            if p not in ("tcp", "udp", "sctp", "dccp", "udplite"):
                flow.sport = flow.dport = None
            out.append(Scenario(name, flow))
    return out
