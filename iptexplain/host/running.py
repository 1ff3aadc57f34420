"""The host this runs on: its interfaces, addresses and routes from ``ip -j`` (or plain ``ip``
output, for an iproute2 without JSON), its policy routing rules, and the sysctls netfilter
decisions depend on, from /proc.  Read-only: fixed argument lists, no shell.  What the output
says is read by :mod:`iptexplain.host.readers`, the same readers saved output goes through.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterable

from iptexplain.core.errors import InputError
from iptexplain.host.model import HostModel
from iptexplain.host.readers import (host_from_ip_json, parse_ip_addr_text, parse_ip_route_text, parse_ip_rule_json,
                                     policy_routing_note)

# ip(8) and its helpers live in sbin, which a non-login root shell may not have on PATH.
SEARCH_PATH = "/usr/local/sbin:/usr/sbin:/sbin:/usr/local/bin:/usr/bin:/bin"
IP_TIMEOUT = 15.0


def find_tool(name: str) -> str | None:
    return shutil.which(name, path=os.environ.get("PATH", "") + ":" + SEARCH_PATH)


def run_ip(args: list[str]) -> str:
    """Run ``ip`` with a fixed argument list; InputError on any failure."""
    # subprocess (~5 ms) only for a live read: a trace of a file reads host files, if any.
    import subprocess
    exe = find_tool("ip")
    if exe is None:
        raise InputError("the `ip' command (iproute2) is not installed; save `ip -j addr' and "
                         "`ip -j route show table all' on the host instead", "live host")
    try:
        p = subprocess.run([exe, *args], capture_output=True, text=True, timeout=IP_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise InputError(f"`ip {' '.join(args)}' did not finish in {IP_TIMEOUT:.0f}s", "live host") from None
    except OSError as e:
        raise InputError(f"cannot run `ip': {e.strerror or e}", "live host") from None
    if p.returncode != 0:
        msg = (p.stderr.strip().splitlines() or ["failed"])[0]
        raise InputError(f"`ip {' '.join(args)}': {msg}", "live host")
    return p.stdout


# The sysctls that change what netfilter and routing do to a packet.
GLOBAL_SYSCTLS = (
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/forwarding",
    "net/ipv4/conf/all/route_localnet",
    "net/ipv4/conf/all/rp_filter",
    "net/ipv4/conf/default/rp_filter",
    "net/ipv6/conf/all/forwarding",
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
    "net/netfilter/nf_conntrack_tcp_loose",
)
IFACE_SYSCTLS = ("route_localnet", "rp_filter", "forwarding")


def read_sysctls(ifaces: Iterable[str], proc: str = "/proc/sys") -> dict[str, str]:
    """The forwarding, route_localnet, rp_filter and bridge-nf sysctls of this network namespace
    (missing ones -- no br_netfilter, no IPv6 -- are left out)."""
    out: dict[str, str] = {}
    paths = list(GLOBAL_SYSCTLS)
    for name in ifaces:
        if "/" in name or name in (".", ".."):
            continue
        paths += [f"net/ipv4/conf/{name}/{k}" for k in IFACE_SYSCTLS]
    for rel in paths:
        try:
            value = Path(proc, rel).read_text().strip()
        except OSError:
            continue
        out[rel.replace("/", ".")] = value
    return out


def _read_ip_text() -> HostModel:
    """The model from plain ``ip`` output, for iproute2 older than JSON output (4.13: CentOS 7)."""
    host = HostModel(source="live")
    for iface in parse_ip_addr_text(run_ip(["-d", "addr", "show"]), "ip -d addr"):
        host.add_interface(iface)
    host.routes.extend(parse_ip_route_text(run_ip(["-4", "route", "show", "table", "all"]), "ip -4 route", 4))
    try:
        host.routes.extend(parse_ip_route_text(run_ip(["-6", "route", "show", "table", "all"]), "ip -6 route", 6))
    except InputError:
        pass  # IPv6 disabled
    host.notes.append("interfaces, addresses and routes (live: plain `ip addr' and `ip route show table "
                      "all'; this iproute2 has no JSON output)")
    return host


def read_host(sysctls: bool = True) -> HostModel:
    """The model of the host this runs on, from ``ip -j`` and /proc (read-only).

    An iproute2 without JSON output is read in its text form; without iproute2 at all the model
    is left empty (the tracer then infers interfaces from the ruleset) and a note says so.
    """
    if find_tool("ip") is None:
        host = HostModel(source="live")
        host.notes.append("`ip' (iproute2) is not installed: interfaces and routes were not read; "
                          "they are inferred from the ruleset")
        if sysctls:
            host.sysctls.update(read_sysctls([]))
        return host
    try:
        addr = run_ip(["-j", "-d", "addr", "show"])
        if not addr.lstrip().startswith("["):
            raise InputError("no JSON output", "ip")
        json_ok = True
    except InputError:
        json_ok = False
    if json_ok:
        route4 = run_ip(["-j", "-4", "route", "show", "table", "all"])
        try:
            route6 = run_ip(["-j", "-6", "route", "show", "table", "all"])
        except InputError:
            route6 = "[]"  # IPv6 disabled
        host = host_from_ip_json(addr, route4, route6, source="live")
    else:
        host = _read_ip_text()
    for fam_args, fam in ((["-j", "rule", "show"], 4), (["-j", "-6", "rule", "show"], 6)):
        try:
            rules = parse_ip_rule_json(run_ip(fam_args), "ip -j rule")
        except InputError:
            continue  # no IPv6, or an ip without rule support: nothing to report
        if rules:
            host.notes.append(policy_routing_note(rules, fam))
    if sysctls:
        host.sysctls.update(read_sysctls(host.interfaces))
        host.notes.append("sysctls from /proc/sys")
    return host
