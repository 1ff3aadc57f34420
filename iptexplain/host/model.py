"""The host model: the interfaces, addresses and routes that decide ``addrtype``, INPUT versus
FORWARD, and the address MASQUERADE takes.

Sources, in order of precedence: the user's options, saved ``ip -j addr`` / ``ip -j route`` (or
plain ``ip addr`` / ``ip route``) output, the live host -- and what is still missing is inferred
from the ruleset itself (Docker's ``-s 172.17.0.0/16 ! -o docker0 -j MASQUERADE`` says docker0
carries 172.17.0.0/16).  Every inference is recorded in ``notes`` so the user sees it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from iptexplain.core.addr import Address, parse_address


@dataclass(slots=True)
class IfAddr:
    """An address on an interface: the host address and its prefix (``172.17.0.1/16``)."""

    address: str  # the host address, "172.17.0.1"
    prefixlen: int
    family: int = 4

    @property
    def network(self) -> Address:
        return parse_address(f"{self.address}/{self.prefixlen}")

    def __str__(self) -> str:
        return f"{self.address}/{self.prefixlen}"


@dataclass(slots=True)
class Interface:
    name: str
    addrs: list[IfAddr] = field(default_factory=list)
    kind: str = ""  # "bridge", "veth", "loopback", "ether", … when known
    up: bool = True
    inferred: bool = False  # made up from the ruleset, not seen


@dataclass(slots=True)
class Route:
    dst: str  # "default" or a prefix "172.17.0.0/16"
    dev: str
    via: str | None = None
    src: str | None = None  # preferred source
    family: int = 4
    type: str = "unicast"  # unicast, local, broadcast, blackhole, unreachable, prohibit
    table: str = "main"
    inferred: bool = False


@dataclass(slots=True)
class HostModel:
    interfaces: dict[str, Interface] = field(default_factory=dict)
    routes: list[Route] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)  # net.ipv4.ip_forward, …
    notes: list[str] = field(default_factory=list)  # where each fact came from, inferences
    source: str = ""  # "options", "ip -j", "live", "inferred"
    containers: dict[str, dict] = field(default_factory=dict)  # address -> {name, image, ports}

    def add_interface(self, iface: Interface) -> Interface:
        have = self.interfaces.get(iface.name)
        if have is None:
            self.interfaces[iface.name] = iface
            return iface
        for a in iface.addrs:
            if str(a) not in {str(x) for x in have.addrs}:
                have.addrs.append(a)
        return have
