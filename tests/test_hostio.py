"""The ``ip`` output parsers (iptexplain.hostio): JSON and plain text into one host model.

Real output is captured in a network namespace built by the test (``unshare -n -m``; nothing is
changed outside it); the plain-text forms are checked against the JSON form of the same host.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from iptexplain.errors import InputError
from iptexplain.hostio import (
    detect_ip_output,
    host_from_dict,
    host_from_ip,
    host_from_ip_json,
    host_to_dict,
    parse_ip_addr_json,
    parse_ip_addr_text,
    parse_ip_route_json,
    parse_ip_route_text,
    parse_sysctl_text,
)

# Built in the namespace: eth0 (veth) with IPv4 + IPv6 and a peer address, a bridge with a port,
# a down interface, a gateway, a multipath route, a blackhole, an unreachable, a route in
# another table, a local route of our own.
SETUP = r"""
set -e
echo 1 > /proc/sys/net/ipv6/conf/default/addr_gen_mode
ip link set lo up
ip link add eth0 type veth peer name eth0-peer
ip link set eth0 up; ip link set eth0-peer up
ip addr add 198.51.100.1/24 dev eth0
ip addr add 198.51.100.7/24 dev eth0 label eth0:1
ip -6 addr add 2001:db8:1::1/64 dev eth0 nodad
ip link add eth1 type veth peer name eth1-peer
ip link set eth1 up; ip link set eth1-peer up
ip addr add 203.0.113.5/28 dev eth1
ip addr add 10.8.0.1 peer 10.8.0.2 dev eth1
ip link add docker0 type bridge
ip addr add 172.17.0.1/16 dev docker0
ip link set docker0 up
ip link add vethc6 type veth peer name vethc6-peer
ip link set vethc6 master docker0
ip link add down0 type veth peer name down0-peer
ip route add default via 198.51.100.254 dev eth0
ip route add 10.99.0.0/16 via 198.51.100.253 dev eth0 metric 50
ip route add 10.77.0.0/16 nexthop via 198.51.100.252 dev eth0 nexthop via 203.0.113.1 dev eth1
ip route add blackhole 192.0.2.0/24
ip route add unreachable 192.0.2.128/25
ip route add 10.50.0.0/16 via 203.0.113.2 dev eth1 table 100
ip route add local 192.0.2.200/32 dev lo
ip -6 route add default via 2001:db8:1::fe dev eth0
"""
COMMANDS = {
    "addr_json": ["ip", "-j", "-d", "addr", "show"],
    "addr_json_plain": ["ip", "-j", "addr", "show"],
    "addr_text": ["ip", "addr", "show"],
    "addr_oneline": ["ip", "-o", "addr", "show"],
    "addr_brief": ["ip", "-br", "addr", "show"],
    "route4_json": ["ip", "-j", "-4", "route", "show", "table", "all"],
    "route6_json": ["ip", "-j", "-6", "route", "show", "table", "all"],
    "route4_text": ["ip", "-4", "route", "show", "table", "all"],
    "route6_text": ["ip", "-6", "route", "show", "table", "all"],
}


@pytest.fixture(scope="module")
def captured() -> dict[str, str]:
    reason = None
    if os.geteuid() != 0:
        reason = "needs root (network namespaces)"
    elif shutil.which("unshare") is None or shutil.which("ip", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None:
        reason = "unshare or ip is not installed"
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"namespaces unavailable under CI: {reason}", pytrace=False)
        pytest.skip(reason)
    script = SETUP + "\n".join(
        f"echo '@@{k}'; {' '.join(v)}" for k, v in COMMANDS.items()
    )
    p = subprocess.run(["unshare", "-n", "-m", "--", "sh", "-c", script], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    out: dict[str, str] = {}
    key = None
    for line in p.stdout.splitlines(keepends=True):
        if line.startswith("@@"):
            key = line[2:].strip()
            out[key] = ""
        elif key is not None:
            out[key] += line
    return out


def _addrs(ifaces) -> dict[str, list[str]]:
    return {i.name: sorted(str(a) for a in i.addrs) for i in ifaces}


def _route_keys(routes) -> list[tuple]:
    return [(r.family, r.table, r.type, r.dst, r.dev, r.via, r.src) for r in routes]


def test_addr_json(captured) -> None:
    ifaces = {i.name: i for i in parse_ip_addr_json(captured["addr_json"])}
    assert list(ifaces)[0] == "lo"
    assert ifaces["lo"].kind == "loopback"
    assert ifaces["eth0"].kind == "veth" and ifaces["docker0"].kind == "bridge"
    assert sorted(str(a) for a in ifaces["eth0"].addrs) == ["198.51.100.1/24", "198.51.100.7/24", "2001:db8:1::1/64"]
    assert [a.family for a in ifaces["eth0"].addrs if ":" in a.address] == [6]
    assert "10.8.0.1/32" in [str(a) for a in ifaces["eth1"].addrs]  # the local end of a peer address
    assert ifaces["down0"].up is False and ifaces["eth0"].up is True
    assert ifaces["vethc6"].addrs == []
    # Without -d there is no link kind detail: the link type is what is known.
    plain = {i.name: i for i in parse_ip_addr_json(captured["addr_json_plain"])}
    assert plain["eth0"].kind == "ether" and plain["lo"].kind == "loopback"
    assert _addrs(plain.values()) == _addrs(ifaces.values())


@pytest.mark.parametrize("form", ["addr_text", "addr_oneline", "addr_brief"])
def test_addr_text_forms_agree_with_json(captured, form: str) -> None:
    want = _addrs(parse_ip_addr_json(captured["addr_json"]))
    got = _addrs(parse_ip_addr_text(captured[form]))
    if form == "addr_oneline":  # ip -o addr lists only interfaces that have an address
        want = {k: v for k, v in want.items() if v}
    if form == "addr_brief":  # ip -br prints `10.8.0.1 peer 10.8.0.2/32' as two words
        want["eth1"] = [a for a in want["eth1"] if not a.startswith("10.8.0.1")]
        got["eth1"] = [a for a in got["eth1"] if not a.startswith("10.8.0.")]
    assert got == want
    if form == "addr_text":
        text = {i.name: i for i in parse_ip_addr_text(captured[form])}
        assert text["lo"].kind == "loopback" and text["down0"].up is False


def test_route_json(captured) -> None:
    routes = parse_ip_route_json(captured["route4_json"], family=4) + parse_ip_route_json(captured["route6_json"], family=6)
    keys = _route_keys(routes)
    assert (4, "main", "unicast", "default", "eth0", "198.51.100.254", None) in keys
    assert (4, "main", "unicast", "10.99.0.0/16", "eth0", "198.51.100.253", None) in keys
    assert (4, "main", "unicast", "10.77.0.0/16", "eth0", "198.51.100.252", None) in keys  # first nexthop
    assert (4, "main", "blackhole", "192.0.2.0/24", "", None, None) in keys
    assert (4, "main", "unreachable", "192.0.2.128/25", "", None, None) in keys
    assert (4, "100", "unicast", "10.50.0.0/16", "eth1", "203.0.113.2", None) in keys
    assert (4, "local", "local", "192.0.2.200/32", "lo", None, None) in keys
    assert (4, "local", "local", "198.51.100.1/32", "eth0", None, "198.51.100.1") in keys
    assert (4, "main", "unicast", "172.17.0.0/16", "docker0", None, "172.17.0.1") in keys
    assert (6, "main", "unicast", "default", "eth0", "2001:db8:1::fe", None) in keys
    assert (6, "local", "local", "2001:db8:1::1/128", "eth0", None, None) in keys
    assert all(r.family == 6 for r in routes if ":" in r.dst)


def test_route_text_agrees_with_json(captured) -> None:
    j = parse_ip_route_json(captured["route4_json"], family=4) + parse_ip_route_json(captured["route6_json"], family=6)
    t = parse_ip_route_text(captured["route4_text"], family=4) + parse_ip_route_text(captured["route6_text"], family=6)
    assert _route_keys(t) == _route_keys(j)


def test_host_from_saved_outputs_auto_detects_each(captured) -> None:
    texts = [(captured["addr_text"], "addr.txt"), (captured["route4_json"], "route.json"),
             (captured["route6_text"], "route6.txt"), ("net.ipv4.ip_forward = 1\nkernel.x = 2\n", "sysctl.txt")]
    host = host_from_ip(texts)
    assert "172.17.0.1/16" in [str(a) for a in host.interfaces["docker0"].addrs]
    assert any(r.dst == "default" and r.family == 6 for r in host.routes)
    assert host.sysctls == {"net.ipv4.ip_forward": "1"}
    assert any("addr.txt" in n for n in host.notes)
    assert [detect_ip_output(captured[k]) for k in ("addr_json", "addr_text", "addr_oneline", "route4_json",
                                                     "route4_text", "route6_text")] == \
        ["addr", "addr", "addr", "route", "route", "route"]


def test_json_round_trip(captured) -> None:
    host = host_from_ip_json(captured["addr_json"], captured["route4_json"], captured["route6_json"])
    host.sysctls["net.ipv4.ip_forward"] = "1"
    host.containers["172.17.0.6"] = {"name": "gallant_lumiere", "ports": []}
    d = json.loads(json.dumps(host_to_dict(host)))
    assert host_to_dict(host_from_dict(d)) == d


# ---------------------------------------------------------------------------------------------
# Pasted text, as it appears in tickets


PASTED_ADDR = """\
1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN group default qlen 1000
    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00
    inet 127.0.0.1/8 scope host lo
       valid_lft forever preferred_lft forever
2: ens3: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc fq_codel state UP group default qlen 1000
    link/ether 52:54:00:12:34:56 brd ff:ff:ff:ff:ff:ff
    altname enp0s3
    inet 198.51.100.1/24 brd 198.51.100.255 scope global dynamic ens3
       valid_lft 85884sec preferred_lft 85884sec
3: docker0: <NO-CARRIER,BROADCAST,MULTICAST,UP> mtu 1500 qdisc noqueue state DOWN group default
    link/ether 02:42:ac:11:00:01 brd ff:ff:ff:ff:ff:ff
    inet 172.17.0.1/16 brd 172.17.255.255 scope global docker0
       valid_lft forever preferred_lft forever
7: veth1c0a7f2@if6: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue master docker0 state UP group default
    link/ether 6e:2f:3a:aa:bb:cc brd ff:ff:ff:ff:ff:ff link-netnsid 0
9: wg0: <POINTOPOINT,NOARP,UP,LOWER_UP> mtu 1420 qdisc noqueue state UNKNOWN group default qlen 1000
    link/none
    inet 10.8.0.1/24 scope global wg0
       valid_lft forever preferred_lft forever
"""

PASTED_ROUTE = """\
default via 198.51.100.254 dev ens3 proto dhcp src 198.51.100.1 metric 100
10.8.0.0/24 dev wg0 proto kernel scope link src 10.8.0.1
10.77.0.0/16 proto static metric 20
	nexthop via 198.51.100.250 dev ens3 weight 1
	nexthop via 198.51.100.251 dev ens3 weight 1
172.17.0.0/16 dev docker0 proto kernel scope link src 172.17.0.1 linkdown
blackhole 192.0.2.0/24 proto static
unreachable 192.0.2.128/25
prohibit 192.0.2.192/26
10.64.0.0/10 via inet6 fe80::1 dev ens3
"""


def test_pasted_addr_text() -> None:
    ifaces = {i.name: i for i in parse_ip_addr_text(PASTED_ADDR, "ticket.txt")}
    assert list(ifaces) == ["lo", "ens3", "docker0", "veth1c0a7f2", "wg0"]
    assert [str(a) for a in ifaces["ens3"].addrs] == ["198.51.100.1/24"]
    assert ifaces["ens3"].kind == "ether" and ifaces["wg0"].kind == "none"
    assert ifaces["docker0"].up is True  # administratively UP though NO-CARRIER
    assert ifaces["veth1c0a7f2"].addrs == []


def test_pasted_route_text() -> None:
    routes = parse_ip_route_text(PASTED_ROUTE, "ticket.txt")
    keys = _route_keys(routes)
    assert keys == [
        (4, "main", "unicast", "default", "ens3", "198.51.100.254", "198.51.100.1"),
        (4, "main", "unicast", "10.8.0.0/24", "wg0", None, "10.8.0.1"),
        (4, "main", "unicast", "10.77.0.0/16", "ens3", "198.51.100.250", None),
        (4, "main", "unicast", "172.17.0.0/16", "docker0", None, "172.17.0.1"),
        (4, "main", "blackhole", "192.0.2.0/24", "", None, None),
        (4, "main", "unreachable", "192.0.2.128/25", "", None, None),
        (4, "main", "prohibit", "192.0.2.192/26", "", None, None),
        (4, "main", "unicast", "10.64.0.0/10", "ens3", "fe80::1", None),
    ]


def test_bad_input_is_one_line_with_position() -> None:
    with pytest.raises(InputError) as e:
        parse_ip_addr_json('[{"ifname": "lo",\n "flags": [}]', "addr.json")
    assert str(e.value).startswith("addr.json:2: not valid `ip -j addr' JSON")
    with pytest.raises(InputError) as e:
        parse_ip_addr_json('[{"dst": "default"}]', "addr.json")
    assert str(e.value) == "addr.json: not `ip -j addr' output (expected a list of interfaces with `ifname')"
    with pytest.raises(InputError) as e:
        parse_ip_route_json('{"dst": "default"}', "route.json")
    assert str(e.value) == "route.json: not `ip -j route' output (expected a list of routes)"
    with pytest.raises(InputError) as e:
        parse_ip_route_text("default via 10.0.0.1 dev eth0\nthis is not a route\n", "route.txt")
    assert str(e.value) == "route.txt:2: not `ip route' output: `this is not a route'"
    with pytest.raises(InputError) as e:
        parse_ip_addr_text("hello world\n", "addr.txt")
    assert str(e.value) == "addr.txt:1: not `ip addr' output: `hello world'"
    with pytest.raises(InputError) as e:
        parse_sysctl_text("net.ipv4.ip_forward 1\n", "sysctl.txt")
    assert str(e.value) == "sysctl.txt:1: not `sysctl' output: `net.ipv4.ip_forward 1'"
    with pytest.raises(InputError) as e:
        host_from_dict({"interfaces": [{"addrs": []}]}, "x.snap")
    assert str(e.value) == "x.snap: host.interfaces[0].name: expected a string, got null"


def test_policy_routing_rules_beyond_the_standard_ones() -> None:
    from iptexplain.hostio import parse_ip_rule_json

    # `ip -j rule show` after `ip rule add from 10.1.0.0/16 iif eth0 lookup 200` and
    # `ip rule add fwmark 0x4000 lookup 100 pref 100` (iproute2 6.1)
    text = ('[{"priority":0,"src":"all","table":"local"},{"priority":99,"src":"10.1.0.0","srclen":16,'
            '"iif":"eth0","iif_detached":null,"table":"200"},{"priority":100,"src":"all","fwmark":"0x4000",'
            '"table":"100"},{"priority":32766,"src":"all","table":"main"},'
            '{"priority":32767,"src":"all","table":"default"}]')
    assert parse_ip_rule_json(text) == [
        "99: from 10.1.0.0/16 iif eth0 lookup 200",
        "100: from all fwmark 0x4000 lookup 100",
    ]
    standard = '[{"priority":0,"src":"all","table":"local"},{"priority":32766,"src":"all","table":"main"}]'
    assert parse_ip_rule_json(standard) == []
    assert detect_ip_output(text) == "rule"
    host = host_from_ip([(text, "rules.json")])
    assert host.notes == ["policy routing: IPv4 has 2 routing rule(s) beyond local/main/default (99: from "
                          "10.1.0.0/16 iif eth0 lookup 200; 100: from all fwmark 0x4000 lookup 100); routes "
                          "are looked up in the main table only"]
