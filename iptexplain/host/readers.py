"""The host model from ``ip`` output and /proc: interfaces, addresses, routes and the sysctls
netfilter decisions depend on.

Two ways in, one model out:

* saved text -- ``ip -j addr`` / ``ip -j route`` (JSON, the exact form), or plain ``ip addr``,
  ``ip -o addr``, ``ip -br addr`` and ``ip route`` as people paste them into tickets;
* the live host -- :func:`iptexplain.host.running.read_host` runs ``ip -j -d addr show`` and
  ``ip -j -4/-6 route show table all`` (fixed argument lists, no shell), reads the sysctls from
  /proc, and hands the output to the readers here.

``addrtype --dst-type LOCAL`` is decided by the ``local`` table of routes, INPUT versus FORWARD by
the routing decision, and MASQUERADE's address by the preferred source of the route out: so the
``local`` and ``broadcast`` routes are kept, not only ``main``.  Nothing here changes the host.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any, Iterable

from iptexplain.core.addr import parse_ip
from iptexplain.core.errors import InputError, OptionError
from iptexplain.host.model import HostModel, IfAddr, Interface, Route
from iptexplain.numbers import decimal, shown
from iptexplain.schema import Where, want_address, want_bool, want_dict, want_family, want_int, want_list, want_name, want_prefix, want_str

ROUTE_TYPES = frozenset(
    {"unicast", "local", "broadcast", "multicast", "anycast", "blackhole", "unreachable",
     "prohibit", "throw", "nat", "xresolve"}
)
_FAMILIES = {"inet": 4, "inet6": 6}


# ---------------------------------------------------------------------------------------------
# Helpers


def _family_of(text: str | None) -> int | None:
    if not text or text == "default":
        return None
    return 6 if ":" in text else 4


def _prefix(dst: str, family: int) -> str:
    """``ip`` prints host routes without a length (``127.0.0.1``); the model keeps a prefix."""
    if dst in ("default", ""):
        return "default"
    if "/" in dst:
        return dst
    return f"{dst}/{32 if family == 4 else 128}"


def _json(text: str, source: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"not valid `{what}' JSON: {e.msg}", source, e.lineno) from None


def _iface_kind(obj: dict) -> str:
    info = obj.get("linkinfo") or {}
    kind = info.get("info_kind") if isinstance(info, dict) else None
    if kind:
        return str(kind)
    return str(obj.get("link_type") or "")


# ---------------------------------------------------------------------------------------------
# ip -j addr


def parse_ip_addr_json(text: str, source: str = "<ip -j addr>") -> list[Interface]:
    """``ip -j [-d] addr show`` -> interfaces with their addresses, in the kernel's order."""
    data = _json(text, source, "ip -j addr")
    if not isinstance(data, list) or any(not isinstance(x, dict) or "ifname" not in x for x in data):
        raise InputError("not `ip -j addr' output (expected a list of interfaces with `ifname')", source)
    out: list[Interface] = []
    top = Where(source)
    for i, obj in enumerate(data):
        w = top[i]
        flags = want_list(obj.get("flags"), w["flags"], optional=True)
        iface = Interface(
            name=str(want_str(obj["ifname"], w["ifname"])),
            kind=_iface_kind(obj),
            up="UP" in flags,
        )
        for j, a in enumerate(want_list(obj.get("addr_info"), w["addr_info"], optional=True)):
            wa = w["addr_info"][j]
            a = want_dict(a, wa)
            word = a.get("family")
            fam = _FAMILIES.get(word) if isinstance(word, str) else None
            if fam is None or "local" not in a:
                continue
            bits = 32 if fam == 4 else 128
            iface.addrs.append(IfAddr(want_address(a["local"], wa["local"], fam),
                                      want_int(a.get("prefixlen", bits), wa["prefixlen"], 0, bits), fam))
        out.append(iface)
    return out


# ---------------------------------------------------------------------------------------------
# ip -j route


def _route_from_json(obj: dict, family_hint: int | None, w: Where | None = None) -> Route | None:
    w = w or Where("<ip -j route>")
    dst = want_prefix(obj.get("dst", "default"), w["dst"])
    gateway = want_str(obj.get("gateway"), w["gateway"], optional=True)
    via = obj.get("via")
    if via is not None:
        via = want_dict(via, w["via"])
        gateway = gateway or want_str(via.get("host"), w["via"]["host"], optional=True)
    dev = want_str(obj.get("dev"), w["dev"], optional=True)
    nexthops = want_list(obj.get("nexthops"), w["nexthops"], optional=True)
    if dev is None and nexthops:
        first = want_dict(nexthops[0], w["nexthops"][0])
        dev = want_str(first.get("dev"), w["nexthops"][0]["dev"], optional=True)
        gateway = gateway or want_str(first.get("gateway"), w["nexthops"][0]["gateway"], optional=True)
    if gateway:
        want_address(gateway, w["gateway"])
    prefsrc = want_str(obj.get("prefsrc"), w["prefsrc"], optional=True)
    if prefsrc:
        want_address(prefsrc, w["prefsrc"])
    family = _family_of(dst) or _family_of(gateway) or _family_of(prefsrc) or family_hint or 4
    rtype = want_name(obj.get("type", "unicast"), w["type"])
    return Route(
        dst=_prefix(dst, family),
        dev=dev or "",
        via=gateway or None,
        src=prefsrc or None,
        family=family,
        type=rtype,
        table=want_name(obj.get("table", "main"), w["table"]),
    )


def parse_ip_route_json(text: str, source: str = "<ip -j route>", family: int | None = None) -> list[Route]:
    """``ip -j [-4|-6] route show [table all]`` -> routes.  ``family`` is the -4/-6 the output
    was made with (a ``default`` route without a gateway says nothing of its family)."""
    data = _json(text, source, "ip -j route")
    if not isinstance(data, list) or any(not isinstance(x, dict) for x in data):
        raise InputError("not `ip -j route' output (expected a list of routes)", source)
    if data and not any("dst" in x or "dev" in x for x in data):
        raise InputError("not `ip -j route' output (no route has `dst' or `dev')", source)
    out = []
    top = Where(source)
    for i, obj in enumerate(data):
        r = _route_from_json(obj, family, top[i])
        if r is not None:
            out.append(r)
    return out


# ---------------------------------------------------------------------------------------------
# Plain text: ip addr, ip -o addr, ip -br addr, ip route

_LINK_RE = re.compile(r"^([0-9]+):\s+([^:@\s]+)(?:@\S+)?:\s+<([^>]*)>")
# Each word is one character class up to a separator it cannot contain (no lazy `\S+?` before an
# optional `@\S+`: on a 40 KB line of `x@x@…` that backtracks quadratically, 30 s).
_ADDR_RE = re.compile(r"^\s*(inet6?)\s+([^\s/]+)(?:/([0-9]+))?(?:\s+peer\s+\S+)?(?:\s|$)")
_ONELINE_RE = re.compile(r"^([0-9]+):\s+([^\s@]+)(?:@\S+)?\s+(inet6?)\s+([^\s/]+)(?:/([0-9]+))?\s")
_KIND_RE = re.compile(r"^\s*link/(\S+)")
_INFO_KIND_RE = re.compile(r"^\s*(bridge|veth|vxlan|dummy|bond|vlan|macvlan|ipvlan|tun|wireguard|geneve|gre|ipip|sit)\b")


def parse_ip_addr_text(text: str, source: str = "<ip addr>") -> list[Interface]:
    """Plain ``ip addr``, one-line ``ip -o addr`` or brief ``ip -br addr`` output."""
    ifaces: dict[str, Interface] = {}
    current: Interface | None = None
    seen_any = False
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = _ONELINE_RE.match(line)
        if m and "\\" in line:  # ip -o addr: one address per line
            name, fam_word, addr, plen = m.group(2), m.group(3), m.group(4), m.group(5)
            iface = ifaces.setdefault(name, Interface(name))
            fam = 6 if fam_word == "inet6" else 4
            iface.addrs.append(_text_ifaddr(addr, plen, fam, source, lineno))
            seen_any = True
            continue
        m = _LINK_RE.match(line)
        if m:
            name = m.group(2)
            if "\\" in line:  # ip -o link-style line of ip -o addr (link info only)
                ifaces.setdefault(name, Interface(name, up="UP" in m.group(3).split(",")))
                seen_any = True
                continue
            current = ifaces.setdefault(name, Interface(name))
            current.up = "UP" in m.group(3).split(",")
            seen_any = True
            continue
        if current is not None and line[:1].isspace():
            m2 = _ADDR_RE.match(line)
            if m2:
                fam = 6 if m2.group(1) == "inet6" else 4
                current.addrs.append(_text_ifaddr(m2.group(2), m2.group(3), fam, source, lineno))
                continue
            m3 = _KIND_RE.match(line)
            if m3 and not current.kind:
                current.kind = m3.group(1)
                continue
            m4 = _INFO_KIND_RE.match(line)
            if m4 and current.kind in ("", "ether", "none"):
                current.kind = m4.group(1)
            continue
        # ip -br addr: NAME STATE ADDR/LEN ADDR/LEN ...
        parts = line.split()
        if len(parts) >= 2 and parts[1] in ("UP", "DOWN", "UNKNOWN", "LOWERLAYERDOWN", "DORMANT", "NOTPRESENT"):
            name = parts[0].split("@")[0]
            iface = ifaces.setdefault(name, Interface(name))
            iface.up = parts[1] != "DOWN"
            for word in parts[2:]:
                try:
                    ipi = ipaddress.ip_interface(word)
                except ValueError:
                    continue
                iface.addrs.append(IfAddr(str(ipi.ip), ipi.network.prefixlen, ipi.version))
            seen_any = True
            continue
        if current is None:
            raise InputError(f"not `ip addr' output: `{line.strip()[:60]}'", source, lineno)
    if not seen_any:
        raise InputError("not `ip addr' output (no interface found)", source)
    return list(ifaces.values())


def _text_ifaddr(addr: str, plen: str | None, fam: int, source: str, lineno: int) -> IfAddr:
    """An ``inet``/``inet6`` address of ``ip addr`` text, checked: a bad one is the line's error."""
    bits = 32 if fam == 4 else 128
    try:
        parse_ip(addr, fam)
        length = decimal(plen, "prefix length", bits) if plen else bits
    except OptionError as e:
        raise InputError(f"bad {'inet6' if fam == 6 else 'inet'} address `{shown(addr)}"
                         f"{'/' + shown(plen) if plen else ''}': {e}", source, lineno) from None
    return IfAddr(addr, length, fam)


_ROUTE_KEYS_1 = {"via", "dev", "src", "table", "proto", "scope", "metric", "mtu", "pref", "realm",
                 "expires", "onlink", "linkdown", "weight", "nexthop", "tos", "advmss", "hoplimit",
                 "rtt", "rttvar", "window", "cwnd", "initcwnd", "initrwnd", "features", "quickack",
                 "congctl", "fastopen_no_cookie", "ttl-propagate", "encap", "nhid"}


def parse_ip_route_text(text: str, source: str = "<ip route>", family: int | None = None) -> list[Route]:
    """Plain ``ip [-4|-6] route show [table all]`` output."""
    out: list[Route] = []
    last: Route | None = None
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped:
            continue
        words = stripped.split()
        if line[:1].isspace() and words[0] == "nexthop" and last is not None:
            # multipath continuation: the first nexthop gives dev/via of the route
            kv = _pairs(words[1:])
            if not last.dev:
                last.dev = kv.get("dev", "")
                last.via = kv.get("via")
            continue
        rtype = "unicast"
        if words[0] in ROUTE_TYPES:
            rtype = words.pop(0)
        if not words:
            raise InputError(f"not `ip route' output: `{stripped[:60]}'", source, lineno)
        dst = words.pop(0)
        if dst in _ROUTE_KEYS_1 or not (dst == "default" or _looks_like_prefix(dst)):
            raise InputError(f"not `ip route' output: `{stripped[:60]}'", source, lineno)
        kv = _pairs(words)
        for key in ("via", "src"):
            if key in kv:
                try:
                    parse_ip(kv[key])
                except OptionError:
                    raise InputError(f"bad `{key}' address `{shown(kv[key])}'", source, lineno) from None
        fam = _family_of(dst) or _family_of(kv.get("via")) or _family_of(kv.get("src")) or family or 4
        last = Route(
            dst=_prefix(dst, fam), dev=kv.get("dev", ""), via=kv.get("via"), src=kv.get("src"),
            family=fam, type=rtype, table=kv.get("table", "main"),
        )
        out.append(last)
    return out


def _looks_like_prefix(word: str) -> bool:
    try:
        ipaddress.ip_network(word, strict=False)
        return True
    except ValueError:
        return False


def _pairs(words: list[str]) -> dict[str, str]:
    kv: dict[str, str] = {}
    i = 0
    while i < len(words):
        w = words[i]
        if w in ("onlink", "linkdown", "dead", "pervasive", "offload", "trap", "rt_offload"):
            i += 1
            continue
        if i + 1 < len(words):
            if w == "via" and words[i + 1] in ("inet", "inet6") and i + 2 < len(words):
                kv.setdefault("via", words[i + 2])
                i += 3
                continue
            kv.setdefault(w, words[i + 1])
        i += 2
    return kv


# ---------------------------------------------------------------------------------------------
# sysctl -a / saved key = value lines


def parse_sysctl_text(text: str, source: str = "<sysctl>") -> dict[str, str]:
    """``sysctl -a`` style ``key = value`` lines (only the net.* keys are kept)."""
    out: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise InputError(f"not `sysctl' output: `{line.strip()[:60]}'", source, lineno)
        key = key.strip().replace("/", ".")
        if key.startswith("net."):
            out[key] = value.strip()
    return out


# ---------------------------------------------------------------------------------------------
# One entry point for saved text


def detect_ip_output(text: str) -> str:
    """'addr' or 'route' (JSON or text), 'rule' (``ip -j rule``), or 'sysctl'."""
    t = text.lstrip()
    if t.startswith("["):
        head = t[:4096]
        if '"ifname"' in head:
            return "addr"
        if '"priority"' in head and '"dst"' not in head and '"dev"' not in head:
            return "rule"
        return "route"
    for line in t.splitlines()[:20]:
        if _LINK_RE.match(line) or _ONELINE_RE.match(line):
            return "addr"
        if re.match(r"^\s*net\.\S+\s*=", line):
            return "sysctl"
    first = t.split(None, 1)[0] if t.split() else ""
    if first in ROUTE_TYPES or first == "default" or _looks_like_prefix(first):
        return "route"
    return "addr"


def host_from_ip(texts: Iterable[tuple[str, str]], family: int | None = None) -> HostModel:
    """A host model from saved ``ip`` outputs, each given as ``(text, source)``; the kind of each
    (addr or route, JSON or text, or sysctl lines) is detected."""
    host = HostModel(source="ip")
    for text, source in texts:
        kind = detect_ip_output(text)
        is_json = text.lstrip().startswith("[")
        if kind == "addr":
            ifaces = parse_ip_addr_json(text, source) if is_json else parse_ip_addr_text(text, source)
            for iface in ifaces:
                host.add_interface(iface)
            host.notes.append(f"interfaces and addresses from {source}")
        elif kind == "route":
            routes = parse_ip_route_json(text, source, family) if is_json else parse_ip_route_text(text, source, family)
            host.routes.extend(routes)
            host.notes.append(f"routes from {source}")
        elif kind == "rule":
            rules = parse_ip_rule_json(text, source)
            if rules:
                host.notes.append(policy_routing_note(rules, family or 4))
        else:
            host.sysctls.update(parse_sysctl_text(text, source))
            host.notes.append(f"sysctls from {source}")
    return host


def policy_routing_note(rules: list[str], family: int) -> str:
    return (f"policy routing: IPv{family} has {len(rules)} routing rule(s) beyond local/main/default "
            f"({'; '.join(rules[:3])}{'; …' if len(rules) > 3 else ''}); routes are looked up in the "
            f"main table only")


# ---------------------------------------------------------------------------------------------
# ip -j rule: policy routing


def parse_ip_rule_json(text: str, source: str = "<ip -j rule>") -> list[str]:
    """The policy routing rules other than the standard ``local``/``main``/``default`` lookups,
    as ``ip rule`` prints them (``100: from all fwmark 0x4000 lookup 100``).

    The host model routes with the local and main tables, as a host without such rules does;
    these rules are reported so that a trace on a host that has them says so.
    """
    data = _json(text, source, "ip -j rule")
    if not isinstance(data, list):
        raise InputError("not `ip -j rule' output (expected a list of rules)", source)
    out = []
    for r in data:
        if not isinstance(r, dict):
            continue
        selectors = {k: v for k, v in r.items() if k not in ("priority", "src", "table", "srclen", "iif_detached", "oif_detached", "flags", "protocol")}
        src = str(r.get("src", "all"))
        if r.get("srclen") is not None:
            src = f"{src}/{r['srclen']}"
        if src == "all" and not selectors and r.get("table") in ("local", "main", "default"):
            continue
        words = [f"{r.get('priority', '?')}:", "from", src]
        if r.get("dst"):
            words += ["to", f"{r['dst']}/{r['dstlen']}" if r.get("dstlen") is not None else str(r["dst"])]
        for key in ("fwmark", "iif", "oif", "ipproto", "sport", "dport", "uidrange", "l3mdev", "tos", "dsfield"):
            if key in r and r[key] is not None:
                words += [key, str(r[key])]
        if r.get("not"):
            words.insert(1, "not")
        action = f"lookup {r['table']}" if "table" in r else str(r.get("action", r.get("type", "")))
        words.append(action)
        out.append(" ".join(w for w in words if w))
    return out


def host_from_ip_json(addr: str, route4: str, route6: str | None = None, source: str = "ip -j") -> HostModel:
    """The model from the three outputs :func:`iptexplain.host.running.read_host` collects (saved
    or live)."""
    host = HostModel(source=source)
    for iface in parse_ip_addr_json(addr, "ip -j addr"):
        host.add_interface(iface)
    host.routes.extend(parse_ip_route_json(route4, "ip -j -4 route", 4))
    if route6:
        host.routes.extend(parse_ip_route_json(route6, "ip -j -6 route", 6))
    host.notes.append(f"interfaces, addresses and routes ({source}: ip -j addr, ip -j route show table all)")
    return host


# ---------------------------------------------------------------------------------------------
# JSON form (snapshots)


def host_to_dict(host: HostModel) -> dict:
    return {
        "source": host.source,
        "interfaces": [
            {
                "name": i.name, "kind": i.kind, "up": i.up, "inferred": i.inferred,
                "addrs": [{"address": a.address, "prefixlen": a.prefixlen, "family": a.family} for a in i.addrs],
            }
            for i in host.interfaces.values()
        ],
        "routes": [
            {"dst": r.dst, "dev": r.dev, "via": r.via, "src": r.src, "family": r.family, "type": r.type,
             "table": r.table, "inferred": r.inferred}
            for r in host.routes
        ],
        "sysctls": dict(host.sysctls),
        "notes": list(host.notes),
        "containers": dict(host.containers),
    }


def host_from_dict(d: Any, source: str = "<snapshot>") -> HostModel:
    """A snapshot's host model, every value checked (:mod:`iptexplain.schema`): a wrong type or
    a bad address is one error naming its place, ``host.routes[3].via: expected a string``."""
    top = Where(source, "host")
    d = want_dict(d, top)
    host = HostModel(source=want_str(d.get("source"), top["source"], optional=True) or "snapshot")
    for n, i in enumerate(want_list(d.get("interfaces"), top["interfaces"], optional=True)):
        w = top["interfaces"][n]
        i = want_dict(i, w)
        addrs = []
        for k, a in enumerate(want_list(i.get("addrs"), w["addrs"], optional=True)):
            wa = w["addrs"][k]
            a = want_dict(a, wa)
            fam = want_family(a.get("family", 4), wa["family"])
            addrs.append(IfAddr(want_address(a.get("address"), wa["address"], fam),
                                want_int(a.get("prefixlen"), wa["prefixlen"], 0, 32 if fam == 4 else 128), fam))
        host.add_interface(Interface(
            name=str(want_str(i.get("name"), w["name"])),
            kind=want_str(i.get("kind"), w["kind"], optional=True) or "",
            up=want_bool(i.get("up", True), w["up"]),
            inferred=want_bool(i.get("inferred", False), w["inferred"]),
            addrs=addrs,
        ))
    for n, r in enumerate(want_list(d.get("routes"), top["routes"], optional=True)):
        w = top["routes"][n]
        r = want_dict(r, w)
        fam = want_family(r.get("family", 4), w["family"])
        via = want_str(r.get("via"), w["via"], optional=True)
        src = want_str(r.get("src"), w["src"], optional=True)
        host.routes.append(Route(
            dst=want_prefix(r.get("dst"), w["dst"], fam),
            dev=want_str(r.get("dev"), w["dev"], optional=True) or "",
            via=want_address(via, w["via"], fam) if via else None,
            src=want_address(src, w["src"], fam) if src else None,
            family=fam,
            type=want_name(r.get("type", "unicast"), w["type"]),
            table=want_name(r.get("table", "main"), w["table"]),
            inferred=want_bool(r.get("inferred", False), w["inferred"]),
        ))
    for k, v in want_dict(d.get("sysctls"), top["sysctls"], optional=True).items():
        host.sysctls[k] = want_name(v, top["sysctls"][k])
    for n, note in enumerate(want_list(d.get("notes"), top["notes"], optional=True)):
        host.notes.append(str(want_str(note, top["notes"][n])))
    for addr, info in want_dict(d.get("containers"), top["containers"], optional=True).items():
        w = top["containers"][addr]
        want_address(addr, w)
        info = want_dict(info, w)
        for key in ("name", "image", "id", "network"):
            want_str(info.get(key), w[key], optional=True)
        for n, port in enumerate(want_list(info.get("ports"), w["ports"], optional=True)):
            want_str(port, w["ports"][n])
        host.containers[addr] = dict(info)
    return host
