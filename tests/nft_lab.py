"""The kernel lab for nft rulesets: the kernel's own path of a packet through native nft chains.

:class:`NftLab` is a :class:`kernel_lab.Lab` (same namespaces, agents, flows, arrivals and
sender results) whose ruleset is loaded with ``nft -f`` (and, for a mixed host, the iptables-nft
side with ``iptables-nft-restore``), and whose trace comes from ``nft monitor trace`` instead of
``xtables-monitor``:

* the lab adds a table of its own, ``table inet kernel-lab-trace``, with a base chain on
  prerouting and one on output at the lowest priority there is (``-2147483648``, below
  iptables' raw at -300 and conntrack at -200) whose only rule is ``meta nftrace set 1``: every
  packet entering the IP stack is traced from its first hook on, by every base chain of every
  table and family that sees it, iptables-nft's included (those show in nft syntax);
* ``nft -a monitor trace`` prints each event with the table's family, table, chain, the rule
  with its handle and the verdict (``rule … # handle 7 (verdict jump services)``), a chain's
  ``policy``, and the packet at each base chain (``packet: iif "eth0" ip saddr … tcp dport …``);
* a step is ``(family, table, chain, handle, verdict)``, handles being what ``nft -a`` and
  ``nft -j`` print for the loaded ruleset (per table, so the lab's own table changes none).

The lab's own table's events are left out of the steps.  Rule handles depend only on the order
in which a table's rules were loaded, so the handles of ``fixtures/nft/NAME.json`` are the
kernel's in the lab too (:func:`nft_fixtures.load_steps` loads a fixture the same way).

Standard library only; it does not import iptexplain.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

from kernel_lab import HOST, MARKER_PORT, Flow, Lab, LabError, Topology, _Loaded
import nft_fixtures

TRACE_TABLE = "kernel-lab-trace"
"""The lab's own table (family inet): it sets nftrace and is left out of every path."""

LOWEST_PRIORITY = -2147483648
"""INT_MIN, NF_IP_PRI_FIRST: the lab's chains run before any other on their hook."""

TRACE_RULESET = f"""table inet {TRACE_TABLE} {{
	chain trace-prerouting {{
		type filter hook prerouting priority {LOWEST_PRIORITY}; policy accept;
		meta nftrace set 1
	}}
	chain trace-output {{
		type filter hook output priority {LOWEST_PRIORITY}; policy accept;
		meta nftrace set 1
	}}
}}
"""


@dataclass(frozen=True)
class NftPacketHeader:
    """A ``packet:`` event: the packet as a base chain saw it (addresses after earlier NAT)."""

    trace_id: str
    fields: dict[str, str]
    raw: str

    def get(self, key: str) -> Optional[str]:
        return self.fields.get(key)

    @property
    def family(self) -> int:
        return 6 if "ip6 daddr" in self.fields else 4

    @property
    def src(self) -> Optional[str]:
        return self.fields.get("ip saddr") or self.fields.get("ip6 saddr")

    @property
    def dst(self) -> Optional[str]:
        return self.fields.get("ip daddr") or self.fields.get("ip6 daddr")

    def _port(self, which: str) -> Optional[int]:
        for proto in ("tcp", "udp", "sctp", "dccp"):
            v = self.fields.get(f"{proto} {which}")
            if v is not None:
                return int(v)
        return None

    @property
    def sport(self) -> Optional[int]:
        return self._port("sport")

    @property
    def dport(self) -> Optional[int]:
        return self._port("dport")

    @property
    def iif(self) -> Optional[str]:
        return self.fields.get("iif")

    @property
    def oif(self) -> Optional[str]:
        return self.fields.get("oif")

    def fingerprint(self) -> tuple:
        """What stays the same for one packet across hooks and trace ids (not NAT'd fields)."""
        return (self.family, self.fields.get("ip id"), self.fields.get("ip6 flowlabel"),
                self.fields.get("ip length") or self.fields.get("ip6 length"),
                self.fields.get("tcp flags"), self.fields.get("icmp id") or self.fields.get("icmpv6 id"))


@dataclass(frozen=True)
class NftStep:
    """One ``nft monitor trace`` event of a chain: a rule that matched (``rule``), a base
    chain's ``policy``, or a chain's end (``verdict``: the kernel's ``verdict continue`` when
    a chain ran out, ``verdict return``, …).

    ``verdict`` is lower case as nft prints it: ``accept``, ``drop``, ``continue``,
    ``return``, ``jump CHAIN``, ``goto CHAIN``, ``queue``…  (NAT statements end in ``accept``
    and ``reject`` shows as ``drop``, as in the kernel.)  ``rule`` is the rule's text with its
    counters' values left out (``counter``), None for the other kinds."""

    family: str
    table: str
    chain: str
    kind: str
    verdict: str
    rule: Optional[str] = None
    handle: Optional[int] = None
    packet: Optional[NftPacketHeader] = None

    @property
    def key(self) -> tuple[str, str, str, Optional[int], str]:
        return (self.family, self.table, self.chain, self.handle, self.verdict)


@dataclass
class NftTracedPacket:
    """The events of one packet, across the trace ids it had (the id changes when the packet
    loops through lo, for example)."""

    trace_ids: list[str] = field(default_factory=list)
    headers: list[NftPacketHeader] = field(default_factory=list)
    steps: list[NftStep] = field(default_factory=list)

    @property
    def first(self) -> Optional[NftPacketHeader]:
        return self.headers[0] if self.headers else None

    @property
    def last(self) -> Optional[NftPacketHeader]:
        return self.headers[-1] if self.headers else None


# --------------------------------------------------------------------------------------
# Parsing nft monitor trace (pure functions; tested without root)

_EVENT_RE = re.compile(r"^trace id (?P<id>[0-9a-f]+) (?P<family>\S+) (?P<table>\S+) (?P<chain>\S+) "
                       r"(?P<rest>.*?)\s*$")
_RULE_RE = re.compile(r"^rule (?P<text>.*?)(?: # handle (?P<handle>\d+))? \(verdict (?P<verdict>[^)]*)\)$")
_COUNTER_RE = re.compile(r"\bcounter packets \d+ bytes \d+")
_QUOTED_FIELDS = ("iif", "oif", "iifname", "oifname")
_PROTOS = ("ip", "ip6", "tcp", "udp", "sctp", "dccp", "icmp", "icmpv6", "th")


def _header_fields(text: str) -> dict[str, str]:
    """``iif "lo" ip saddr 1.2.3.4 … tcp dport 22 tcp flags == syn`` as a dict keyed by the
    field's words (``"ip saddr"``, ``"tcp dport"``, ``"iif"``)."""
    words = text.split()
    out: dict[str, str] = {}
    i = 0
    while i < len(words):
        w = words[i]
        if w in _QUOTED_FIELDS and i + 1 < len(words):
            out.setdefault(w, words[i + 1].strip('"'))
            i += 2
        elif w in _PROTOS and i + 2 < len(words):
            key = f"{w} {words[i + 1]}"
            value = words[i + 2]
            step = 3
            if value == "==" and i + 3 < len(words):  # tcp flags == syn
                value, step = words[i + 3], 4
            out.setdefault(key, value)
            i += step
        else:
            i += 1
    return out


def parse_event(line: str) -> Optional[tuple[str, Any]]:
    """One line as (trace id, NftPacketHeader or NftStep); None for other lines."""
    m = _EVENT_RE.match(line)
    if not m:
        return None
    tid, rest = m.group("id"), m.group("rest")
    where = dict(family=m.group("family"), table=m.group("table"), chain=m.group("chain"))
    if rest.startswith("packet:"):
        body = rest[len("packet:"):].strip()
        return tid, NftPacketHeader(trace_id=tid, fields=_header_fields(body), raw=line.rstrip("\n"))
    if rest.startswith("rule "):
        rm = _RULE_RE.match(rest)
        if rm is None:
            return None
        handle = int(rm.group("handle")) if rm.group("handle") else None
        text = _COUNTER_RE.sub("counter", rm.group("text")).strip()
        return tid, NftStep(kind="rule", verdict=rm.group("verdict").strip(), rule=text,
                            handle=handle, **where)
    # ``policy accept meta mark 0x00004000``: what follows the verdict is the packet's meta data.
    words = rest.split()
    if len(words) >= 2 and words[0] in ("policy", "verdict"):
        verdict = " ".join(words[1:3]) if words[1] in ("jump", "goto") else words[1]
        return tid, NftStep(kind=words[0], verdict=verdict, **where)
    return None


def is_lab_step(step: NftStep) -> bool:
    return step.family == "inet" and step.table == TRACE_TABLE


def parse_nft_trace(lines: Iterable[str]) -> list[NftTracedPacket]:
    """Group ``nft monitor trace`` lines into packets, in the order they first appeared.

    A packet starts at the lab's own rule (its chains run first on prerouting and output),
    with two exceptions where the kernel shows the same packet under a new trace id:

    * a packet that left through lo and comes back in through lo: it is attached to the
      packet with the same fingerprint that last left via lo;
    * a bridged packet (br_netfilter) runs the prerouting hook twice: once from the bridge
      (the tables' prerouting chains run there), then again as it enters the IP stack, where
      only chains at NF_IP_PRI_FIRST run (br_netfilter's ``ip_sabotage_in`` stops the rest)
      before the forward or input hook.  The second pass shows the very same header at the
      lab's prerouting chain: it is attached to the packet whose lab header it repeats.

    Events under an unknown id that do not start at the lab's rule are attached by
    fingerprint too, or start a packet of their own."""
    packets: list[NftTracedPacket] = []
    by_id: dict[str, NftTracedPacket] = {}
    pending: dict[str, NftPacketHeader] = {}
    lab_headers: list[tuple[dict[str, str], NftTracedPacket]] = []

    def repeated(h: NftPacketHeader) -> Optional[NftTracedPacket]:
        for fields, p in reversed(lab_headers[-50:]):
            if fields == h.fields:
                return p
        return None

    def by_fingerprint(h: NftPacketHeader, *, via_lo: bool) -> Optional[NftTracedPacket]:
        for p in reversed(packets[-50:]):
            if p.last is not None and p.last.fingerprint() == h.fingerprint():
                if via_lo and p.last.oif != "lo":
                    continue
                return p
        return None

    for line in lines:
        ev = parse_event(line)
        if ev is None:
            continue
        tid, item = ev
        if isinstance(item, NftPacketHeader):
            pending[tid] = item
            continue
        step: NftStep = item
        header = pending.pop(tid, None)
        if header is not None:
            step = dataclasses.replace(step, packet=header)
        pkt = by_id.get(tid)
        if pkt is None:
            if header is not None:
                starts = is_lab_step(step) and step.kind == "rule"
                via_lo = header.iif == "lo" and step.chain == "trace-prerouting"
                if not starts or via_lo:
                    pkt = by_fingerprint(header, via_lo=via_lo)
                elif step.chain == "trace-prerouting":
                    pkt = repeated(header)
            if pkt is None:
                pkt = NftTracedPacket()
                packets.append(pkt)
            by_id[tid] = pkt
            pkt.trace_ids.append(tid)
        if header is not None:
            pkt.headers.append(header)
            if is_lab_step(step) and step.chain == "trace-prerouting":
                lab_headers.append((header.fields, pkt))
        if not is_lab_step(step):
            pkt.steps.append(step)
    return packets


def packet_matches(header: Optional[NftPacketHeader], flow: Flow, sport: int) -> bool:
    """Is this header the flow's first packet as the sender sent it?"""
    if header is None or header.dst is None:
        return False
    try:
        if ipaddress.ip_address(header.dst) != ipaddress.ip_address(flow.dst):
            return False
    except ValueError:
        return False
    if flow.proto == "icmp":
        ident = header.get("icmp id") or header.get("icmpv6 id")
        return header.sport is None and (ident is None or int(ident) == sport & 0xFFFF)
    return header.sport == sport and header.dport == flow.dport


# --------------------------------------------------------------------------------------
# The lab


class NftLab(Lab):
    """A :class:`kernel_lab.Lab` traced by ``nft monitor trace`` (see the module docstring).

    Load with :meth:`load_nft` (``nft -f``), :meth:`load_iptables` (``iptables-nft-restore``,
    for a mixed host) or :meth:`load_fixture`; each load re-arms the trace (the monitor only
    prints rules it has cached, so it restarts after every load).  Counters are off: the
    trace is the record here."""

    def __init__(self, topology: Topology, **kw: Any) -> None:
        kw.setdefault("counters", False)
        super().__init__(topology, **kw)
        self.nft_tables: list[str] = []

    def load_nft(self, ruleset: str) -> None:
        self.run(HOST, "nft", "-f", "-", input=ruleset)
        self._arm()

    def load_iptables(self, ruleset: str, family: int = 4) -> None:
        """An iptables-save dump loaded with iptables-nft (no xtables TRACE rules: the lab's
        nftrace chains trace its packets too)."""
        self.run(HOST, self._tool("nft", family, "-restore"), input=ruleset)
        self._arm()

    def load(self, ruleset: str, backend: str = "nft", family: int = 4, *,  # type: ignore[override]
             ipsets: Optional[str] = None) -> None:
        if backend != "nft":
            raise LabError("an nft lab loads iptables rules with iptables-nft only")
        if ipsets:
            self.run(HOST, "ipset", "restore", "-exist", input=ipsets)
        self.load_iptables(ruleset, family)

    def load_fixture(self, fx: "nft_fixtures.NftFixture") -> None:
        for argv, text in nft_fixtures.load_steps(fx):
            self.run(HOST, *argv, input=text)
        self._arm()

    def ruleset(self, *, json: bool = False, handles: bool = False) -> str:
        """``nft [-j] [-a] list ruleset`` of the lab host, the lab's own table left out."""
        argv = ["nft"] + (["-j"] if json else []) + (["-a"] if handles else []) + ["list", "ruleset"]
        text = self.run(HOST, *argv).stdout
        if json:
            return text
        return re.sub(rf"(?ms)^table inet {re.escape(TRACE_TABLE)} \{{.*?^\}}\n", "", text)

    def _arm(self) -> None:
        tables = self.run(HOST, "nft", "list", "tables").stdout.split("\n")
        if not any(t.strip() == f"table inet {TRACE_TABLE}" for t in tables):
            self.run(HOST, "nft", "-f", "-", input=TRACE_RULESET)
        self.nft_tables = [t.strip()[len("table "):] for t in tables
                           if t.strip() and t.strip() != f"table inet {TRACE_TABLE}"]
        for fam in (4, 6):
            self.loaded[fam] = _Loaded("nft", list(self.nft_tables), True)
        if self.trace:
            if self.monitor is not None:
                self.monitor.stop()
                self.monitor = None
            self._ensure_monitor()

    # -- tracing: nft monitor trace instead of xtables-monitor -----------------------

    def _monitor_argv(self) -> list[str]:
        return ["nft", "-a", "monitor", "trace"]

    @staticmethod
    def _marker_pred(port: int, inbound: bool = False) -> Any:
        needle = f"udp sport {port} udp dport {MARKER_PORT}"

        def pred(line: str) -> bool:
            return (" packet: " in line and needle in line
                    and ("ip saddr 127.0.0.1 " in line or "ip6 saddr ::1 " in line)
                    and (not inbound or 'iif "lo"' in line))
        return pred

    def _trace_steps(self, lines: list[str], flow: Flow, sport: int, token: str,
                     notes: list[str]) -> tuple[list[Any], list[Any]]:
        packets = parse_nft_trace(lines)
        first = next((p for p in packets if packet_matches(p.first, flow, sport)), None)
        if first is None:
            notes.append("the first packet does not appear in the trace")
            return packets, []
        unknown = [s for s in first.steps if s.kind == "rule" and s.handle is None]
        if unknown:
            notes.append(f"{len(unknown)} rule event(s) without a handle (rules nft had not cached)")
        return packets, first.steps
