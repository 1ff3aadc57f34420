"""Kernel lab: the real Linux netfilter as the judge of what a ruleset does to a packet.

iptexplain claims things like "this SYN is DNATed in nat PREROUTING, then accepted by
filter DOCKER".  Those claims are only worth something if the kernel agrees, so the test
suite builds a throw-away network inside private namespaces, loads the ruleset there with
the real ``iptables-*-restore``, sends a real connection and records what the kernel did:

* which rules the packet hit, in order (``xtables-monitor --trace``, nft backend only),
* which rule counters moved (``iptables-save -c`` deltas, both backends),
* where the packet arrived (raw-socket sniffers in every namespace, so the addresses are
  the ones *after* NAT), and what the sender saw (connected / RST / ICMP error / nothing).

Isolation is the first design goal: nothing here touches the machine's own network
namespace.  One *holder* process (``unshare -n -m``) owns a fresh network namespace (the
lab's "host", where the ruleset lives) and a private mount namespace with a tmpfs on
/run, so ``ip netns add`` for the peers (clients, containers) creates nothing outside the
lab.  Every other process of a lab (agents, the trace monitor) joins the holder's process
group and gets PR_SET_PDEATHSIG, so :meth:`Lab.close` (or the death of the test run)
removes everything.

Exactness is the second: an observation holds the flow's packets and nothing else, on a
loaded machine too (where softirqs run late and timers fire late).  The lab host sends no
traffic of its own (no IGMP/MLD reports: link-local reports off, bridges without multicast
snooping); every connection ends with the sender's RST (SO_LINGER 0), and accepted sockets
are closed only once that RST has arrived; the counter snapshots are taken once the flow's
conntrack entry is closed and the counters are quiet; listeners are shut down (not just
closed) so that their port is free for the next flow; and conntrack, flushed before each
flow, must hold only the flow's connection afterwards, or the flow is sent again
(:meth:`Lab.send`).

The module is self-contained (standard library only; it must not import iptexplain).  It
also runs as a script: ``python kernel_lab.py --agent`` is the small in-namespace agent
that sends and sniffs packets.

Usage::

    topo = Topology(ifaces=[
        HostIface("eth0", "198.51.100.1/24", peers=[Peer("client", "198.51.100.2/24")]),
        HostIface("docker0", "172.17.0.1/16", bridge=True,
                  peers=[Peer("c1", "172.17.0.6/16"), Peer("c2", "172.17.0.7/16")]),
    ])
    with Lab(topo) as lab:                       # or the kernel_labs fixture (conftest)
        lab.load(open("fixtures/seed-docker.v4.save").read(), backend="nft")
        obs = lab.send(Flow("client", "198.51.100.1", 9525))
        obs.outcome             # "delivered" | "rejected" | "dropped"
        obs.delivery            # Arrival(ns="c1", src="198.51.100.2", dst="172.17.0.6", ...)
        obs.path()              # [("nat", "PREROUTING", "-A PREROUTING ... -j DOCKER",
                                #   "JUMP:DOCKER"), ...]  (nft backend only)
        obs.hits()              # {("filter", "DOCKER", "-A DOCKER ... -j ACCEPT"), ...}
        print(obs.describe())
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno as errno_mod
import ipaddress
import json
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Mapping, Optional, Sequence

HOST = "host"
"""Name of the lab's host namespace (the one holding the ruleset) in flows and arrivals."""

Backend = Literal["nft", "legacy"]
BACKENDS: tuple[str, ...] = ("nft", "legacy")

# Socket constants Python 3.11 does not export.
_IP_PKTINFO = 8
_IP_RECVERR = 11
_IP_MTU_DISCOVER = 10
_IP_PMTUDISC_DONT = 0
_IPV6_RECVERR = 25
_PR_SET_PDEATHSIG = 1
_TCP_ESTABLISHED = 1  # tcpi_state, the first byte of TCP_INFO

MARKER_PORT = 9
"""UDP port on 127.0.0.1 / ::1 in the host namespace used to fence trace output per flow."""


class LabError(RuntimeError):
    """A lab operation failed (a command inside the lab, an agent, the monitor)."""


# --------------------------------------------------------------------------------------
# Topology


def _tuple(value: Any) -> tuple:
    if value is None:
        return ()
    if isinstance(value, (str, bytes)):
        return (value,)
    return tuple(value)


def _iface(addr: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    """An address with its prefix; a bare address means a host route (/32, /128)."""
    return ipaddress.ip_interface(addr)


@dataclass(frozen=True)
class Peer:
    """A namespace behind a host interface (an outside client, a container, a pod).

    ``addrs``: the first address of each family is the primary one (default gateway
    lookups, reply routes); further addresses let a flow use any source address.  An
    address outside the host interface's subnets gets a host route on the lab host.
    """

    name: str
    addrs: tuple[str, ...] = ()
    iface: str = "eth0"
    host_port: Optional[str] = None
    """Host-side veth name when the peer sits on a bridge (default ``veth<name>``)."""
    default_route: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "addrs", _tuple(self.addrs))
        if self.name == HOST or not re.fullmatch(r"[A-Za-z0-9_.-]{1,32}", self.name):
            raise ValueError(f"bad peer namespace name {self.name!r}")

    def addresses(self, family: int) -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
        return [a for a in map(_iface, self.addrs) if a.version == family]

    @property
    def port_name(self) -> str:
        return (self.host_port or f"veth{self.name}")[:15]


@dataclass(frozen=True)
class HostIface:
    """An interface of the lab host, named as the ruleset names it (eth0, docker0, cni0…).

    Without peers it is a dummy interface; with one peer (and ``bridge=False``) it is one
    end of a veth pair whose other end is the peer's ``iface``; with ``bridge=True`` it
    is a bridge and every peer hangs off a veth bridge port (``hairpin`` sets hairpin
    mode on the ports, needed for a container reaching its own published port).
    """

    name: str
    addrs: tuple[str, ...] = ()
    peers: tuple[Peer, ...] = ()
    bridge: bool = False
    hairpin: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "addrs", _tuple(self.addrs))
        object.__setattr__(self, "peers", _tuple(self.peers))
        if len(self.name) > 15:
            raise ValueError(f"interface name too long: {self.name!r}")
        if not self.bridge and len(self.peers) > 1:
            raise ValueError(f"{self.name}: more than one peer needs bridge=True")

    def addresses(self, family: int) -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
        return [a for a in map(_iface, self.addrs) if a.version == family]


DEFAULT_HOST_SYSCTLS: Mapping[str, str] = {
    "net.ipv4.ip_forward": "1",
    # Set, not inherited from the machine, so that a lab behaves the same everywhere.
    "net.ipv4.conf.all.rp_filter": "0",
    "net.ipv4.conf.default.rp_filter": "0",
}


@dataclass(frozen=True)
class Topology:
    """Declarative lab network: host interfaces and the peers behind them."""

    ifaces: tuple[HostIface, ...]
    sysctls: Mapping[str, str] = field(default_factory=dict)
    """Extra sysctls for the lab host (applied after DEFAULT_HOST_SYSCTLS)."""
    bridge_nf: bool = True
    """Set net.bridge.bridge-nf-call-ip{,6}tables=1 (as Docker/Kubernetes hosts have)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "ifaces", _tuple(self.ifaces))
        names = [p.name for p in self.peers]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate peer names: {names}")

    @property
    def peers(self) -> list[Peer]:
        return [p for i in self.ifaces for p in i.peers]

    def peer(self, name: str) -> Peer:
        for p in self.peers:
            if p.name == name:
                return p
        raise KeyError(name)

    def iface_of(self, peer: str) -> HostIface:
        for i in self.ifaces:
            if any(p.name == peer for p in i.peers):
                return i
        raise KeyError(peer)

    @property
    def has_ipv6(self) -> bool:
        addrs = [a for i in self.ifaces for a in i.addrs] + [a for p in self.peers for a in p.addrs]
        return any(_iface(a).version == 6 for a in addrs)


def docker_topology(containers: Sequence[str] = ("172.17.0.6", "172.17.0.7"), *,
                    ipv6: bool = False, hairpin: bool = False) -> Topology:
    """The seed's Docker host: eth0 198.51.100.1 with an outside ``client`` 198.51.100.2,
    docker0 172.17.0.1/16 with containers ``c1``, ``c2``… at the given addresses."""
    client = ["198.51.100.2/24"] + (["2001:db8:1::2/64"] if ipv6 else [])
    eth0 = ["198.51.100.1/24"] + (["2001:db8:1::1/64"] if ipv6 else [])
    docker0 = ["172.17.0.1/16"] + (["fd00:17::1/64"] if ipv6 else [])
    cs = [Peer(f"c{n}", [f"{a}/16"] + ([f"fd00:17::{n + 1}/64"] if ipv6 else []))
          for n, a in enumerate(containers, start=1)]
    return Topology(ifaces=[
        HostIface("eth0", eth0, peers=[Peer("client", client)]),
        HostIface("docker0", docker0, bridge=True, hairpin=hairpin, peers=cs),
    ])


# --------------------------------------------------------------------------------------
# Flows and what the lab observed


@dataclass(frozen=True)
class Flow:
    """One connection attempt: from namespace ``src_ns`` (a peer or ``"host"``) to ``dst``.

    ``src`` picks the source address (added to a peer on the fly if missing).  ``sport``
    is chosen by the lab (unique per flow) unless given; for ICMP it is the echo id.
    ``listen``: namespaces that listen on ``listen_port`` (default: ``dport``) during this
    flow; ``None`` means every peer, never the host (so a flow to the host's own address
    meets no listener unless ``listen`` names ``"host"``).  ``greet`` (TCP): the listener
    sends one byte as soon as it accepts, and the sender reads it before it closes, so the
    connection has a segment in the reply direction that is not the SYN,ACK (a plain
    ESTABLISHED ACK,PSH segment, in ``Observation.packets``).
    """

    src_ns: str
    dst: str
    dport: Optional[int] = None
    proto: Literal["tcp", "udp", "icmp"] = "tcp"
    src: Optional[str] = None
    sport: Optional[int] = None
    listen: Optional[tuple[str, ...]] = None
    listen_port: Optional[int] = None
    timeout: Optional[float] = None
    label: str = ""
    greet: bool = False

    def __post_init__(self) -> None:
        if self.greet and self.proto != "tcp":
            raise ValueError("greet is for TCP flows")
        if self.listen is not None:
            object.__setattr__(self, "listen", _tuple(self.listen))
        if self.proto not in ("tcp", "udp", "icmp"):
            raise ValueError(f"unsupported proto {self.proto!r}")
        if self.proto != "icmp" and self.dport is None:
            raise ValueError(f"{self.proto} flow needs a dport")

    @property
    def family(self) -> int:
        return ipaddress.ip_address(self.dst).version

    def __str__(self) -> str:
        src = self.src or "*"
        port = f":{self.dport}" if self.dport is not None else ""
        return self.label or f"{self.proto} {self.src_ns}({src}) -> {self.dst}{port}"


@dataclass(frozen=True)
class Arrival:
    """The flow's first packet as it entered a namespace (addresses after NAT)."""

    ns: str
    proto: str
    src: str
    sport: Optional[int]
    dst: str
    dport: Optional[int]

    @property
    def tuple(self) -> tuple[str, Optional[int], str, Optional[int]]:
        return (self.src, self.sport, self.dst, self.dport)


def _icmp_status(err: Mapping[str, Any]) -> str:
    """refused for port unreachable (v4 3/3, v6 1/4), unreachable for other errors."""
    # (3, 3) exists only in ICMPv4 and (1, 4) only in ICMPv6.
    return "refused" if (err.get("type"), err.get("code")) in ((3, 3), (1, 4)) else "unreachable"


@dataclass(frozen=True)
class SenderResult:
    """What the sending socket saw.

    status: ``connected`` (TCP handshake done), ``replied`` (UDP echo / ICMP echo reply),
    ``refused`` (TCP RST or ICMP port unreachable), ``unreachable`` (other ICMP errors,
    EHOSTUNREACH, ENETUNREACH), ``timeout`` (nothing came back), ``blocked`` (the local
    stack refused to send: EPERM from a DROP in OUTPUT), ``error`` (anything else).
    """

    status: str
    errno: Optional[str] = None
    local: Optional[tuple[str, int]] = None
    reply_from: Optional[str] = None
    icmp: Optional[dict[str, Any]] = None
    """The ICMP error the sender's namespace received for this flow: type, code, src."""
    elapsed: float = 0.0
    socket_status: Optional[str] = None
    """What the socket itself reported when it differs from ``status`` (see Lab.send)."""


_TCP_FLAGS = frozenset({"SYN", "ACK", "FIN", "RST", "PSH", "URG", "ECE", "CWR"})


@dataclass(frozen=True)
class PacketHeader:
    """One ``PACKET:`` line of xtables-monitor: the packet as a hook saw it."""

    family: int
    trace_id: str
    fields: Mapping[str, str]
    flags: tuple[str, ...]
    raw: str

    def get(self, key: str) -> Optional[str]:
        return self.fields.get(key)

    @property
    def src(self) -> Optional[str]:
        return self.fields.get("SRC")

    @property
    def dst(self) -> Optional[str]:
        return self.fields.get("DST")

    @property
    def sport(self) -> Optional[int]:
        v = self.fields.get("SPORT")
        return int(v) if v is not None else None

    @property
    def dport(self) -> Optional[int]:
        v = self.fields.get("DPORT")
        return int(v) if v is not None else None

    @property
    def iif(self) -> Optional[str]:
        return self.fields.get("IN")

    @property
    def oif(self) -> Optional[str]:
        return self.fields.get("OUT")

    def fingerprint(self) -> tuple:
        """What stays the same for one packet across hooks (NAT, TTL and devices change)."""
        tcp_flags = tuple(f for f in self.flags if f in _TCP_FLAGS)
        return (self.family, self.fields.get("ID"), self.fields.get("FLOWLBL"),
                self.fields.get("LEN"), tcp_flags, self.fields.get("TYPE"))


@dataclass(frozen=True)
class Step:
    """One netfilter trace event: a rule that matched, a policy, or a return.

    ``rule`` is the rule as iptables-save prints it (``-A CHAIN …``), ``None`` for a
    policy/return step.  ``verdict`` is ACCEPT, DROP, RETURN, CONTINUE, ``JUMP:CHAIN``,
    ``GOTO:CHAIN`` (NAT targets show as ACCEPT, REJECT as DROP, LOG as CONTINUE).
    """

    table: str
    chain: str
    rule: Optional[str]
    verdict: str
    kind: str = "rule"
    """``rule``, ``policy`` or ``return`` (xtables-monitor's trace types)."""
    handle: Optional[int] = None
    family: int = 4
    packet: Optional[PacketHeader] = None
    """The packet as printed just before this step (addresses at this hook)."""

    @property
    def key(self) -> tuple[str, str, Optional[str], str]:
        return (self.table, self.chain, self.rule, self.verdict)


@dataclass
class TracedPacket:
    """All trace events of one packet (possibly several kernel trace ids: the id changes
    when the packet crosses a bridge into the IP stack or loops through lo)."""

    family: int
    trace_ids: list[str] = field(default_factory=list)
    headers: list[PacketHeader] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)

    @property
    def first(self) -> Optional[PacketHeader]:
        return self.headers[0] if self.headers else None

    @property
    def last(self) -> Optional[PacketHeader]:
        return self.headers[-1] if self.headers else None


@dataclass(frozen=True)
class CounterHit:
    """A rule or chain policy whose counters moved during a flow.

    ``index`` is the 1-based rule number in its chain as in the loaded ruleset (the lab's
    TRACE rules are not counted); ``None`` with ``rule=None`` means the chain's policy.
    """

    table: str
    chain: str
    index: Optional[int]
    rule: Optional[str]
    packets: int
    bytes: int
    family: int = 4
    policy: Optional[str] = None

    @property
    def key(self) -> tuple[str, str, Optional[str]]:
        return (self.table, self.chain, self.rule)


@dataclass
class Observation:
    """Everything the lab saw for one flow."""

    flow: Flow
    family: int
    sport: int
    backend: Optional[str]
    sender: SenderResult
    arrivals: list[Arrival]
    counters: list[CounterHit]
    packets: Optional[list[TracedPacket]]
    """Every traced packet during the flow (nft backend), replies and noise included."""
    steps: Optional[list[Step]]
    """Steps of the flow's first packet, lab TRACE rules left out (nft backend)."""
    notes: list[str] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def outcome(self) -> str:
        """``delivered`` (the sender got an answer from the far end), ``rejected`` (RST or
        ICMP error), ``dropped`` (nothing came back or the local stack refused)."""
        s = self.sender.status
        if s in ("connected", "replied"):
            return "delivered"
        if s in ("refused", "unreachable"):
            return "rejected"
        if s in ("timeout", "blocked"):
            return "dropped"
        return "error"

    @property
    def delivery(self) -> Optional[Arrival]:
        """Where the first packet arrived (the one not in the sender's own namespace
        wins, except for a flow that legitimately comes back to the sender)."""
        if not self.arrivals:
            return None
        others = [a for a in self.arrivals if a.ns != self.flow.src_ns]
        return (others or self.arrivals)[0]

    @property
    def delivered_to(self) -> Optional[str]:
        d = self.delivery
        return d.ns if d else None

    def path(self) -> Optional[list[tuple[str, str, Optional[str], str]]]:
        """``[(table, chain, rule_or_None, verdict), …]`` for the first packet."""
        return None if self.steps is None else [s.key for s in self.steps]

    def chains(self) -> Optional[list[tuple[str, str]]]:
        """``[(table, chain), …]`` of the first packet's steps, consecutive duplicates merged."""
        if self.steps is None:
            return None
        out: list[tuple[str, str]] = []
        for s in self.steps:
            if not out or out[-1] != (s.table, s.chain):
                out.append((s.table, s.chain))
        return out

    def hits(self) -> set[tuple[str, str, Optional[str]]]:
        """``{(table, chain, rule_or_None)}`` whose counters moved (None: the policy)."""
        return {c.key for c in self.counters}

    def describe(self) -> str:
        """A readable account, for assertion messages."""
        lines = [f"flow {self.flow} (sport {self.sport}, backend {self.backend}): "
                 f"outcome {self.outcome}, sender {self.sender.status}"
                 + (f" {self.sender.errno}" if self.sender.errno else "")
                 + (f" icmp {self.sender.icmp}" if self.sender.icmp else "")]
        for a in self.arrivals:
            lines.append(f"  arrived in {a.ns}: {a.proto} {a.src}:{a.sport} -> {a.dst}:{a.dport}")
        if self.steps is not None:
            lines.append("  trace of the first packet:")
            for s in self.steps:
                lines.append(f"    {s.table}:{s.chain} {s.kind} {s.verdict}  {s.rule or ''}")
        if self.counters:
            lines.append("  counters:")
            for c in self.counters:
                what = c.rule if c.rule is not None else f"policy {c.policy}"
                lines.append(f"    [{c.packets}:{c.bytes}] {c.table}:{c.chain} {what}")
        for n in self.notes:
            lines.append(f"  note: {n}")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Parsing xtables-monitor --trace output (pure functions; tested without root)

_PACKET_RE = re.compile(r"^\s*PACKET:\s+(\d+)\s+([0-9a-fA-F]+)\s?(.*)$")
_TRACE_RE = re.compile(
    r"^\s*TRACE:\s+(\d+)\s+([0-9a-fA-F]+)\s+(?P<table>[^:\s]+):(?P<chain>.+?):"
    r"(?P<kind>rule|policy|return):(?P<rest>.*)$")
_RULE_REST_RE = re.compile(r"^(0x[0-9a-fA-F]+):(\S*)\s*(.*)$")
_RULE_PREFIX_RE = re.compile(r"^-[46]\s+-t\s+\S+\s+")
_NFT_VERDICTS = {
    0xFFFFFFFF: "CONTINUE", 0xFFFFFFFE: "BREAK", 0xFFFFFFFD: "JUMP", 0xFFFFFFFC: "GOTO",
    0xFFFFFFFB: "RETURN", 0: "DROP", 1: "ACCEPT", 2: "STOLEN", 3: "QUEUE", 4: "REPEAT",
    5: "STOP",
}
_NFPROTO = {2: 4, 10: 6}


def _family(nfproto: str) -> int:
    return _NFPROTO.get(int(nfproto), int(nfproto))


def normalize_verdict(v: str) -> str:
    """xtables-monitor prints some verdicts as raw numbers (RETURN as 0xfffffffb)."""
    v = v.strip()
    if not v:
        return "RETURN"  # a "return:" event: the end of a user chain
    if v.lower().startswith("0x") and ":" not in v:
        try:
            return _NFT_VERDICTS.get(int(v, 16), v)
        except ValueError:
            return v
    head, sep, tail = v.partition(":")
    if head.lower().startswith("0x"):
        head = _NFT_VERDICTS.get(int(head, 16), head)
    return head.upper() + (sep + tail if sep else "")


def parse_packet_line(line: str) -> Optional[PacketHeader]:
    m = _PACKET_RE.match(line)
    if not m:
        return None
    fields: dict[str, str] = {}
    flags: list[str] = []
    for tok in m.group(3).split():
        k, eq, v = tok.partition("=")
        if eq and k.isupper():
            fields.setdefault(k, v)
        elif tok.isupper() and tok.isalpha():
            flags.append(tok)
    return PacketHeader(family=_family(m.group(1)), trace_id=m.group(2).lower(),
                        fields=fields, flags=tuple(flags), raw=line.rstrip("\n"))


def parse_trace_line(line: str) -> Optional[tuple[str, Step]]:
    """A ``TRACE:`` line as (trace id, Step).  The step's ``rule`` is "" when
    xtables-monitor failed to print it (it dies on some ip6tables rules, see notes)."""
    m = _TRACE_RE.match(line)
    if not m:
        return None
    family = _family(m.group(1))
    kind = m.group("kind")
    rest = m.group("rest").rstrip("\n")
    rule: Optional[str] = None
    handle: Optional[int] = None
    if kind == "rule":
        rm = _RULE_REST_RE.match(rest.strip())
        if rm:
            handle = int(rm.group(1), 16)
            verdict = normalize_verdict(rm.group(2))
            rule = _RULE_PREFIX_RE.sub("", rm.group(3).strip())
            if re.fullmatch(r"-[46]\s+-t\s+\S+", rule):
                rule = ""
        else:
            verdict = normalize_verdict(rest.split()[0] if rest.split() else "")
            rule = ""
    else:
        parts = rest.split()
        verdict = normalize_verdict(parts[0] if parts else "")
    step = Step(table=m.group("table"), chain=m.group("chain"), rule=rule, verdict=verdict,
                kind=kind, handle=handle, family=family)
    return m.group(2).lower(), step


def is_lab_trace_step(step: Step) -> bool:
    """The lab's own ``-t raw -I PREROUTING/OUTPUT -j TRACE`` rule."""
    return (step.kind == "rule" and step.table == "raw" and step.chain in ("PREROUTING", "OUTPUT")
            and step.rule == f"-A {step.chain} -j TRACE")


def parse_trace(lines: Iterable[str], *, keep_lab_trace: bool = False,
                keep_raw_policy: Iterable[int] = (4, 6)) -> list[TracedPacket]:
    """Group xtables-monitor lines into packets, in the order the packets first appeared.

    A packet starts with the lab's TRACE rule (it is the first rule of raw PREROUTING and
    raw OUTPUT).  Events under a trace id not seen before that do not start with it are
    the same packet under a new id (the kernel's trace id hashes the input interface, so
    it changes when a bridged packet enters the IP stack); they are attached to the
    latest packet with the same fingerprint.  A packet that left through ``lo`` and comes
    back in through ``lo`` is one packet too.  ``keep_raw_policy``: families whose raw
    table belongs to the ruleset (for the others the raw policy steps are the lab's).
    """
    keep_raw = set(keep_raw_policy)
    packets: list[TracedPacket] = []
    by_id: dict[str, TracedPacket] = {}
    pending: dict[str, PacketHeader] = {}

    def find_by_fingerprint(h: PacketHeader, *, want_lo: bool = False) -> Optional[TracedPacket]:
        for p in reversed(packets[-50:]):
            if p.last is not None and p.last.fingerprint() == h.fingerprint():
                if want_lo and p.last.oif != "lo":
                    continue
                return p
        return None

    for line in lines:
        h = parse_packet_line(line)
        if h is not None:
            pending[h.trace_id] = h
            continue
        parsed = parse_trace_line(line)
        if parsed is None:
            continue
        tid, step = parsed
        header = pending.pop(tid, None)
        if header is not None:
            step = dataclasses.replace(step, packet=header)
        if is_lab_trace_step(step):
            pkt: Optional[TracedPacket] = None
            if header is not None and header.iif == "lo" and step.chain == "PREROUTING":
                pkt = find_by_fingerprint(header, want_lo=True)
            if pkt is None:
                pkt = TracedPacket(family=step.family)
                packets.append(pkt)
            by_id[tid] = pkt
        else:
            pkt = by_id.get(tid)
            if pkt is None:
                if header is not None:
                    pkt = find_by_fingerprint(header)
                if pkt is None:
                    pkt = TracedPacket(family=step.family)
                    packets.append(pkt)
                by_id[tid] = pkt
        if tid not in pkt.trace_ids:
            pkt.trace_ids.append(tid)
        if header is not None:
            pkt.headers.append(header)
        if is_lab_trace_step(step) and not keep_lab_trace:
            continue
        if (step.table == "raw" and step.kind == "policy" and step.family not in keep_raw
                and not keep_lab_trace):
            continue
        pkt.steps.append(step)
    return packets


def packet_matches(header: Optional[PacketHeader], *, dst: str, sport: int,
                   dport: Optional[int], proto: str, length: Optional[int] = None) -> bool:
    """Is this (first) header the flow's first packet as the sender sent it?

    xtables-monitor prints ports for TCP and UDP but nothing ICMP-specific, so an echo
    request is recognised by its destination, the absence of ports and (IPv4) its length.
    """
    if header is None or header.dst is None:
        return False
    try:
        if ipaddress.ip_address(header.dst) != ipaddress.ip_address(dst):
            return False
    except ValueError:
        return False
    if proto == "icmp":
        if header.sport is not None or header.dport is not None:
            return False
        return length is None or header.family == 6 or header.get("LEN") == str(length)
    return header.sport == sport and (dport is None or header.dport == dport)


# --------------------------------------------------------------------------------------
# Parsing iptables-save -c


@dataclass
class _Dump:
    policies: dict[tuple[str, str], tuple[str, int, int]] = field(default_factory=dict)
    rules: list[tuple[str, str, int, str, int, int]] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)


_COUNTER_RULE_RE = re.compile(r"^\[(\d+):(\d+)\]\s+(-A\s+(\S+).*)$")
_CHAIN_RE = re.compile(r"^:(\S+)\s+(\S+)\s+\[(\d+):(\d+)\]")


def parse_save(text: str, *, drop_lab_trace: bool = False) -> _Dump:
    """Parse ``iptables-save -c`` into policies and numbered rules.

    ``drop_lab_trace`` leaves out the first ``-j TRACE`` rule of raw PREROUTING/OUTPUT
    (the lab inserts it at position 1) and numbers the remaining rules as in the loaded
    ruleset.
    """
    d = _Dump()
    table = ""
    index: dict[tuple[str, str], int] = {}
    seen: set[tuple[str, str]] = set()
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("*"):
            table = line[1:]
            d.tables.append(table)
            continue
        m = _CHAIN_RE.match(line)
        if m:
            d.policies[(table, m.group(1))] = (m.group(2), int(m.group(3)), int(m.group(4)))
            continue
        m = _COUNTER_RULE_RE.match(line)
        if m:
            chain = m.group(4)
            rule = m.group(3)
            key = (table, chain)
            first = key not in seen
            seen.add(key)
            if (drop_lab_trace and first and table == "raw" and chain in ("PREROUTING", "OUTPUT")
                    and rule == f"-A {chain} -j TRACE"):
                continue
            index[key] = index.get(key, 0) + 1
            d.rules.append((table, chain, index[key], rule, int(m.group(1)), int(m.group(2))))
    return d


def counter_deltas(before: str, after: str, *, family: int = 4, drop_lab_trace: bool = False,
                   ruleset_tables: Optional[Iterable[str]] = None) -> list[CounterHit]:
    """Rules and policies whose counters grew between two ``iptables-save -c`` texts.

    ``ruleset_tables``: tables the loaded ruleset declares; policies of other tables (the
    raw table the lab created for TRACE) are left out.
    """
    b, a = parse_save(before, drop_lab_trace=drop_lab_trace), parse_save(after, drop_lab_trace=drop_lab_trace)
    keep = set(ruleset_tables) if ruleset_tables is not None else None
    out: list[CounterHit] = []
    brules = {(t, c, i, r): (p, by) for t, c, i, r, p, by in b.rules}
    for t, c, i, r, p, by in a.rules:
        p0, b0 = brules.get((t, c, i, r), (0, 0))
        if p > p0:
            out.append(CounterHit(t, c, i, r, p - p0, by - b0, family))
    for (t, c), (pol, p, by) in a.policies.items():
        if pol == "-" or (keep is not None and t not in keep):
            continue
        _, p0, b0 = b.policies.get((t, c), (pol, 0, 0))
        if p > p0:
            out.append(CounterHit(t, c, None, None, p - p0, by - b0, family, policy=pol))
    return out


def parse_nft_handles(text: str) -> dict[tuple[str, int], int]:
    """``nft -a list table`` → {(chain, position in chain): rule handle}."""
    out: dict[tuple[str, int], int] = {}
    chain = None
    pos = 0
    for line in text.splitlines():
        m = re.match(r'^\s*chain\s+"?([^"\s{]+)"?\s*\{', line)
        if m:
            chain, pos = m.group(1), 0
            continue
        m = re.search(r"#\s*handle\s+(\d+)\s*$", line)
        if m and chain is not None and not line.strip().startswith(("table", "type", "policy")):
            out[(chain, pos)] = int(m.group(1))
            pos += 1
        if line.strip() == "}":
            chain = None
    return out


def ruleset_tables(text: str) -> list[str]:
    return [ln.strip()[1:] for ln in text.splitlines() if ln.strip().startswith("*")]


# --------------------------------------------------------------------------------------
# Environment checks


def _which_all(names: Iterable[str]) -> list[str]:
    return [n for n in names if shutil.which(n) is None]


BASE_TOOLS = ("unshare", "nsenter", "ip", "conntrack")
BACKEND_TOOLS: Mapping[str, tuple[str, ...]] = {
    "nft": ("iptables-nft-restore", "iptables-nft-save", "iptables-nft", "xtables-monitor"),
    "legacy": ("iptables-legacy-restore", "iptables-legacy-save"),
}


def unavailable_reason(backends: Sequence[str] = ("nft",)) -> Optional[str]:
    """Why a lab cannot run here (None when it can): used to skip, or fail under CI."""
    if sys.platform != "linux":
        return "the kernel lab needs Linux"
    if os.geteuid() != 0:
        return "the kernel lab needs root (network namespaces, iptables)"
    missing = _which_all(BASE_TOOLS + tuple(t for b in backends for t in BACKEND_TOOLS[b]))
    if missing:
        return f"the kernel lab needs {', '.join(missing)} (see .ci/install-system-deps.sh)"
    try:
        r = subprocess.run(["unshare", "-n", "-m", "true"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"cannot create a network namespace: {e}"
    if r.returncode != 0:
        return f"cannot create a network namespace: {r.stderr.strip()}"
    return None


def require_lab(*backends: str) -> None:
    """For pytest: skip unless a lab with these backends can run here, but fail under
    CI (CI=true), where .ci/install-system-deps.sh installs everything: a broken CI
    machine must not turn the kernel checks into silent skips."""
    import pytest

    reason = unavailable_reason(backends or ("nft",))
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"kernel lab unavailable under CI: {reason}", pytrace=False)
    pytest.skip(reason)


# --------------------------------------------------------------------------------------
# The lab


def _child_setup(pgid: int) -> Any:
    """preexec_fn: join the lab's process group and die with the test process."""
    def setup() -> None:
        # A new group for the holder, the holder's group for the rest (same session:
        # setpgid cannot cross sessions).
        os.setpgid(0, pgid)
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except Exception:
            pass
    return setup


class _Agent:
    """Lab-side handle of one in-namespace agent (JSON lines over pipes)."""

    def __init__(self, ns: str, proc: subprocess.Popen) -> None:
        self.ns = ns
        self.proc = proc
        self.listening: set[tuple[str, int, int]] = set()
        self.greet = False

    def call(self, op: str, rpc_timeout: float = 15.0, **kw: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        msg = json.dumps({"op": op, **kw}) + "\n"
        try:
            self.proc.stdin.write(msg)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            raise LabError(f"agent {self.ns} is gone: {e}; {self._stderr()}") from e
        r, _, _ = select.select([self.proc.stdout], [], [], rpc_timeout)
        if not r:
            raise LabError(f"agent {self.ns} did not answer {op} within {rpc_timeout}s")
        line = self.proc.stdout.readline()
        if not line:
            raise LabError(f"agent {self.ns} died during {op}: {self._stderr()}")
        reply = json.loads(line)
        if reply.get("error"):
            raise LabError(f"agent {self.ns}: {op}: {reply['error']}")
        return reply

    def _stderr(self) -> str:
        try:
            if self.proc.poll() is not None and self.proc.stderr is not None:
                return self.proc.stderr.read()[-2000:]
        except Exception:
            pass
        return ""


class _Monitor:
    """``xtables-monitor --trace`` in the lab host, read line by line by a thread."""

    def __init__(self, argv: list[str], pgid: int) -> None:
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1,
                                     preexec_fn=_child_setup(pgid))
        self.lines: list[str] = []
        self.cond = threading.Condition()
        self.dead = False
        self.thread = threading.Thread(target=self._read, name="xtables-monitor", daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()
        with self.cond:
            self.dead = True
            self.cond.notify_all()

    def mark(self) -> int:
        with self.cond:
            return len(self.lines)

    def wait_for(self, pred: Any, start: int, timeout: float) -> Optional[int]:
        """Index of the first line at or after ``start`` satisfying pred, or None."""
        deadline = time.monotonic() + timeout
        i = start
        with self.cond:
            while True:
                while i < len(self.lines):
                    if pred(self.lines[i]):
                        return i
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0 or self.dead:
                    return None
                self.cond.wait(left)

    def take(self, start: int, end: int) -> list[str]:
        with self.cond:
            return self.lines[start:end]

    def trim(self, upto: int) -> int:
        """Forget lines before ``upto``; returns the new index of ``upto``."""
        with self.cond:
            del self.lines[:upto]
        return 0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.thread.join(timeout=2)


@dataclass
class _Loaded:
    backend: str
    tables: list[str]
    traced: bool


class Lab:
    """A running lab: namespaces per :class:`Topology`, a ruleset per family, agents.

    Use as a context manager (or call :meth:`close`); closing kills the whole process
    group, which takes the namespaces with it.
    """

    def __init__(self, topology: Topology, *, timeout: float = 0.4, trace: bool = True,
                 counters: bool = True, python: str = sys.executable) -> None:
        self.topology = topology
        self.timeout = timeout
        self.trace = trace
        self.counters = counters
        self.python = python
        self.holder: Optional[subprocess.Popen] = None
        self.agents: dict[str, _Agent] = {}
        self.loaded: dict[int, _Loaded] = {}
        self.monitor: Optional[_Monitor] = None
        self.bridge_nf = False
        self.bridge_nf_reason = ""
        self._seq = 0
        self._extra_addrs: set[tuple[str, str]] = set()
        self._handles: dict[tuple[int, str], dict[tuple[str, int], str]] = {}
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------

    def __enter__(self) -> "Lab":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def pid(self) -> int:
        if self.holder is None:
            raise LabError("lab not started")
        return self.holder.pid

    @property
    def namespaces(self) -> list[str]:
        return [HOST] + [p.name for p in self.topology.peers]

    def start(self) -> "Lab":
        """Create the namespaces, interfaces, addresses, routes, sysctls and agents."""
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _start(self) -> None:
        script = ("mount -t tmpfs kernel-lab /run && mkdir -p /run/netns && "
                  "ip link set lo up && echo ready && exec sleep infinity")
        self.holder = subprocess.Popen(
            ["unshare", "-n", "-m", "--propagation", "private", "sh", "-c", script],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=_child_setup(0))
        assert self.holder.stdout is not None
        r, _, _ = select.select([self.holder.stdout], [], [], 15)
        if not r or self.holder.stdout.readline().strip() != "ready":
            err = self.holder.stderr.read() if self.holder.poll() is not None and self.holder.stderr else ""
            raise LabError(f"lab holder did not start: {err.strip()}")
        topo = self.topology
        v6 = topo.has_ipv6
        if topo.peers:
            self.run(HOST, "ip", "-batch", "-", input="".join(f"netns add {p.name}\n" for p in topo.peers))
        procs = {ns: self._spawn_agent(ns) for ns in self.namespaces}
        for ns, proc in procs.items():
            self.agents[ns] = _Agent(ns, proc)
            self.agents[ns].call("hello", v6=v6)
        # Sysctl defaults first: interfaces created later inherit them.
        v6_defaults = ({"net.ipv6.conf.all.accept_dad": "0", "net.ipv6.conf.default.accept_dad": "0"}
                       if v6 else
                       {"net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1"})
        host_sysctls = dict(DEFAULT_HOST_SYSCTLS)
        # A bridge joins 224.0.0.106 / ff02::6a and repeats the unsolicited IGMP/MLD
        # report a second later, in the middle of the first flows (counter noise in
        # OUTPUT/POSTROUTING): have the repeats sent while the lab is being built.
        host_sysctls["net.ipv4.conf.default.igmpv3_unsolicited_report_interval"] = "1"
        if v6:
            host_sysctls["net.ipv6.conf.default.mldv2_unsolicited_report_interval"] = "1"
        # And no reports at all for link-local groups (224.0.0.106 on a snooping bridge):
        # an IGMPv3 report is a 40-byte packet of the host, new to conntrack, that shows in
        # nat/filter OUTPUT of whichever flow it falls into when its timer fires late.
        host_sysctls["net.ipv4.igmp_link_local_mcast_reports"] = "0"
        host_sysctls.update(v6_defaults)
        if v6:
            host_sysctls["net.ipv6.conf.all.forwarding"] = "1"
        bridge = self.agents[HOST].call("exists", path="/proc/sys/net/bridge/bridge-nf-call-iptables")
        if topo.bridge_nf and bridge["exists"]:
            host_sysctls["net.bridge.bridge-nf-call-iptables"] = "1"
            host_sysctls["net.bridge.bridge-nf-call-ip6tables"] = "1"
            self.bridge_nf = True
        elif topo.bridge_nf:
            self.bridge_nf_reason = ("br_netfilter is not loaded (no /proc/sys/net/bridge in the "
                                     "lab namespace): bridged traffic does not traverse iptables")
        else:
            self.bridge_nf_reason = "bridge_nf disabled by the topology"
        host_sysctls.update(topo.sysctls)
        self.agents[HOST].call("sysctl", values=host_sysctls)
        peer_sysctls = dict(v6_defaults)
        peer_sysctls["net.ipv4.igmp_link_local_mcast_reports"] = "0"
        peer_sysctls["net.ipv4.conf.default.igmpv3_unsolicited_report_interval"] = "1"
        if v6:
            peer_sysctls["net.ipv6.conf.default.mldv2_unsolicited_report_interval"] = "1"
        if v6:
            peer_sysctls.update({"net.ipv6.conf.all.accept_ra": "0",
                                 "net.ipv6.conf.default.accept_ra": "0"})
        for p in topo.peers:
            self.agents[p.name].call("sysctl", values=peer_sysctls)
        self._build_links()

    def _spawn_agent(self, ns: str) -> subprocess.Popen:
        argv = self._ns_argv(ns) + [self.python, "-u", os.path.abspath(__file__), "--agent", ns]
        return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, bufsize=1,
                                preexec_fn=_child_setup(self.pid))

    def _build_links(self) -> None:
        host: list[str] = []
        peer_cmds: dict[str, list[str]] = {}
        routes: list[str] = []
        for iface in self.topology.ifaces:
            if iface.bridge:
                # Without multicast snooping the bridge joins no all-snoopers group
                # (224.0.0.106, ff02::6a), whose IGMP/MLD reports would be host traffic in
                # the middle of flows; iptables sees the same unicast packets either way.
                host.append(f"link add {iface.name} type bridge mcast_snooping 0")
            elif iface.peers:
                p = iface.peers[0]
                host.append(f"link add {iface.name} type veth peer name {p.iface} netns {p.name}")
            else:
                kind = self._dummy_kind()
                host.append(f"link add {iface.name} type {kind}"
                            + (" mcast_snooping 0" if kind == "bridge" else ""))
            for a in iface.addrs:
                host.append(f"addr add {a} dev {iface.name}" + (" nodad" if _iface(a).version == 6 else ""))
            host.append(f"link set {iface.name} up")
            for p in iface.peers:
                if iface.bridge:
                    host.append(f"link add {p.port_name} type veth peer name {p.iface} netns {p.name}")
                    host.append(f"link set {p.port_name} master {iface.name}")
                    if iface.hairpin:
                        host.append(f"link set {p.port_name} type bridge_slave hairpin on")
                    host.append(f"link set {p.port_name} up")
                cmds = peer_cmds.setdefault(p.name, ["link set lo up"])
                for a in p.addrs:
                    cmds.append(f"addr add {a} dev {p.iface}" + (" nodad" if _iface(a).version == 6 else ""))
                cmds.append(f"link set {p.iface} up")
                for fam in (4, 6):
                    gws = iface.addresses(fam)
                    mine = p.addresses(fam)
                    if p.default_route and gws and mine:
                        cmds.append(f"route add default via {gws[0].ip}")
                    for a in mine[1:] if mine else []:
                        if not any(a.ip in g.network for g in gws):
                            routes.append(f"route add {a.ip}/{a.max_prefixlen} via {mine[0].ip} dev {iface.name}")
                    if mine and not any(mine[0].ip in g.network for g in gws):
                        routes.append(f"route add {mine[0].ip}/{mine[0].max_prefixlen} dev {iface.name}")
        self.run(HOST, "ip", "-batch", "-", input="\n".join(host) + "\n")
        for name, cmds in peer_cmds.items():
            self.run(HOST, "ip", "-n", name, "-batch", "-", input="\n".join(cmds) + "\n")
        if routes:
            self.run(HOST, "ip", "-batch", "-", input="\n".join(routes) + "\n")

    def _dummy_kind(self) -> str:
        """``dummy`` when the kernel has it (module not always loadable in a container);
        otherwise a bridge without ports, which holds addresses just as well."""
        if not hasattr(self, "_dummy"):
            r = self.run(HOST, "ip", "link", "add", "kl-probe0", "type", "dummy", check=False)
            self._dummy = "dummy" if r.returncode == 0 else "bridge"
            if r.returncode == 0:
                self.run(HOST, "ip", "link", "del", "kl-probe0")
        return self._dummy

    def close(self) -> None:
        """Kill every process of the lab (agents, monitor, holder); the namespaces go
        with the holder's mount namespace.  Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for a in self.agents.values():
            try:
                if a.proc.stdin:
                    a.proc.stdin.close()
            except OSError:
                pass
        if self.holder is not None:
            try:
                os.killpg(self.holder.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        procs = [a.proc for a in self.agents.values()]
        if self.monitor is not None:
            self.monitor.stop()
        if self.holder is not None:
            procs.append(self.holder)
        for p in procs:
            try:
                if p.poll() is None:
                    p.kill()
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            for s in (p.stdout, p.stderr, p.stdin):
                try:
                    if s:
                        s.close()
                except OSError:
                    pass

    # -- running commands ------------------------------------------------------------

    def _ns_argv(self, ns: str) -> list[str]:
        if ns == HOST:
            return ["nsenter", "-t", str(self.pid), "-n", "-m"]
        if ns not in self.namespaces:
            raise LabError(f"no namespace {ns!r} in this lab")
        return ["nsenter", "-t", str(self.pid), "-m", "ip", "netns", "exec", ns]

    def run(self, ns: str, *argv: str, input: Optional[str] = None, check: bool = True,
            timeout: float = 30.0) -> subprocess.CompletedProcess:
        """Run a command inside a lab namespace (``"host"`` or a peer name).

        Once the namespace's agent is up the agent runs it: forking the small agent is
        several times cheaper than forking the test process plus nsenter, and a flow
        runs three commands (conntrack -F, two iptables-save -c)."""
        agent = self.agents.get(ns)
        if agent is not None and agent.proc.poll() is None:
            res = agent.call("exec", argv=list(argv), input=input, timeout=timeout,
                             rpc_timeout=timeout + 5)
            r = subprocess.CompletedProcess(list(argv), res["rc"], res["stdout"], res["stderr"])
        else:
            cmd = self._ns_argv(ns) + list(argv)
            r = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout,
                               preexec_fn=_child_setup(self.pid))
        if check and r.returncode != 0:
            raise LabError(f"[{ns}] {' '.join(argv)} exited {r.returncode}: "
                           f"{(r.stderr or r.stdout).strip()[-2000:]}")
        return r

    # -- rulesets ----------------------------------------------------------------------

    @staticmethod
    def _tool(backend: str, family: int, suffix: str = "") -> str:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}")
        return f"{'ip6tables' if family == 6 else 'iptables'}-{backend}{suffix}"

    def load(self, ruleset: str, backend: Backend = "nft", family: int = 4, *,
             ipsets: Optional[str] = None) -> None:
        """Load an iptables-save dump into the lab host with the given backend.

        One ruleset per family and lab: a second load with another backend would leave
        the first backend's tables active too (both would judge the packet).  ``ipsets``
        is an ``ipset save`` dump restored first.
        """
        if family in self.loaded and self.loaded[family].backend != backend:
            raise LabError(f"IPv{family} already has a {self.loaded[family].backend} ruleset; "
                           "use a new lab for another backend")
        if ipsets:
            self.run(HOST, "ipset", "restore", "-exist", input=ipsets)
        self.run(HOST, self._tool(backend, family, "-restore"), input=ruleset)
        tables = ruleset_tables(ruleset)
        traced = False
        if backend == "nft" and self.trace:
            tool = self._tool(backend, family)
            for chain in ("PREROUTING", "OUTPUT"):
                self.run(HOST, tool, "-w", "-t", "raw", "-I", chain, "1", "-j", "TRACE")
            traced = True
        self.loaded[family] = _Loaded(backend, tables, traced)
        self._handles.clear()
        if traced:
            self._ensure_monitor()

    def save(self, backend: Optional[str] = None, family: int = 4, counters: bool = True) -> str:
        """``iptables-save [-c]`` from inside the lab (the lab's TRACE rules included)."""
        backend = backend or (self.loaded[family].backend if family in self.loaded else "nft")
        argv = [self._tool(backend, family, "-save")] + (["-c"] if counters else [])
        return self.run(HOST, *argv).stdout

    # -- tracing -----------------------------------------------------------------------

    def _ensure_monitor(self) -> list[str]:
        """Start (or restart) xtables-monitor and wait until it demonstrably prints."""
        notes: list[str] = []
        if self.monitor is not None and not self.monitor.dead:
            return notes
        if self.monitor is not None:
            tail = "".join(self.monitor.lines[-3:]).strip()
            notes.append(f"xtables-monitor had exited ({tail[-300:]}); restarted")
            self.monitor.stop()
        self.monitor = _Monitor(self._ns_argv(HOST) + self._monitor_argv(), self.pid)
        for _ in range(40):
            start = self.monitor.mark()
            if self._fence(start, 0.1) is not None:
                self.monitor.trim(self.monitor.mark())
                return notes
            if self.monitor.dead:
                break
        raise LabError("xtables-monitor --trace printed nothing for the lab's probe packet: "
                       + "".join(self.monitor.lines[-5:]))

    def _monitor_argv(self) -> list[str]:
        """The trace monitor run in the lab host (nft_lab.NftLab runs ``nft monitor trace``)."""
        return ["xtables-monitor", "--trace"]

    def _marker_family(self) -> int:
        traced = [f for f, l in self.loaded.items() if l.traced]
        return 4 if 4 in traced or not traced else 6

    def _fence(self, start: int, timeout: float) -> Optional[int]:
        """Send a fence packet through lo and return the index of its first trace line (at
        or after ``start``), None when it did not show within ``timeout``.

        Everything traced before that line happened before the fence was sent.  The fence
        itself must not count in a later flow: its way back in through lo is a softirq,
        which a loaded machine runs late, so the call returns only once the packet was
        received by the sink or (dropped in INPUT) showed in PREROUTING on lo."""
        assert self.monitor is not None
        self._seq += 1
        port = 61000 + self._seq % 4000
        r = self.agents[HOST].call("marker", sport=port, family=self._marker_family(), wait=0.05)
        out = self.monitor.wait_for(self._marker_pred(port), start, timeout)
        if out is not None and r.get("sent") and not r.get("received"):
            self.monitor.wait_for(self._marker_pred(port, inbound=True), out, 1.0)
        return out

    @staticmethod
    def _marker_pred(port: int, inbound: bool = False) -> Any:
        needle = f"SPORT={port} DPORT={MARKER_PORT}"
        return lambda line: line.startswith("PACKET:") and needle in line and (
            "SRC=127.0.0.1 " in line or "SRC=::1 " in line) and (not inbound or "IN=lo " in line)

    # -- sending -----------------------------------------------------------------------

    def _ensure_source(self, flow: Flow) -> None:
        """Make ``flow.src`` an address of the sender (peers only), with a return route."""
        if flow.src is None:
            return
        ip = ipaddress.ip_address(flow.src)
        if flow.src_ns == HOST:
            return  # the host's addresses are the topology's; binding tells if it is wrong
        peer = self.topology.peer(flow.src_ns)
        if any(a.ip == ip for a in map(_iface, peer.addrs)) or (flow.src_ns, flow.src) in self._extra_addrs:
            return
        fam = ip.version
        primary = peer.addresses(fam)
        if not primary:
            raise LabError(f"{flow.src_ns} has no IPv{fam} address to route {ip} through")
        iface = self.topology.iface_of(flow.src_ns)
        plen = 32 if fam == 4 else 128
        self.run(HOST, "ip", "-n", flow.src_ns, "addr", "add", f"{ip}/{plen}", "dev", peer.iface,
                 *(["nodad"] if fam == 6 else []))
        if not any(ip in g.network for g in iface.addresses(fam)):
            self.run(HOST, "ip", f"-{fam}", "route", "replace", f"{ip}/{plen}", "via",
                     str(primary[0].ip), "dev", iface.name)
        self._extra_addrs.add((flow.src_ns, flow.src))

    def _set_listeners(self, flow: Flow) -> None:
        if flow.proto == "icmp":
            wanted_ns: tuple[str, ...] = ()
        elif flow.listen is None:
            wanted_ns = tuple(p.name for p in self.topology.peers)
        else:
            wanted_ns = flow.listen
        port = flow.listen_port if flow.listen_port is not None else flow.dport
        for ns, agent in self.agents.items():
            want = {(flow.proto, flow.family, port)} if ns in wanted_ns and port is not None else set()
            if want != agent.listening or flow.greet != agent.greet:
                agent.call("listen", specs=sorted(want), greet=flow.greet)
                agent.listening = want
                agent.greet = flow.greet

    SEND_ATTEMPTS = 3
    """How often a flow is sent when packets foreign to it were counted during it."""
    SETTLE_TIMEOUT = 3.0
    """Longest wait for the kernel to finish a flow's packets (or for quiet counters)."""
    QUIET = 0.01
    """Counters equal over this interval count as quiet (nothing left in the backlog)."""

    def send(self, flow: Flow) -> Observation:
        """Send one flow and return what the kernel did with it.

        The observation holds this flow's packets only, whatever the machine's load:

        * before the flow, the previous flow's leftover sockets are closed, conntrack is
          flushed and the counter snapshot is taken only once the counters are quiet (two
          equal snapshots :attr:`QUIET` apart: no packet of an earlier flow is still
          waiting in a softirq backlog, where a loaded machine can leave it for a while);
        * after it, the lab waits until the kernel is done with the flow (its TCP
          conntrack entry closed by the sender's RST, then quiet counters again) before
          the second snapshot;
        * conntrack then lists every connection the kernel saw in between: an entry that
          is not the flow's (a late packet of something else, new to conntrack) means
          foreign packets were counted, and the flow is sent again (:attr:`SEND_ATTEMPTS`
          times at most, with a note; the last observation keeps the note).
        """
        notes: list[str] = []
        timeout = flow.timeout if flow.timeout is not None else self.timeout
        for attempt in range(1, self.SEND_ATTEMPTS + 1):
            obs, foreign, late = self._send_once(flow, timeout)
            obs.notes[:0] = notes
            if not foreign and not late:
                return obs
            what = "; ".join(foreign[:3]) + (f" (+{len(foreign) - 3})" if len(foreign) > 3 else "")
            why = (f"foreign connections in conntrack during the flow ({what})" if foreign else
                   f"the answer reached the sender after its {timeout:g}s timeout (a loaded machine)")
            if attempt == self.SEND_ATTEMPTS:
                obs.notes.append(why)
                return obs
            notes.append(f"attempt {attempt}: {why}; sent again")
            if late:
                timeout *= 4
        raise AssertionError("unreachable")

    def _quiet_save(self, family: int, notes: list[str]) -> str:
        """``iptables-save -c`` once two snapshots :attr:`QUIET` apart are equal."""
        text = self.save(family=family)
        deadline = time.monotonic() + self.SETTLE_TIMEOUT
        while True:
            time.sleep(self.QUIET)
            again = self.save(family=family)
            if again == text:
                return text
            text = again
            if time.monotonic() > deadline:
                notes.append(f"counters still moving after {self.SETTLE_TIMEOUT}s")
                return text

    def _conntrack(self) -> list[dict[str, str]]:
        """The lab host's conntrack entries: for each, the original direction's fields
        (proto, src, dst, sport, dport, type, id) and the TCP state."""
        # /proc/net/nf_conntrack (both families, read by the agent: no fork) when the
        # kernel has it; conntrack -L (some 30 ms a call) otherwise.
        got = self.agents[HOST].call("read", path="/proc/net/nf_conntrack")
        if got["exists"]:
            lines = [ln.split(None, 2)[2] for ln in got["text"].splitlines() if len(ln.split(None, 2)) == 3]
        else:
            fams = ["ipv4"] + (["ipv6"] if self.topology.has_ipv6 else [])
            script = "; ".join(f"conntrack -L -f {f} 2>/dev/null" for f in fams)
            lines = self.run(HOST, "sh", "-c", script + "; true").stdout.splitlines()
        entries = []
        for line in lines:
            parts = line.split()
            if len(parts) < 4:
                continue
            e: dict[str, str] = {"proto": parts[0], "line": line.strip()}
            if parts[0] == "tcp" and not "=" in parts[3]:
                e["state"] = parts[3]
            for tok in parts[3:]:
                k, eq, v = tok.partition("=")
                if eq and k in ("src", "dst", "sport", "dport", "type", "id") and k not in e:
                    e[k] = v
            entries.append(e)
        return entries

    @staticmethod
    def _is_flow_entry(e: Mapping[str, str], flow: Flow, sport: int) -> bool:
        if flow.proto == "icmp":
            return e["proto"] in ("icmp", "icmpv6") and e.get("id") == str(sport & 0xFFFF)
        return (e["proto"] == flow.proto and e.get("sport") == str(sport)
                and e.get("dport") == str(flow.dport))

    @staticmethod
    def _is_lab_entry(e: Mapping[str, str]) -> bool:
        """The fence packets (lo, to port 9), the lab's own."""
        return e["proto"] == "udp" and e.get("dport") == str(MARKER_PORT) and e.get("dst") in ("127.0.0.1", "::1")

    def _settle(self, flow: Flow, sport: int, sender: SenderResult,
                notes: list[str]) -> None:
        """Wait until the kernel is done with the flow; returns the conntrack entries.

        A connected TCP flow ends with the sender's RST (SO_LINGER 0): until conntrack
        shows its entry CLOSE, some of its packets are still queued.  UDP and ICMP end
        with the answer the sender waited for; a flow that got none sent nothing more."""
        if flow.proto != "tcp" or sender.status != "connected":
            return
        deadline = time.monotonic() + self.SETTLE_TIMEOUT
        while True:
            open_ = [e for e in self._conntrack() if self._is_flow_entry(e, flow, sport)
                     and e.get("state") not in (None, "CLOSE", "TIME_WAIT", "SYN_SENT")]
            if not open_:
                return
            if time.monotonic() > deadline:
                notes.append(f"the flow's connection is still open after {self.SETTLE_TIMEOUT}s: "
                             + open_[0]["line"])
                return
            time.sleep(0.01)

    def _send_once(self, flow: Flow, timeout: float) -> tuple[Observation, list[str], bool]:
        """One attempt: the observation, the foreign conntrack entries, and whether the
        answer came too late for the sender (it timed out, yet an answer arrived)."""
        t0 = time.monotonic()
        if flow.src_ns not in self.agents:
            raise LabError(f"no namespace {flow.src_ns!r} in this lab")
        notes: list[str] = []
        family = flow.family
        self._seq += 1
        sport = flow.sport if flow.sport is not None else 20000 + self._seq % 30000
        token = f"kernel-lab {self._seq} {sport}"
        loaded = self.loaded.get(family)
        traced = bool(loaded and loaded.traced)
        self._ensure_source(flow)
        self._set_listeners(flow)
        # Sockets of the previous flow accepted after it ended are closed (RST) now, before
        # the snapshot; the sniffers forget what they saw since.
        for agent in self.agents.values():
            agent.call("mark")
        if traced:  # before the counter snapshot: its probe packets would count
            notes += self._ensure_monitor()
        self.run(HOST, "conntrack", "-F", check=False)
        before = self._quiet_save(family, notes) if (loaded and self.counters) else None
        for agent in self.agents.values():
            agent.call("mark")  # the sniffers forget anything seen while waiting
        start = self.monitor.mark() if (traced and self.monitor) else 0
        res = self.agents[flow.src_ns].call(
            "send", proto=flow.proto, family=family, src=flow.src, sport=sport, dst=flow.dst,
            dport=flow.dport, timeout=timeout, token=token, greet=flow.greet, rpc_timeout=timeout + 10)
        sender = SenderResult(status=res["status"], errno=res.get("errno"),
                              local=tuple(res["local"]) if res.get("local") else None,
                              reply_from=res.get("reply_from"), icmp=None,
                              elapsed=res.get("elapsed", 0.0))
        arrivals: list[Arrival] = []
        icmp_errors: list[dict[str, Any]] = []
        late = False
        for ns, agent in self.agents.items():
            got = agent.call("arrivals", token=token, family=family, proto=flow.proto, ident=sport,
                             peer=flow.dst if ns == flow.src_ns else None,
                             peer_port=flow.dport if flow.proto != "icmp" else None)
            for a in got["arrivals"]:
                arrivals.append(Arrival(ns=ns, proto=a["proto"], src=a["src"], sport=a.get("sport"),
                                        dst=a["dst"], dport=a.get("dport")))
            if ns == flow.src_ns:
                icmp_errors = [e for e in got["icmp_errors"]
                               if e.get("orig_sport") == sport or e.get("orig_ident") == sport]
                late = sender.status == "timeout" and got.get("replies", 0) > 0
        if icmp_errors:
            sender = dataclasses.replace(sender, icmp=icmp_errors[0])
            if sender.status == "timeout":
                # The error reached the sender while connect() still held the socket lock
                # (the whole exchange runs synchronously in the lab's softirq), so the
                # socket dropped it (TcpExt LockDroppedIcmps); IPv6 TCP misses it this way.
                # A sender elsewhere would see it: report what the network answered.
                sender = dataclasses.replace(sender, status=_icmp_status(icmp_errors[0]),
                                             socket_status="timeout")
                notes.append(f"the sending socket missed the ICMP error {icmp_errors[0]} "
                             "(lock-dropped in the lab); status taken from the ICMP error")
        counters: list[CounterHit] = []
        foreign: list[str] = []
        if loaded is not None:
            self._settle(flow, sport, sender, notes)
            if before is not None:
                after = self._quiet_save(family, notes)
                counters = counter_deltas(before, after, family=family, drop_lab_trace=loaded.traced,
                                          ruleset_tables=loaded.tables)
            entries = self._conntrack()  # every connection the kernel saw since the flush
            foreign = [e["line"] for e in entries
                       if not self._is_flow_entry(e, flow, sport) and not self._is_lab_entry(e)]
        packets: Optional[list[TracedPacket]] = None
        steps: Optional[list[Step]] = None
        if traced and self.monitor is not None:
            end = self._fence(start, 2.0)
            if end is None:
                notes.append("trace incomplete: the fence packet never showed "
                             + ("(xtables-monitor exited: "
                                + "".join(self.monitor.lines[-2:]).strip()[-300:] + ")"
                                if self.monitor.dead else ""))
                end = self.monitor.mark()
            lines = self.monitor.take(start, end)
            self.monitor.trim(end)
            packets, steps = self._trace_steps(lines, flow, sport, token, notes)
        return Observation(flow=flow, family=family, sport=sport,
                           backend=loaded.backend if loaded else None, sender=sender,
                           arrivals=arrivals, counters=counters, packets=packets, steps=steps,
                           notes=notes, elapsed=time.monotonic() - t0), foreign, late

    def _trace_steps(self, lines: list[str], flow: Flow, sport: int, token: str,
                     notes: list[str]) -> tuple[list[Any], list[Any]]:
        """The traced packets of a flow's monitor lines, and the steps of its first packet."""
        keep_raw = [f for f, l in self.loaded.items() if "raw" in l.tables]
        packets = parse_trace(lines, keep_raw_policy=keep_raw)
        length = 28 + len(token.encode()) if flow.proto == "icmp" else None
        first = next((p for p in packets if packet_matches(
            p.first, dst=flow.dst, sport=sport, dport=flow.dport, proto=flow.proto,
            length=length)), None)
        if first is None:
            notes.append("the first packet does not appear in the trace")
            return packets, []
        return packets, self._fill_rule_texts(first.steps, notes)

    def _fill_rule_texts(self, steps: list[Step], notes: list[str]) -> list[Step]:
        """Fill in rules xtables-monitor could not print (1.8.9 dies printing ip6tables
        rules with a port match) from ``nft -a`` handles and iptables-nft-save order."""
        if not any(s.rule == "" for s in steps):
            return steps
        out = []
        for s in steps:
            if s.rule == "" and s.handle is not None:
                text = self._rule_by_handle(s.family, s.table, s.chain, s.handle)
                if text is not None:
                    s = dataclasses.replace(s, rule=text)
                    notes.append(f"rule text of {s.table}:{s.chain} handle {s.handle} "
                                 "taken from nft -a (xtables-monitor could not print it)")
                else:
                    notes.append(f"xtables-monitor could not print {s.table}:{s.chain} rule "
                                 f"handle {s.handle} (rule text '')")
            out.append(s)
        return out

    def _rule_by_handle(self, family: int, table: str, chain: str, handle: int) -> Optional[str]:
        key = (family, table)
        if key not in self._handles:
            self._handles[key] = {}
            if shutil.which("nft") is None:
                return None
            r = self.run(HOST, "nft", "-a", "list", "table", "ip" if family == 4 else "ip6", table,
                         check=False)
            if r.returncode != 0:
                return None
            dump = parse_save(self.save(family=family))
            for (c, pos), h in parse_nft_handles(r.stdout).items():
                rules = [rule for t, ch, i, rule, _, _ in dump.rules if t == table and ch == c]
                if pos < len(rules):
                    self._handles[key][(c, h)] = rules[pos]
        return self._handles[key].get((chain, handle))

    def send_all(self, flows: Iterable[Flow]) -> list[Observation]:
        return [self.send(f) for f in flows]


@dataclass
class LabPool:
    """Labs created by a test module/session, all closed by :meth:`close` (the fixture's
    finalizer), whatever the tests did."""

    labs: list[Lab] = field(default_factory=list)

    def __call__(self, topology: Topology, *, cls: type[Lab] | None = None, **kw: Any) -> Lab:
        """A started lab; ``cls`` a Lab subclass (nft_lab.NftLab)."""
        lab = (cls or Lab)(topology, **kw)
        self.labs.append(lab)
        return lab.start()

    def close(self) -> None:
        for lab in self.labs:
            lab.close()
        self.labs.clear()


# --------------------------------------------------------------------------------------
# The agent (runs inside a lab namespace: ``python kernel_lab.py --agent NS``)


_ECHO_PREFIX = b"echo "


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return (~s) & 0xFFFF


def _l4(proto: int, l4: bytes) -> dict[str, Any]:
    if proto == 6 and len(l4) >= 14:
        sport, dport = struct.unpack("!HH", l4[:4])
        return {"proto": "tcp", "sport": sport, "dport": dport, "flags": l4[13]}
    if proto == 17 and len(l4) >= 8:
        sport, dport = struct.unpack("!HH", l4[:4])
        return {"proto": "udp", "sport": sport, "dport": dport, "payload": l4[8:]}
    if proto in (1, 58) and len(l4) >= 8:
        typ, code, _, ident, seq = struct.unpack("!BBHHH", l4[:8])
        return {"proto": "icmp", "type": typ, "code": code, "ident": ident, "seq": seq,
                "payload": l4[8:]}
    return {"proto": str(proto)}


def _embedded(family: int, data: bytes) -> dict[str, Any]:
    """The original packet quoted in an ICMP error."""
    try:
        if family == 4:
            ihl = (data[0] & 15) * 4
            info = _l4(data[9], data[ihl:ihl + 8] + b"\0" * 8)
        else:
            info = _l4(data[6], data[40:48] + b"\0" * 8)
    except IndexError:
        return {}
    out: dict[str, Any] = {}
    if "sport" in info:
        out["orig_sport"] = info["sport"]
        out["orig_dport"] = info["dport"]
    if info.get("proto") == "icmp":
        out["orig_ident"] = info["ident"]
    return out


def _holders(family: int, proto: str, port: int) -> str:
    """Which sockets of this namespace hold a port (for the EADDRINUSE message)."""
    states = {"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1",
              "05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT",
              "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING"}
    path = f"/proc/net/{proto}{'6' if family == 6 else ''}"
    found = []
    try:
        with open(path) as f:
            next(f)
            for line in f:
                parts = line.split()
                local, remote, st = parts[1], parts[2], parts[3]
                if int(local.rsplit(":", 1)[1], 16) == port:
                    found.append(f"{local}->{remote} {states.get(st, st)}")
    except (OSError, ValueError, IndexError):
        return "holders unknown"
    return "held by " + (", ".join(found) if found else "nothing visible in " + path)


class _AgentServer:
    """Sends flows, listens, and sniffs arrivals inside one namespace."""

    def __init__(self, ns: str) -> None:
        self.ns = ns
        self.lock = threading.Lock()
        self.listeners: dict[tuple[str, int, int], socket.socket] = {}
        self.accepted: list[socket.socket] = []
        self.greet = False  # send one byte on every accepted connection (Flow.greet)
        self.sniffers: list[tuple[int, socket.socket]] = []
        self.sink: Optional[socket.socket] = None
        self.wake_r, self.wake_w = os.pipe()
        self.thread = threading.Thread(target=self._serve_listeners, daemon=True)
        self.thread.start()

    # -- sniffing ----------------------------------------------------------------------

    def _open_sniffers(self, v6: bool) -> None:
        for proto in (socket.IPPROTO_TCP, socket.IPPROTO_UDP, socket.IPPROTO_ICMP):
            s = socket.socket(socket.AF_INET, socket.SOCK_RAW, proto)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
            s.setblocking(False)
            self.sniffers.append((4, s))
        if v6:
            for proto in (socket.IPPROTO_TCP, socket.IPPROTO_UDP, socket.IPPROTO_ICMPV6):
                s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, proto)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
                s.setblocking(False)
                self.sniffers.append((6, s))

    def _drain(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for fam, s in self.sniffers:
            while True:
                try:
                    if fam == 4:
                        data = s.recv(65535)
                        ihl = (data[0] & 15) * 4
                        info = _l4(data[9], data[ihl:])
                        info["src"] = socket.inet_ntop(socket.AF_INET, data[12:16])
                        info["dst"] = socket.inet_ntop(socket.AF_INET, data[16:20])
                        info["l4raw"] = data[ihl:]
                    else:
                        data, anc, _, addr = s.recvmsg(65535, 256)
                        info = _l4(s.proto, data)
                        info["src"] = addr[0].split("%")[0]
                        info["dst"] = ""
                        for lvl, typ, cdata in anc:
                            if lvl == socket.IPPROTO_IPV6 and typ == socket.IPV6_PKTINFO:
                                info["dst"] = socket.inet_ntop(socket.AF_INET6, cdata[:16])
                        info["l4raw"] = data
                    info["family"] = fam
                    out.append(info)
                except (BlockingIOError, InterruptedError):
                    break
        return out

    def arrivals(self, token: str, family: int, proto: str, ident: int,
                 peer: Optional[str] = None, peer_port: Optional[int] = None) -> dict[str, Any]:
        """The flow's first packet wherever it arrived, ICMP errors, and (``peer``: the
        address the sender sent to) how many answers from it reached this namespace."""
        tok = token.encode()
        want = ipaddress.ip_address(peer) if peer else None
        arrivals: list[dict[str, Any]] = []
        icmp_errors: list[dict[str, Any]] = []
        replies = 0  # answers to the flow that reached this namespace (the sender's)
        for p in self._drain():
            try:
                from_peer = want is not None and ipaddress.ip_address(p["src"]) == want
            except ValueError:
                from_peer = False
            if from_peer and p["family"] == family and (peer_port is None or p.get("sport") in (None, peer_port)) and (
                    (p["proto"] == proto == "tcp" and p.get("dport") == ident and p["flags"] & 0x14)
                    or (p["proto"] == proto == "udp" and p.get("dport") == ident
                        and p["payload"] == _ECHO_PREFIX + tok)
                    or (p["proto"] == proto == "icmp" and p["type"] == (0 if family == 4 else 129)
                        and p["ident"] == ident & 0xFFFF and p["payload"] == tok)):
                replies += 1
            if p["proto"] == "tcp" and proto == "tcp" and p["family"] == family:
                if p["flags"] & 0x02 and not p["flags"] & 0x10:  # SYN without ACK
                    arrivals.append(p)
            elif p["proto"] == "udp" and proto == "udp" and p["payload"] == tok:
                arrivals.append(p)
            elif p["proto"] == "icmp":
                echo_req = 8 if p["family"] == 4 else 128
                if proto == "icmp" and p["type"] == echo_req and p["payload"] == tok:
                    arrivals.append(p)
                elif (p["family"] == 4 and p["type"] in (3, 11, 12)) or (
                        p["family"] == 6 and p["type"] in (1, 2, 3, 4)):
                    raw = p["l4raw"][8:]
                    err = {"type": p["type"], "code": p["code"], "src": p["src"]}
                    err.update(_embedded(p["family"], raw))
                    icmp_errors.append(err)
        self._close_accepted()
        return {"arrivals": [{"proto": a["proto"], "src": a["src"], "dst": a["dst"],
                              "sport": a.get("sport"), "dport": a.get("dport")} for a in arrivals],
                "icmp_errors": icmp_errors, "replies": replies}

    # -- listeners ---------------------------------------------------------------------

    def listen(self, specs: list[list[Any]], greet: bool = False) -> dict[str, Any]:
        wanted = {(str(p), int(f), int(port)) for p, f, port in specs}
        with self.lock:
            self.greet = bool(greet)
            for key in list(self.listeners):
                if key not in wanted:
                    old = self.listeners.pop(key)
                    # shutdown() takes a TCP listener out of LISTEN at once: close() alone
                    # leaves it listening while the serve thread's select() still holds a
                    # reference to the file (until that thread is scheduled again, which
                    # under load can be after the next listen() on the same port: EADDRINUSE).
                    try:
                        old.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    old.close()
            for key in wanted - set(self.listeners):
                self.listeners[key] = self._bind_listener(*key)
        os.write(self.wake_w, b"x")
        return {}

    @staticmethod
    def _bind_listener(proto: str, fam: int, port: int, timeout: float = 5.0) -> socket.socket:
        """A bound (and, for TCP, listening) socket; EADDRINUSE is retried until the port
        is free (a socket of an earlier flow still being torn down) or ``timeout``."""
        af = socket.AF_INET if fam == 4 else socket.AF_INET6
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            s = socket.socket(af, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if fam == 6:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
                elif proto == "udp":
                    s.setsockopt(socket.IPPROTO_IP, _IP_PKTINFO, 1)
                s.bind(("", port))
                if proto == "tcp":
                    s.listen(128)
                s.setblocking(False)
                return s
            except OSError as e:
                s.close()
                if e.errno != errno_mod.EADDRINUSE or time.monotonic() + delay > deadline:
                    raise OSError(e.errno, f"{e.strerror} ({proto} port {port}, IPv{fam}; "
                                  f"{_holders(fam, proto, port)})") from e
                time.sleep(delay)
                delay = min(delay * 2, 0.1)

    def _serve_listeners(self) -> None:
        while True:
            with self.lock:
                socks = dict((s.fileno(), (k, s)) for k, s in self.listeners.items())
            try:
                r, _, _ = select.select([self.wake_r] + list(socks), [], [], 1.0)
            except (OSError, ValueError):
                continue
            for fd in r:
                if fd == self.wake_r:
                    os.read(self.wake_r, 4096)
                    continue
                (proto, fam, _), s = socks[fd]
                try:
                    if proto == "tcp":
                        conn, _ = s.accept()
                        with self.lock:
                            self.accepted.append(conn)
                            greet = self.greet
                        if greet:
                            conn.send(b"!")
                    else:
                        self._echo(s, fam)
                except (BlockingIOError, InterruptedError, OSError):
                    pass

    def _echo(self, s: socket.socket, fam: int) -> None:
        """Send a UDP datagram back from the address it was sent to (after NAT)."""
        data, anc, _, addr = s.recvmsg(65535, 256)
        data = _ECHO_PREFIX + data  # so that sniffers do not take the echo for the flow
        for lvl, typ, cdata in anc:
            if fam == 4 and lvl == socket.IPPROTO_IP and typ == _IP_PKTINFO:
                pkt = struct.pack("=I4s4s", 0, cdata[8:12], b"\0" * 4)
                s.sendmsg([data], [(socket.IPPROTO_IP, _IP_PKTINFO, pkt)], 0, addr)
                return
            if fam == 6 and lvl == socket.IPPROTO_IPV6 and typ == socket.IPV6_PKTINFO:
                pkt = struct.pack("=16sI", cdata[:16], 0)
                s.sendmsg([data], [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, pkt)], 0, addr)
                return
        s.sendto(data, addr)

    def _close_accepted(self, wait: float = 1.0) -> None:
        """Close the connections the listeners accepted, without a packet if possible.

        The sender ends every connection with an RST (SO_LINGER 0); on a loaded machine
        that RST may not have been processed here yet, and closing an ESTABLISHED socket
        (RST, or FIN without SO_LINGER 0) would add a packet the flow never had, counted
        in whatever flow comes next.  So wait (up to ``wait``) for the sender's RST to
        close the socket first; only a connection whose RST never comes is reset here."""
        with self.lock:
            conns, self.accepted = self.accepted, []
        deadline = time.monotonic() + wait
        for c in conns:
            while time.monotonic() < deadline:
                try:
                    state = c.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
                except OSError:
                    break
                if state != _TCP_ESTABLISHED:
                    break
                select.select([c], [], [], max(0.0, min(0.05, deadline - time.monotonic())))
            try:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                c.close()
            except OSError:
                pass

    # -- sending -----------------------------------------------------------------------

    @staticmethod
    def _classify(e: OSError) -> tuple[str, str]:
        name = errno_mod.errorcode.get(e.errno or 0, str(e.errno))
        if e.errno == errno_mod.ECONNREFUSED:
            return "refused", name
        if e.errno in (errno_mod.EHOSTUNREACH, errno_mod.ENETUNREACH, errno_mod.EPROTO,
                       errno_mod.EACCES, errno_mod.ENOPROTOOPT):
            return "unreachable", name
        if e.errno == errno_mod.EPERM:
            return "blocked", name
        if e.errno in (errno_mod.ETIMEDOUT, errno_mod.EAGAIN):
            return "timeout", name
        return "error", name

    def send(self, proto: str, family: int, src: Optional[str], sport: int, dst: str,
             dport: Optional[int], timeout: float, token: str, greet: bool = False,
             **_: Any) -> dict[str, Any]:
        af = socket.AF_INET if family == 4 else socket.AF_INET6
        t0 = time.monotonic()
        result: dict[str, Any] = {}
        if proto == "icmp":
            result = self._send_icmp(af, family, src, sport, dst, timeout, token)
        else:
            s = socket.socket(af, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((src or "", sport))
                s.settimeout(timeout)
                if proto == "udp":
                    if family == 4:
                        s.setsockopt(socket.IPPROTO_IP, _IP_RECVERR, 1)
                    else:
                        s.setsockopt(socket.IPPROTO_IPV6, _IPV6_RECVERR, 1)
                try:
                    s.connect((dst, dport))
                    result["local"] = list(s.getsockname()[:2])
                    if proto == "tcp":
                        result["status"] = "connected"
                        if greet:  # the listener's byte: a reply-direction data segment
                            result["greeted"] = s.recv(1) == b"!"
                    else:
                        s.send(token.encode())
                        data, addr = s.recvfrom(65535)
                        result["status"] = "replied" if data == _ECHO_PREFIX + token.encode() else "error"
                        result["reply_from"] = addr[0]
                except socket.timeout:
                    result["status"] = "timeout"
                except OSError as e:
                    result["status"], result["errno"] = self._classify(e)
            finally:
                if proto == "tcp":
                    try:
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    except OSError:
                        pass
                s.close()
        result["elapsed"] = time.monotonic() - t0
        return result

    def _send_icmp(self, af: int, family: int, src: Optional[str], ident: int, dst: str,
                   timeout: float, token: str) -> dict[str, Any]:
        proto = socket.IPPROTO_ICMP if family == 4 else socket.IPPROTO_ICMPV6
        s = socket.socket(af, socket.SOCK_RAW, proto)
        try:
            if family == 4:
                s.setsockopt(socket.IPPROTO_IP, _IP_MTU_DISCOVER, _IP_PMTUDISC_DONT)
            if src:
                s.bind((src, 0))
            payload = token.encode()
            typ = 8 if family == 4 else 128
            hdr = struct.pack("!BBHHH", typ, 0, 0, ident & 0xFFFF, 1)
            if family == 4:
                hdr = struct.pack("!BBHHH", typ, 0, _csum(hdr + payload), ident & 0xFFFF, 1)
            try:
                s.sendto(hdr + payload, (dst, 0))
            except OSError as e:
                st, name = self._classify(e)
                return {"status": st, "errno": name}
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return {"status": "timeout"}
                r, _, _ = select.select([s], [], [], left)
                if not r:
                    return {"status": "timeout"}
                data, addr = s.recvfrom(65535)
                l4 = data[(data[0] & 15) * 4:] if family == 4 else data
                if len(l4) < 8:
                    continue
                rtype, code, _, rid, _ = struct.unpack("!BBHHH", l4[:8])
                if rtype == (0 if family == 4 else 129) and rid == ident & 0xFFFF and l4[8:] == payload:
                    return {"status": "replied", "reply_from": addr[0].split("%")[0]}
                if (family == 4 and rtype in (3, 11)) or (family == 6 and rtype in (1, 3)):
                    emb = _embedded(family, l4[8:])
                    if emb.get("orig_ident") == ident & 0xFFFF:
                        port = (family == 4 and rtype == 3 and code == 3) or (
                            family == 6 and rtype == 1 and code == 4)
                        return {"status": "refused" if port else "unreachable",
                                "errno": f"icmp type {rtype} code {code}",
                                "reply_from": addr[0].split("%")[0]}
        finally:
            s.close()

    # -- misc --------------------------------------------------------------------------

    def marker(self, sport: int, family: int, wait: float = 0.0) -> dict[str, Any]:
        """Send the fence datagram 127.0.0.1:sport -> 127.0.0.1:9 (or ::1).  ``wait``: how
        long to wait for the sink to receive it, i.e. for its way in through lo (a
        softirq, late under load) to be over, so that it counts in no later flow."""
        af, lo = (socket.AF_INET, "127.0.0.1") if family == 4 else (socket.AF_INET6, "::1")
        if self.sink is None or self.sink.family != af:
            self.sink = socket.socket(af, socket.SOCK_DGRAM)
            self.sink.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sink.bind((lo, MARKER_PORT))
            self.sink.setblocking(False)
        try:
            while True:
                self.sink.recv(65535)
        except (BlockingIOError, OSError):
            pass
        s = socket.socket(af, socket.SOCK_DGRAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((lo, sport))
            try:
                s.sendto(b"kernel-lab marker", (lo, MARKER_PORT))
            except OSError:
                # a DROP in OUTPUT still leaves the raw OUTPUT trace event
                return {"received": False, "sent": False}
        finally:
            s.close()
        deadline = time.monotonic() + wait
        while True:
            try:
                _, addr = self.sink.recvfrom(65535)
                if addr[1] == sport:
                    return {"received": True, "sent": True}
                continue
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                break
            select.select([self.sink], [], [], left)
        return {"received": False, "sent": True}

    def sysctl(self, values: Mapping[str, str]) -> dict[str, Any]:
        failed = {}
        for k, v in values.items():
            path = "/proc/sys/" + k.replace(".", "/")
            try:
                with open(path, "w") as f:
                    f.write(str(v))
            except OSError as e:
                failed[k] = str(e)
        if failed:
            return {"error": f"sysctl failed: {failed}"}
        return {}

    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        op = req.pop("op")
        if op == "hello":
            self._open_sniffers(bool(req.get("v6")))
            return {"ns": self.ns, "pid": os.getpid()}
        if op == "exists":
            return {"exists": os.path.exists(req["path"])}
        if op == "read":
            try:
                with open(req["path"]) as f:
                    return {"exists": True, "text": f.read()}
            except FileNotFoundError:
                return {"exists": False, "text": ""}
        if op == "mark":
            self._drain()
            self._close_accepted()
            return {}
        if op == "send":
            return self.send(**req)
        if op == "arrivals":
            return self.arrivals(**req)
        if op == "listen":
            return self.listen(req["specs"], bool(req.get("greet")))
        if op == "marker":
            return self.marker(**req)
        if op == "sysctl":
            return self.sysctl(req["values"])
        if op == "exec":
            try:
                r = subprocess.run(req["argv"], input=req.get("input"), capture_output=True,
                                   text=True, timeout=req.get("timeout", 30))
            except (OSError, subprocess.TimeoutExpired) as e:
                return {"rc": 127, "stdout": "", "stderr": f"{type(e).__name__}: {e}"}
            return {"rc": r.returncode, "stdout": r.stdout, "stderr": r.stderr}
        return {"error": f"unknown op {op}"}


def _agent_main(ns: str) -> None:
    server = _AgentServer(ns)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            reply = server.handle(json.loads(line))
        except Exception as e:  # reported to the lab, which raises LabError
            reply = {"error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--agent":
        _agent_main(sys.argv[2] if len(sys.argv) > 2 else "?")
    else:
        print(__doc__)
