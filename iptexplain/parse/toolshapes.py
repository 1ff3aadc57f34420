"""The rule shapes that tools write, to fill in what an ``iptables -nL`` listing hid.

``iptables -L`` without ``-v`` prints no ``-i``/``-o``: Docker's ``-A DOCKER -i docker0 -j
RETURN`` lists as a bare ``RETURN all``, and a trace that follows it "as listed" returns before
the DNAT that the kernel applies.  But most rules of a Docker, libvirt, ufw or firewalld host
were not written by hand: the tool wrote them, in fixed shapes.  Where a run of listed rules is
exactly one of those shapes -- same chain, same visible parts, in the tool's order -- the hidden
interface matches are the tool's, and this module fills them in, recording each filling on
``Ruleset.filled`` so that the trace says so ("hidden `-i docker0` filled in from Docker's
standard rules") and its verdict stays marked as resting on an inference.

The knowledge is data (:data:`SHAPES`): each shape is a run of rules in iptables-save syntax with
placeholders, written from the generators' own code and checked against dumps they wrote:

* Docker (moby ``libnetwork/drivers/bridge/setup_ip_tables_linux.go``, ``iptables.go``): the
  classic layout of Docker 20-27 (``fixtures/seed-docker.v4.save``, ``docker20-containers``) and
  the DOCKER-FORWARD / DOCKER-CT / DOCKER-BRIDGE layout of 28.5+ (``moby28.5-*``, ``moby29.0-*``);
* libvirt (``src/util/viriptables.c``: LIBVIRT_INP/OUT/FWI/FWO/FWX, ``libvirt-nat-tftp``);
* ufw (``before.rules`` as shipped: loopback first), firewalld's iptables backend (loopback
  after the conntrack rule in INPUT/FORWARD/OUTPUT);
* kube-proxy (``pkg/proxy/iptables/proxier.go``), flannel and fail2ban (``action.d/iptables*``),
  which write no interface match at all in their chains (kube-proxy's local-traffic detector
  aside): a rule of theirs is known to have none, which spares the trace a fork on it.

Placeholders: ``{br}`` the bridge (only inside ``-i``/``-o``), ``{net}`` a network's subnet,
``{ip}`` an address, ``{port}``, ``{proto}``, ``{to}`` a NAT destination.  A shape's bridge is
known when a visible address ties the run to one network whose bridge the host model names, or
when the listing holds one network of the tool only (its default bridge: ``docker0``,
``virbr0``); otherwise the run is left as listed (the trace forks on it).
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass, field, replace
from typing import Any

from iptexplain.graph import Rule, Ruleset

IFACE_FLAGS = ("-i", "-o")


@dataclass(frozen=True, slots=True)
class Filled:
    """What was filled in on one rule, and from which tool's standard rules."""

    tool: str
    iniface: str | None
    outiface: str | None
    text: str  # "hidden `-i docker0` filled in from Docker's standard rules"


@dataclass(frozen=True)
class Template:
    """One rule of a shape: the visible words (a regex per word) and the hidden -i/-o."""

    words: tuple[str, ...]
    ifaces: tuple[tuple[str, bool, str], ...]  # (flag, inverted, name or "{br}")

    @staticmethod
    def parse(spec: str) -> "Template":
        toks = shlex.split(spec)
        words: list[str] = []
        ifaces: list[tuple[str, bool, str]] = []
        i = 0
        while i < len(toks):
            inv = toks[i] == "!" and i + 1 < len(toks) and toks[i + 1] in IFACE_FLAGS
            j = i + 1 if inv else i
            if toks[j] in IFACE_FLAGS:
                ifaces.append((toks[j], inv, toks[j + 1]))
                i = j + 2
                continue
            words.append(toks[i])
            i += 1
        return Template(tuple(words), tuple(ifaces))


@dataclass(frozen=True)
class Shape:
    """A run of consecutive rules one tool writes in one chain (``chain`` is a regex)."""

    tool: str
    table: str
    chain: str
    rules: tuple[str, ...]
    default_bridge: str | None = None
    # A shape written once per network of the tool: how many times it occurs counts networks.
    per_network: bool = False
    # A shape whose {net} names one of the tool's networks (it lists the networks).
    names_network: bool = False
    # A rule (visible words) the chain must also hold for the shape to be the tool's: Docker
    # writes `! -i BR` on its DNAT rules only alongside `-i BR -j RETURN` (without the userland
    # proxy's hairpin mode the DNAT has no -i at all, and lists the same).
    requires: str | None = None
    # Instead of ``rules``: every rule of the chain whose target matches ``target`` (a regex) is
    # the tool's and has no -i/-o -- except those whose visible words match ``unless`` (a regex),
    # which the tool may write with an interface.
    whole_chain: bool = False
    target: str = ".*"
    unless: str | None = None

    def templates(self) -> list[Template]:
        return [Template.parse(r) for r in self.rules]


def _docker(table: str, chain: str, *rules: str, **kw: Any) -> Shape:
    return Shape("Docker", table, chain, rules, default_bridge="docker0", **kw)


def _libvirt(table: str, chain: str, *rules: str, **kw: Any) -> Shape:
    return Shape("libvirt", table, chain, rules, default_bridge="virbr0", **kw)


CT = "-m conntrack --ctstate RELATED,ESTABLISHED"

SHAPES: tuple[Shape, ...] = (
    # --- Docker, nat -------------------------------------------------------------------------
    _docker("nat", "PREROUTING", "-m addrtype --dst-type LOCAL -j DOCKER"),
    _docker("nat", "OUTPUT", "! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER"),
    _docker("nat", "OUTPUT", "-m addrtype --dst-type LOCAL -j DOCKER"),
    _docker("nat", "POSTROUTING", "-s {net} ! -o {br} -j MASQUERADE", names_network=True),
    _docker("nat", "POSTROUTING", "-o {br} -m addrtype --src-type LOCAL -j MASQUERADE", per_network=True),
    _docker("nat", "POSTROUTING", "-s {ip}/32 -d {ip}/32 -p {proto} -m {proto} --dport {port} -j MASQUERADE"),
    _docker("nat", "DOCKER", "-i {br} -j RETURN", per_network=True),
    _docker("nat", "DOCKER", "! -i {br} -p {proto} -m {proto} --dport {port} -j DNAT --to-destination {to}",
            requires="-j RETURN"),
    _docker("nat", "DOCKER", "-d {ip}/32 ! -i {br} -p {proto} -m {proto} --dport {port} -j DNAT --to-destination {to}",
            requires="-j RETURN"),
    # --- Docker, filter: 20-27 ----------------------------------------------------------------
    _docker("filter", "FORWARD", "-j DOCKER-USER"),
    _docker("filter", "FORWARD", "-j DOCKER-ISOLATION-STAGE-1"),
    _docker("filter", "FORWARD", "-j DOCKER-FORWARD"),
    _docker("filter", "FORWARD", f"-o {{br}} {CT} -j ACCEPT", "-o {br} -j DOCKER",
            "-i {br} ! -o {br} -j ACCEPT", "-i {br} -o {br} -j ACCEPT", per_network=True),
    _docker("filter", "FORWARD", f"-o {{br}} {CT} -j ACCEPT", "-o {br} -j DOCKER",
            "-i {br} ! -o {br} -j ACCEPT", "-i {br} -o {br} -j DROP", per_network=True),
    _docker("filter", "FORWARD", f"-o {{br}} {CT} -j ACCEPT", "-o {br} -j DOCKER",
            "-i {br} ! -o {br} -j ACCEPT", per_network=True),
    _docker("filter", "DOCKER", "-d {ip}/32 ! -i {br} -o {br} -p {proto} -m {proto} --dport {port} -j ACCEPT"),
    _docker("filter", "DOCKER", "! -i {br} -o {br} -j DROP", per_network=True),
    _docker("filter", "DOCKER-ISOLATION-STAGE-1", "-i {br} ! -o {br} -j DOCKER-ISOLATION-STAGE-2",
            per_network=True),
    _docker("filter", "DOCKER-ISOLATION-STAGE-1", "-j RETURN"),
    _docker("filter", "DOCKER-ISOLATION-STAGE-2", "-o {br} -j DROP", per_network=True),
    _docker("filter", "DOCKER-ISOLATION-STAGE-2", "-j RETURN"),
    _docker("filter", "DOCKER-USER", "-j RETURN"),
    # --- Docker, filter: 28.5+ ----------------------------------------------------------------
    _docker("filter", "DOCKER-FORWARD", "-j DOCKER-CT"),
    _docker("filter", "DOCKER-FORWARD", "-j DOCKER-ISOLATION-STAGE-1"),
    _docker("filter", "DOCKER-FORWARD", "-j DOCKER-INTERNAL"),
    _docker("filter", "DOCKER-FORWARD", "-j DOCKER-BRIDGE"),
    _docker("filter", "DOCKER-FORWARD", "-i {br} -j ACCEPT", per_network=True),
    _docker("filter", "DOCKER-CT", f"-o {{br}} {CT} -j ACCEPT", per_network=True),
    _docker("filter", "DOCKER-BRIDGE", "-o {br} -j DOCKER", per_network=True),
    # --- Docker, raw: 28+ (direct access to a container from outside) ------------------------
    _docker("raw", "PREROUTING", "-d {ip}/32 ! -i {br} -j DROP"),
    _docker("raw", "PREROUTING", "-d {ip}/32 ! -i {br} -p {proto} -m {proto} --dport {port} -j DROP"),
    # --- libvirt --------------------------------------------------------------------------------
    _libvirt("filter", "INPUT", "-j LIBVIRT_INP"),
    _libvirt("filter", "OUTPUT", "-j LIBVIRT_OUT"),
    _libvirt("filter", "FORWARD", "-j LIBVIRT_FWX"),
    _libvirt("filter", "FORWARD", "-j LIBVIRT_FWI"),
    _libvirt("filter", "FORWARD", "-j LIBVIRT_FWO"),
    _libvirt("filter", "LIBVIRT_FWI", f"-d {{net}} -o {{br}} {CT} -j ACCEPT",
             "-o {br} -j REJECT --reject-with icmp-port-unreachable", names_network=True),
    _libvirt("filter", "LIBVIRT_FWO", "-s {net} -i {br} -j ACCEPT",
             "-i {br} -j REJECT --reject-with icmp-port-unreachable", names_network=True),
    _libvirt("filter", "LIBVIRT_FWX", "-i {br} -o {br} -j ACCEPT", per_network=True),
    _libvirt("filter", "LIBVIRT_INP", "-i {br} -p {proto} -m {proto} --dport {port} -j ACCEPT"),
    _libvirt("filter", "LIBVIRT_OUT", "-o {br} -p {proto} -m {proto} --dport {port} -j ACCEPT"),
    _libvirt("mangle", "POSTROUTING", "-j LIBVIRT_PRT"),
    _libvirt("mangle", "LIBVIRT_PRT", "-o {br} -p udp -m udp --dport 68 -j CHECKSUM --checksum-fill"),
    _libvirt("nat", "POSTROUTING", "-j LIBVIRT_PRT"),
    _libvirt("nat", "LIBVIRT_PRT", "-s {net} -d 224.0.0.0/24 -j RETURN"),
    _libvirt("nat", "LIBVIRT_PRT", "-s {net} -d 255.255.255.255/32 -j RETURN"),
    _libvirt("nat", "LIBVIRT_PRT", "-s {net} ! -d {net} -p {proto} -j MASQUERADE --to-ports 1024-65535"),
    _libvirt("nat", "LIBVIRT_PRT", "-s {net} ! -d {net} -j MASQUERADE"),
    # --- kube-proxy (pkg/proxy/iptables/proxier.go) and flannel: no rule names an interface,
    # except kube-proxy's local-traffic detector in its BridgeInterface / InterfaceNamePrefix
    # modes (`-i cbr0` / `-i veth+` where ClusterCIDR mode writes `-s 10.244.0.0/16`): a jump to
    # KUBE-MARK-MASQ or to a service chain that shows no source may hide one, and is left alone.
    Shape("kube-proxy", ".*", r"KUBE-(SVC|SVL|EXT|XLB|FW)-.*", (), whole_chain=True,
          unless=r"^(?!.*(?:^| )-s ).*-j (KUBE-MARK-MASQ|KUBE-SVC-\S+|KUBE-SVL-\S+)$"),
    Shape("kube-proxy", ".*", r"KUBE-(?!ROUTER|SVC-|SVL-|EXT-|XLB-|FW-).*", (), whole_chain=True),
    Shape("kube-proxy", ".*", "PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING", (), whole_chain=True,
          target=r"KUBE-(?!ROUTER).*"),
    Shape("flannel", ".*", "FLANNEL-.*", (), whole_chain=True),
    Shape("flannel", ".*", "FORWARD|POSTROUTING", (), whole_chain=True, target="FLANNEL-.*"),
    # --- fail2ban (config/action.d/iptables*.conf: `-p <protocol> -m multiport --dports <port>
    # -j f2b-<name>` in INPUT, `-s <ip> -j <blocktype>` and `-j RETURN` in f2b-<name>) ----------
    Shape("fail2ban", "filter", "f2b-.*", (), whole_chain=True),
    Shape("fail2ban", "filter", "INPUT|FORWARD|DOCKER-USER", (), whole_chain=True, target="f2b-.*"),
    # --- ufw (before.rules as shipped: loopback accepted first) --------------------------------
    Shape("ufw", "filter", "ufw-before-input", ("-i lo -j ACCEPT",)),
    Shape("ufw", "filter", "ufw-before-output", ("-o lo -j ACCEPT",)),
    Shape("ufw", "filter", "INPUT", ("-j ufw-before-logging-input",)),
    Shape("ufw", "filter", "INPUT", ("-j ufw-before-input",)),
    Shape("ufw", "filter", "OUTPUT", ("-j ufw-before-logging-output",)),
    Shape("ufw", "filter", "OUTPUT", ("-j ufw-before-output",)),
    Shape("ufw", "filter", "FORWARD", ("-j ufw-before-logging-forward",)),
    Shape("ufw", "filter", "FORWARD", ("-j ufw-before-forward",)),
    # --- firewalld, iptables backend: loopback after the conntrack rule ------------------------
    Shape("firewalld", "filter", "INPUT", ("-m conntrack --ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT",
                                          "-i lo -j ACCEPT")),
    Shape("firewalld", "filter", "FORWARD", ("-m conntrack --ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT",
                                            "-i lo -j ACCEPT")),
    Shape("firewalld", "filter", "OUTPUT", ("-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                                           "-o lo -j ACCEPT")),
    Shape("firewalld", "filter", "INPUT|FORWARD", ("-m conntrack --ctstate INVALID -j DROP",)),
    Shape("firewalld", "filter", "INPUT", ("-j INPUT_ZONES",)),
    Shape("firewalld", "filter", "FORWARD", ("-j FORWARD_ZONES",)),
    Shape("firewalld", "filter", "INPUT|FORWARD", ("-j REJECT --reject-with icmp-host-prohibited",)),
    Shape("firewalld", "filter", "INPUT", ("-j INPUT_direct",)),
    Shape("firewalld", "filter", "FORWARD", ("-j FORWARD_direct",)),
    Shape("firewalld", "filter", "OUTPUT", ("-j OUTPUT_direct",)),
)

# What a placeholder matches inside a word.
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_VALUE = {"net": r"[0-9a-fA-F.:]+/\d+", "ip": r"[0-9a-fA-F.:]+", "port": r"\d+(?::\d+)?",
          "proto": r"[a-z0-9]+", "to": r"\S+"}


def _word_regex(word: str) -> tuple[re.Pattern[str], list[str]]:
    names: list[str] = []
    out = ""
    pos = 0
    for m in _PLACEHOLDER.finditer(word):
        out += re.escape(word[pos:m.start()])
        names.append(m.group(1))
        out += "(" + _VALUE.get(m.group(1), r"\S+") + ")"
        pos = m.end()
    out += re.escape(word[pos:])
    return re.compile(out + r"\Z"), names


_REGEX_CACHE: dict[str, tuple[re.Pattern[str], list[str]]] = {}


def _match_rule(t: Template, rule: Rule, binding: dict[str, str]) -> dict[str, str] | None:
    """The binding extended by this rule's visible words, or None when they are not the template's."""
    words = rule.save_args()
    if len(words) != len(t.words):
        return None
    b = dict(binding)
    for want, got in zip(t.words, words):
        rx = _REGEX_CACHE.get(want)
        if rx is None:
            rx = _REGEX_CACHE[want] = _word_regex(want)
        m = rx[0].match(got)
        if m is None:
            return None
        for name, value in zip(rx[1], m.groups()):
            if b.setdefault(name, value) != value:
                return None
    return b


@dataclass
class _Run:
    shape: Shape
    rules: list[Rule]
    templates: list[Template]
    binding: dict[str, str]


@dataclass
class _Network:
    net: Any  # ipaddress network
    bridge: str | None = None


@dataclass
class Knowledge:
    """What :func:`fill_in` found: the runs that match a tool's shapes, per tool its networks."""

    runs: list[_Run] = field(default_factory=list)
    networks: dict[str, list[_Network]] = field(default_factory=dict)
    per_network: dict[str, int] = field(default_factory=dict)


def _tool_present(rs: Ruleset, shape: Shape) -> bool:
    if shape.whole_chain:
        return True  # the chain names are the tool's own
    markers = {"Docker": ("DOCKER", "DOCKER-USER", "DOCKER-FORWARD", "DOCKER-ISOLATION-STAGE-1"),
               "libvirt": ("LIBVIRT_INP", "LIBVIRT_FWX", "LIBVIRT_PRT"),
               "ufw": ("ufw-before-input",), "firewalld": ("INPUT_direct", "INPUT_ZONES")}[shape.tool]
    return any(m in t.chains for t in rs.tables.values() for m in markers)


def present_shapes(rs: Ruleset) -> list[Shape]:
    """The shapes of the tools the ruleset shows, the longest run first."""
    shapes = [s for s in SHAPES if _tool_present(rs, s)]
    shapes.sort(key=lambda s: -len(s.rules))  # the longest run first
    return shapes


def chain_runs(shapes: list[Shape], t: Any, c: Any) -> list[_Run]:
    """The runs of chain ``c`` of table ``t`` that match ``shapes``: the one-rule runs of whole
    chains first, then the runs of several rules, left to right."""
    runs: list[_Run] = []
    mine = [s for s in shapes if re.fullmatch(s.table, t.name) and re.fullmatch(s.chain, c.name)]
    if not mine:
        return runs
    if any(s.requires is not None for s in mine):
        shown = {tuple(r.save_args()) for r in c.rules}
        mine = [s for s in mine if s.requires is None or tuple(s.requires.split()) in shown]
    mine_t = [(s, s.templates()) for s in mine]
    rules = c.rules
    for s, _ in mine_t:
        if s.whole_chain:
            runs += _whole_chain_runs(s, rules)
    mine_t = [(s, tp) for s, tp in mine_t if not s.whole_chain]
    i = 0
    while i < len(rules) and mine_t:
        for s, temps in mine_t:
            if i + len(temps) > len(rules):
                continue
            b: dict[str, str] | None = {}
            for k, tpl in enumerate(temps):
                b = _match_rule(tpl, rules[i + k], b)
                if b is None:
                    break
            if b is not None:
                runs.append(_Run(s, rules[i:i + len(temps)], temps, b))
                i += len(temps)
                break
        else:
            i += 1
    return runs


def _find_runs(rs: Ruleset) -> list[_Run]:
    shapes = present_shapes(rs)
    runs: list[_Run] = []
    for t in rs.tables.values():
        for c in t.chains.values():
            runs += chain_runs(shapes, t, c)
    return runs


_NO_IFACE = Template((), ())


def _whole_chain_runs(shape: Shape, rules: list[Rule]) -> list[_Run]:
    """One run per rule a whole-chain shape covers (its target matches, ``unless`` does not)."""
    out = []
    for r in rules:
        if not re.fullmatch(shape.target, r.target_name or ""):
            continue
        if shape.unless is not None and re.search(shape.unless, " ".join(r.save_args())):
            continue
        out.append(_Run(shape, [r], [_NO_IFACE], {}))
    return out


def _addr(value: str) -> Any:
    try:
        return ipaddress.ip_network(value.split(":")[0] if value.count(":") == 1 else value, strict=False)
    except ValueError:
        return None


def _networks(runs: list[_Run], host: Any) -> tuple[dict[str, list[_Network]], dict[str, int]]:
    nets: dict[str, list[_Network]] = {}
    counts: dict[str, dict[Shape, int]] = {}
    for run in runs:
        tool = run.shape.tool
        if run.shape.names_network and "net" in run.binding:
            n = _addr(run.binding["net"])
            if n is not None and not any(x.net == n for x in nets.setdefault(tool, [])):
                nets[tool].append(_Network(n))
        if run.shape.per_network:
            counts.setdefault(tool, {}).setdefault(run.shape, 0)
            counts[tool][run.shape] += 1
    per = {tool: max(c.values()) for tool, c in counts.items()}
    for tool, ns in nets.items():
        for n in ns:
            n.bridge = _host_bridge(host, n.net)
    return nets, per


def _host_bridge(host: Any, net: Any) -> str | None:
    """The interface of the host model (given, not inferred) whose address is in ``net``."""
    if host is None:
        return None
    for name, iface in getattr(host, "interfaces", {}).items():
        if getattr(iface, "inferred", False):
            continue
        for a in iface.addrs:
            try:
                if ipaddress.ip_address(a.address) in net:
                    return name
            except ValueError:
                continue
    return None


def _bridge(run: _Run, know: Knowledge) -> str | None:
    tool = run.shape.tool
    nets = know.networks.get(tool, [])
    for key in ("net", "ip", "to"):
        v = run.binding.get(key)
        a = _addr(v) if v else None
        if a is None:
            continue
        for n in nets:
            if a.version == n.net.version and a.subnet_of(n.net):  # type: ignore[arg-type]
                if n.bridge:
                    return n.bridge
                break
    # One network of the tool in the listing: its default bridge (or the one the host names).
    count = max(len(nets), know.per_network.get(tool, 0))
    if count == 1:
        if nets and nets[0].bridge:
            return nets[0].bridge
        return run.shape.default_bridge
    return None


def fill_in(rs: Ruleset, host: Any = None) -> int:
    """Fill the hidden -i/-o of every rule that is part of a tool's standard run (only where the
    input hid interfaces); return how many rules were filled.  Idempotent.  A listing whose rows
    are still text (:mod:`iptexplain.parse.listing_deferred`) fills them as they are read."""
    if rs.deferred is not None:
        hook = getattr(rs.deferred, "fill_in", None)
        return hook(host) if hook is not None else 0
    if "interfaces" not in (getattr(rs, "hidden", None) or ()):
        return 0
    know = Knowledge(runs=_find_runs(rs))
    know.networks, know.per_network = _networks(know.runs, host)
    return apply_runs(rs, know)


def apply_runs(rs: Ruleset, know: Knowledge, decided: bool = False) -> int:
    """Fill in the rules of ``know.runs`` (see :func:`fill_in`); return how many were filled.
    ``decided``: the runs' rules are not in ``rs.filled`` yet (asked once per rule)."""
    filled = rs.filled
    n = 0
    for run in know.runs:
        if any("interfaces" not in rs.unseen(r) for r in run.rules):
            continue  # read from an input that shows interfaces (several inputs read as one)
        needs = any(name == "{br}" for tpl in run.templates for _, _, name in tpl.ifaces)
        br = _bridge(run, know) if needs else None
        if needs and br is None:
            continue
        for rule, tpl in zip(run.rules, run.templates):
            if not decided and rule in filled:
                continue
            h = rule.header
            kw: dict[str, Any] = {}
            said = []
            for flag, inv, name in tpl.ifaces:
                name = br if name == "{br}" else name
                key = "iniface" if flag == "-i" else "outiface"
                kw[key], kw[key + "_inv"] = name, inv
                said.append(f"{'! ' if inv else ''}{flag} {name}")
            if kw:
                rule.header = replace(h, **kw)
                text = f"hidden `{' '.join(said)}` filled in from {run.shape.tool}'s standard rules"
            else:
                text = f"no -i/-o: {run.shape.tool}'s standard rule has none"
            filled[rule] = Filled(run.shape.tool, kw.get("iniface"), kw.get("outiface"), text)
            n += 1
    return n
