"""The tracer's semantics, one small ruleset per fact (each test fails if the semantics break).

The kernel-differential twins of the order/NAT/loopback facts are in test_tracer_kernel.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from iptexplain.host import HostModel, IfAddr, Interface, Route
from iptexplain.hostinfer import complete_host, parse_host_options
from iptexplain.ipset import parse_ipset_save
from iptexplain.netfilter import trace as T
from iptexplain.netfilter.hooks import HOOK_ORDER, entries
from iptexplain.netfilter.packets import (Decision, Packets, intersect, masked_set, normalize, point,
                                          span, subtract)
from iptexplain.netfilter.trace import Flow
from iptexplain.netfilter.tracer import trace_flow
from iptexplain.errors import InputError
from iptexplain.parse import load, parse_text

from trace_paths import hooks_seen, kernel_path, tables_seen

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def host(*ifaces: tuple[str, str], routes: tuple[tuple[str, str, str | None], ...] = (),
         sysctls: dict | None = None) -> HostModel:
    h = HostModel(source="test")
    for name, addr in ifaces:
        a, plen = addr.split("/")
        fam = 6 if ":" in a else 4
        h.add_interface(Interface(name, kind="bridge" if name.startswith(("docker", "br")) else "")).addrs.append(
            IfAddr(a, int(plen), fam))
    for dst, dev, via in routes:
        h.routes.append(Route(dst, dev, via, family=6 if ":" in dst or (via and ":" in via) else 4))
    h.sysctls.update(sysctls or {})
    return h


DOCKER_HOST = host(("eth0", "198.51.100.1/24"), ("docker0", "172.17.0.1/16"), ("lo", "127.0.0.1/8"),
                   routes=(("default", "eth0", "198.51.100.254"),))


def only_leaf(tr: T.Trace) -> T.Leaf:
    leaves = list(tr.leaves())
    assert len(leaves) == 1, [l.outcome.summary for l in leaves]
    return leaves[0]


def save(*tables: str) -> str:
    """iptables-save text from table bodies ("*filter ... " without COMMIT)."""
    return "\n".join(t.strip() + "\nCOMMIT" for t in tables) + "\n"


def rs_of(*tables: str, family: int | None = None):
    return parse_text(save(*tables), "<test>", family=family)


ALL_LOG = """*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate INVALID -j DROP
*security
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]"""


def all_tables():
    blocks = ["*" + b for b in ALL_LOG.split("*") if b.strip()]
    return rs_of(*blocks)


# ---------------------------------------------------------------------------------------------
# Packet sets.


def test_interval_set_operations():
    a = normalize([(0, 10), (20, 30)])
    assert intersect(a, span(5, 25)) == ((5, 10), (20, 25))
    assert subtract(a, span(5, 25)) == ((0, 4), (26, 30))
    assert normalize([(5, 7), (1, 4), (9, 9)]) == ((1, 7), (9, 9))


def test_masked_set_non_contiguous_mask():
    # 10.0.0.0/255.0.255.0: second octet free, fourth octet free.
    s = masked_set(0x0A000000, 0xFF00FF00, 32)
    assert len(s) == 256
    assert s[0] == (0x0A000000, 0x0A0000FF)
    assert s[1] == (0x0A010000, 0x0A0100FF)


def test_split_keeps_both_parts_with_conditions():
    p = Packets(4, span(0, 2**32 - 1), point(1), point(6))
    d = Decision.split(p, "dport", span(22, 22), False, "dport")
    assert d.matched is not None and d.unmatched is not None
    assert d.matched.dport == point(22)
    assert d.unmatched.dport == ((0, 21), (23, 65535))
    assert d.yes.text == "dport in 22" and d.no.text == "dport not in 22"


# ---------------------------------------------------------------------------------------------
# Hooks and order.


def test_hook_table_is_sorted_by_priority():
    names = [(e.kind, e.table) for e in entries(4, "INPUT", "legacy")]
    assert names == [("table", "mangle"), ("table", "filter"), ("table", "security"), ("table", "nat"),
                     ("confirm", "")]
    # iptables-nft puts security at 150, after nat INPUT (seen in the kernel lab).
    names = [(e.kind, e.table) for e in entries(4, "INPUT", "nft")]
    assert names == [("table", "mangle"), ("table", "filter"), ("table", "nat"), ("table", "security"),
                     ("confirm", "")]
    pre = [(e.kind, e.table) for e in entries(4, "PREROUTING")]
    assert pre == [("table", "raw"), ("conntrack", ""), ("table", "mangle"), ("table", "nat")]
    assert HOOK_ORDER["nft"][6]["OUTPUT"] == HOOK_ORDER["nft"][4]["OUTPUT"]


def test_local_delivery_order_nat_input_last():
    tr = trace_flow(all_tables(), Flow(dport=22, iniface="eth0", src="203.0.113.9"), DOCKER_HOST,
                    backend="legacy")
    leaf = only_leaf(tr)
    assert leaf.outcome.kind == T.DELIVERED
    assert tables_seen(leaf.steps) == [
        ("PREROUTING", "raw"), ("PREROUTING", "mangle"), ("PREROUTING", "nat"),
        ("INPUT", "mangle"), ("INPUT", "filter"), ("INPUT", "security"), ("INPUT", "nat")]
    leaf = only_leaf(trace_flow(all_tables(), Flow(dport=22, src="203.0.113.9"), DOCKER_HOST))
    assert tables_seen(leaf.steps)[-2:] == [("INPUT", "nat"), ("INPUT", "security")]


def test_forward_order():
    tr = trace_flow(all_tables(), Flow(dst="172.17.0.9", dport=80, src="203.0.113.9"), DOCKER_HOST, backend="legacy")
    leaf = only_leaf(tr)
    assert leaf.outcome.kind == T.FORWARDED and leaf.outcome.iface == "docker0"
    assert tables_seen(leaf.steps) == [
        ("PREROUTING", "raw"), ("PREROUTING", "mangle"), ("PREROUTING", "nat"),
        ("FORWARD", "mangle"), ("FORWARD", "filter"), ("FORWARD", "security"),
        ("POSTROUTING", "mangle"), ("POSTROUTING", "nat")]


def test_nat_chains_need_connection_tracking():
    # No rule of this ruleset turns conntrack on: the kernel tracks nothing, nat never runs.
    rs = rs_of("""*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -m comment --comment x""")
    leaf = only_leaf(trace_flow(rs, Flow(dport=22, src="203.0.113.9"), DOCKER_HOST))
    assert tables_seen(leaf.steps) == []
    assert any("tracking is off" in s.reason for s in leaf.steps if s.kind == T.CONNTRACK)


def test_local_out_order_and_loopback_reentry_without_nat():
    tr = trace_flow(all_tables(), Flow(dst="198.51.100.1", dport=22, from_host=True), DOCKER_HOST, backend="legacy")
    leaf = only_leaf(tr)
    assert leaf.outcome.kind == T.DELIVERED
    assert hooks_seen(leaf.steps) == ["OUTPUT", "POSTROUTING", "PREROUTING", "INPUT"]
    assert tables_seen(leaf.steps) == [
        ("OUTPUT", "raw"), ("OUTPUT", "mangle"), ("OUTPUT", "nat"), ("OUTPUT", "filter"),
        ("OUTPUT", "security"), ("POSTROUTING", "mangle"), ("POSTROUTING", "nat"),
        ("PREROUTING", "raw"), ("PREROUTING", "mangle"),
        ("INPUT", "mangle"), ("INPUT", "filter"), ("INPUT", "security")]
    # The packet left by lo and came back in on lo.
    route = next(s for s in leaf.steps if s.kind == T.ROUTE)
    assert route.detail["dev"] == "lo"
    skipped = [s.reason for s in leaf.steps if s.kind == T.CONNTRACK and s.table == "nat"]
    assert any("nat PREROUTING not consulted" in r for r in skipped)
    assert any("nat INPUT not consulted" in r for r in skipped)


def test_loopback_packet_is_seen_with_in_interface_lo():
    rs = rs_of("""*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -i lo -j ACCEPT""")
    leaf = only_leaf(trace_flow(rs, Flow(dst="198.51.100.1", dport=5432, from_host=True), DOCKER_HOST))
    assert leaf.outcome.kind == T.DELIVERED
    assert ("filter", "INPUT", "-A INPUT -i lo -j ACCEPT", "ACCEPT") in kernel_path(leaf.steps)


# ---------------------------------------------------------------------------------------------
# The seed: Docker's published port.


def test_seed_docker_published_port_goes_forward_to_the_container():
    rs = load(str(FIXTURES / "seed-docker.v4.save"))
    tr = trace_flow(rs, Flow(dport=9525))
    leaf = only_leaf(tr)
    assert leaf.outcome.kind == T.FORWARDED
    assert leaf.outcome.summary == "forwarded to 172.17.0.6:9525 via docker0"
    assert leaf.outcome.packet["dst"] == "172.17.0.6"
    chains = [c for _, c, _, _ in kernel_path(leaf.steps)]
    assert kernel_path(leaf.steps) == [
        ("nat", "PREROUTING", "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER", "JUMP:DOCKER"),
        ("nat", "DOCKER", "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 9525 -j DNAT --to-destination 172.17.0.6:9525", "ACCEPT"),
        ("filter", "FORWARD", "-A FORWARD -j DOCKER-USER", "JUMP:DOCKER-USER"),
        ("filter", "DOCKER-USER", "-A DOCKER-USER -j RETURN", "RETURN"),
        ("filter", "FORWARD", "-A FORWARD -j DOCKER-ISOLATION-STAGE-1", "JUMP:DOCKER-ISOLATION-STAGE-1"),
        ("filter", "DOCKER-ISOLATION-STAGE-1", "-A DOCKER-ISOLATION-STAGE-1 -j RETURN", "RETURN"),
        ("filter", "FORWARD", "-A FORWARD -o docker0 -j DOCKER", "JUMP:DOCKER"),
        ("filter", "DOCKER", "-A DOCKER -d 172.17.0.6/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 9525 -j ACCEPT", "ACCEPT"),
        ("nat", "POSTROUTING", None, "ACCEPT"),
    ]
    assert "INPUT" not in hooks_seen(leaf.steps)
    assert chains  # every source at once: no fork although the source was left open
    assert any("docker0 carries 172.17.0.0/16" in n for n in tr.notes)


def test_seed_unpublished_port_is_delivered_to_the_host():
    rs = load(str(FIXTURES / "seed-docker.v4.save"))
    leaf = only_leaf(trace_flow(rs, Flow(dport=22), DOCKER_HOST))
    assert leaf.outcome.kind == T.DELIVERED
    assert kernel_path(leaf.steps)[-2:] == [("filter", "INPUT", None, "ACCEPT"), ("nat", "INPUT", None, "ACCEPT")]


def test_seed_container_to_outside_is_masqueraded_to_eth0():
    rs = load(str(FIXTURES / "seed-docker.v4.save"))
    leaf = only_leaf(trace_flow(rs, Flow(src="172.17.0.6", iniface="docker0", dst="93.184.215.14", dport=443),
                                DOCKER_HOST))
    assert leaf.outcome.kind == T.FORWARDED and leaf.outcome.iface == "eth0"
    assert leaf.outcome.packet["src"] == "198.51.100.1"
    rw = [s for s in leaf.steps if s.kind == T.REWRITE]
    assert {k: rw[-1].detail[k] for k in ("field", "before", "after")} == \
        {"field": "src", "before": "172.17.0.6", "after": "198.51.100.1"}


def test_container_to_container_same_bridge_goes_through_forward():
    rs = load(str(FIXTURES / "seed-docker.v4.save"))
    leaf = only_leaf(trace_flow(rs, Flow(src="172.17.0.6", iniface="docker0", dst="172.17.0.7", dport=80),
                                DOCKER_HOST))
    assert leaf.outcome.kind == T.FORWARDED
    assert ("filter", "FORWARD", "-A FORWARD -i docker0 -o docker0 -j ACCEPT", "ACCEPT") in kernel_path(leaf.steps)


def test_routed_back_out_of_a_non_bridge_interface_is_not_called_bridging():
    rs = load(str(FIXTURES / "seed-docker.v4.save"))
    leaf = only_leaf(trace_flow(rs, Flow(src="198.51.100.7", iniface="eth0", dst="198.51.100.9", dport=80),
                                DOCKER_HOST))
    route = next(s for s in leaf.steps if s.kind == T.ROUTE)
    assert "bridge" not in route.reason and "came in on" in route.reason
    bridged = only_leaf(trace_flow(rs, Flow(src="172.17.0.6", iniface="docker0", dst="172.17.0.7", dport=80),
                                   DOCKER_HOST))
    assert "same bridge" in next(s for s in bridged.steps if s.kind == T.ROUTE).reason


def test_a_new_flow_on_lo_is_the_hosts_own_and_skips_nat():
    """Only the host sends on lo: nat PREROUTING/INPUT were decided on the way out (the kernel's
    loopback re-entry, as in test_local_out_order_and_loopback_reentry_without_nat)."""
    rs = rs_of("""*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -p tcp --dport 80 -j DNAT --to-destination 172.17.0.6:80""", """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]""")
    leaf = only_leaf(trace_flow(rs, Flow(iniface="lo", src="127.0.0.1", dst="127.0.0.1", dport=80), DOCKER_HOST))
    assert leaf.outcome.kind == T.DELIVERED
    assert "nat" not in {table for _, table in tables_seen(leaf.steps)}
    from_eth0 = only_leaf(trace_flow(rs, Flow(iniface="eth0", src="198.51.100.7", dst="198.51.100.1", dport=80),
                                     DOCKER_HOST))
    assert from_eth0.outcome.kind == T.FORWARDED and "nat" in {table for _, table in tables_seen(from_eth0.steps)}


def test_a_packet_on_lo_is_never_a_martian():
    """ip_route_input is not consulted for loopback packets: 127.0.0.1 on lo is delivered."""
    rs = load(str(FIXTURES / "seed-docker.v4.save"))
    leaf = only_leaf(trace_flow(rs, Flow(iniface="lo", src="127.0.0.1", dst="127.0.0.1", dport=80), DOCKER_HOST))
    assert leaf.outcome.kind == T.DELIVERED
    outside = only_leaf(trace_flow(rs, Flow(iniface="eth0", src="198.51.100.7", dst="127.0.0.1", dport=80),
                                   DOCKER_HOST))
    assert outside.outcome.kind == T.DROPPED and "martian" in outside.outcome.summary


def test_host_to_published_port_dnat_in_output_and_reroute():
    rs = load(str(FIXTURES / "seed-docker.v4.save"))
    leaf = only_leaf(trace_flow(rs, Flow(dst="198.51.100.1", dport=9525, from_host=True), DOCKER_HOST))
    assert leaf.outcome.kind == T.SENT and leaf.outcome.iface == "docker0"
    routes = [s for s in leaf.steps if s.kind == T.ROUTE]
    assert routes[0].detail["dev"] == "lo" and routes[1].detail["dev"] == "docker0"
    assert "re-routing" in routes[1].hook
    assert leaf.outcome.packet["src"] == "198.51.100.1"  # chosen before the DNAT


# ---------------------------------------------------------------------------------------------
# Conntrack and NAT.


DNAT_LOCAL = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -p tcp --dport 8080 -j DNAT --to-destination 172.17.0.6:80"""


def test_raw_prerouting_sees_the_original_destination():
    rs = rs_of("""*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -d 172.17.0.6/32 -j DROP
-A PREROUTING -d 198.51.100.1/32 -j LOG""", DNAT_LOCAL)
    leaf = only_leaf(trace_flow(rs, Flow(dport=8080, src="203.0.113.9"), DOCKER_HOST))
    assert leaf.outcome.kind == T.FORWARDED
    assert kernel_path(leaf.steps, ["raw"]) == [
        ("raw", "PREROUTING", "-A PREROUTING -d 198.51.100.1/32 -j LOG", "CONTINUE"),
        ("raw", "PREROUTING", None, "ACCEPT")]


def test_notrack_skips_nat():
    rs = rs_of("""*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p tcp --dport 8080 -j CT --notrack""", DNAT_LOCAL)
    leaf = only_leaf(trace_flow(rs, Flow(dport=8080, src="203.0.113.9"), DOCKER_HOST))
    assert leaf.outcome.kind == T.DELIVERED  # no DNAT: the host's own port 8080
    assert leaf.outcome.packet["ctstate"] == "UNTRACKED"
    assert not any(s.kind == T.REWRITE for s in leaf.steps)


def test_established_keeps_the_connections_dnat_without_nat_table():
    rs = load(str(FIXTURES / "seed-docker.v4.save"))
    tr = trace_flow(rs, Flow(dport=9525, src="203.0.113.9", state="ESTABLISHED"), DOCKER_HOST)
    leaf = only_leaf(tr)
    assert leaf.outcome.kind == T.FORWARDED and leaf.outcome.packet["dst"] == "172.17.0.6"
    assert not any(s.kind == T.TABLE and s.table == "nat" for s in leaf.steps)
    assert ("filter", "FORWARD", "-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            "ACCEPT") in kernel_path(leaf.steps)
    assert any("keeps it" in n for n in tr.notes)


def test_dnat_to_loopback_from_outside_is_a_martian_unless_route_localnet():
    rs = rs_of("""*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -p tcp --dport 8080 -j DNAT --to-destination 127.0.0.1:80""")
    leaf = only_leaf(trace_flow(rs, Flow(dport=8080, src="203.0.113.9"), DOCKER_HOST))
    assert leaf.outcome.kind == T.DROPPED and "martian" in leaf.outcome.summary
    h = host(("eth0", "198.51.100.1/24"), ("lo", "127.0.0.1/8"), routes=(("default", "eth0", "198.51.100.254"),),
             sysctls={"net.ipv4.conf.eth0.route_localnet": "1"})
    leaf = only_leaf(trace_flow(rs, Flow(dport=8080, src="203.0.113.9"), h))
    assert leaf.outcome.kind == T.DELIVERED and leaf.outcome.packet["dst"] == "127.0.0.1"


def test_masquerade_random_fully_rewrites_the_source_port():
    rs = rs_of("""*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o eth0 -j MASQUERADE --random-fully""")
    leaf = only_leaf(trace_flow(rs, Flow(src="172.17.0.6", sport=40000, iniface="docker0", dst="203.0.113.9", dport=80),
                                DOCKER_HOST))
    assert leaf.outcome.packet["src"] == "198.51.100.1"
    assert leaf.outcome.packet["sport"] == "1024-65535"


def test_masquerade_picks_the_address_in_the_next_hops_subnet():
    h = host(("eth0", "198.51.100.1/24"), ("eth0", "203.0.113.5/24"), ("lo", "127.0.0.1/8"),
             routes=(("default", "eth0", "203.0.113.254"),))
    rs = rs_of("""*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -j MASQUERADE""")
    leaf = only_leaf(trace_flow(rs, Flow(src="10.1.1.1", iniface="docker0", dst="192.0.2.80", dport=80), h))
    assert leaf.outcome.packet["src"] == "203.0.113.5"


def test_dnat_address_and_port_range_become_sets():
    rs = rs_of("""*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -p tcp --dport 80 -j DNAT --to-destination 172.17.0.2-172.17.0.4:8000-8010""")
    leaf = only_leaf(trace_flow(rs, Flow(dport=80, src="203.0.113.9"), DOCKER_HOST))
    assert leaf.outcome.packet["dst"] == "172.17.0.2-172.17.0.4"
    assert leaf.outcome.packet["dport"] == "8000-8010"


def test_redirect_in_prerouting_goes_to_the_in_interfaces_address():
    rs = rs_of("""*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -i docker0 -p tcp --dport 80 -j REDIRECT --to-ports 3128""")
    leaf = only_leaf(trace_flow(rs, Flow(src="172.17.0.6", iniface="docker0", dst="93.184.215.14", dport=80),
                                DOCKER_HOST))
    assert leaf.outcome.kind == T.DELIVERED
    assert leaf.outcome.packet["dst"] == "172.17.0.1" and leaf.outcome.packet["dport"] == "3128"


# ---------------------------------------------------------------------------------------------
# Chains and verdicts.


def test_accept_ends_one_table_not_the_journey():
    rs = rs_of("""*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A INPUT -j ACCEPT""", """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp --dport 22 -j DROP""")
    leaf = only_leaf(trace_flow(rs, Flow(dport=22, src="203.0.113.9"), DOCKER_HOST))
    assert leaf.outcome.kind == T.DROPPED
    assert leaf.outcome.rule.spec() == "-A INPUT -p tcp -m tcp --dport 22 -j DROP"


CHAINS = """*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:A - [0:0]
:B - [0:0]
:C - [0:0]
:UNUSED - [0:0]
-A INPUT -j A
-A INPUT -p tcp --dport 22 -j ACCEPT
-A A -g B
-A A -p tcp --dport 22 -j DROP
-A B -j C
-A B -j RETURN
-A C -p tcp --dport 80 -j ACCEPT
-A UNUSED -j ACCEPT"""


def test_goto_does_not_come_back_and_falling_off_returns():
    leaf = only_leaf(trace_flow(rs_of(CHAINS), Flow(dport=22, src="203.0.113.9"), DOCKER_HOST))
    # A -g B; B -j C; C falls off back to B; B RETURNs -- to INPUT, not to A (the goto):
    # A's DROP rule is never reached and INPUT's ACCEPT decides.
    assert leaf.outcome.kind == T.DELIVERED
    assert kernel_path(leaf.steps, ["filter"]) == [
        ("filter", "INPUT", "-A INPUT -j A", "JUMP:A"),
        ("filter", "A", "-A A -g B", "GOTO:B"),
        ("filter", "B", "-A B -j C", "JUMP:C"),
        ("filter", "B", "-A B -j RETURN", "RETURN"),
        ("filter", "INPUT", "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT", "ACCEPT")]
    assert not any(s.chain == "UNUSED" for s in leaf.steps)  # never reached


def test_return_in_a_builtin_chain_applies_the_policy():
    rs = rs_of("""*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -j RETURN
-A INPUT -j ACCEPT""")
    leaf = only_leaf(trace_flow(rs, Flow(dport=22, src="203.0.113.9"), DOCKER_HOST))
    assert leaf.outcome.kind == T.DROPPED and "policy" in leaf.outcome.summary


def test_goto_from_base_chain_then_falling_off_applies_the_policy():
    rs = rs_of("""*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:X - [0:0]
-A INPUT -g X
-A INPUT -j ACCEPT
-A X -p udp -j ACCEPT""")
    leaf = only_leaf(trace_flow(rs, Flow(dport=22, src="203.0.113.9"), DOCKER_HOST))
    assert leaf.outcome.kind == T.DROPPED
    assert kernel_path(leaf.steps, ["filter"])[-1] == ("filter", "INPUT", None, "DROP")


def test_reject_records_its_reply():
    rs = rs_of("""*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp --dport 22 -j REJECT --reject-with tcp-reset""")
    leaf = only_leaf(trace_flow(rs, Flow(dport=22, src="203.0.113.9"), DOCKER_HOST))
    assert leaf.outcome.kind == T.REJECTED and leaf.outcome.reply == "tcp-reset"
    assert kernel_path(leaf.steps)[-1][3] == "DROP"  # the kernel's trace shows REJECT as DROP


def test_reject_reply_goes_through_output_where_it_may_be_dropped():
    rs = rs_of("""*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT DROP [0:0]
-A INPUT -p tcp --dport 22 -j REJECT --reject-with tcp-reset
-A OUTPUT -p icmp -j ACCEPT""")
    leaf = only_leaf(trace_flow(rs, Flow(dport=22, src="203.0.113.9", sport=40000), DOCKER_HOST))
    assert leaf.outcome.kind == T.DROPPED and leaf.outcome.reply == "tcp-reset"
    assert "never leaves" in leaf.outcome.summary and "OUTPUT" in leaf.outcome.summary
    assert leaf.outcome.rule.target_name == "REJECT"
    rs2 = rs_of("""*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT DROP [0:0]
-A INPUT -p tcp --dport 22 -j REJECT
-A OUTPUT -p icmp -j ACCEPT""")
    leaf = only_leaf(trace_flow(rs2, Flow(dport=22, src="203.0.113.9", sport=40000), DOCKER_HOST))
    assert [s.detail["reply_outcome"] for s in leaf.steps if "reply_outcome" in s.detail] == [T.SENT]


def test_log_and_mark_continue_and_later_rules_see_the_mark():
    rs = rs_of("""*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -j LOG --log-prefix "in "
-A PREROUTING -p tcp --dport 22 -j MARK --set-xmark 0x10/0xff
-A PREROUTING -m mark --mark 0x10/0xf0 -j CONNMARK --save-mark""", """*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m connmark --mark 0x10 -j ACCEPT""")
    leaf = only_leaf(trace_flow(rs, Flow(dport=22, src="203.0.113.9"), DOCKER_HOST))
    assert leaf.outcome.kind == T.DELIVERED
    assert leaf.outcome.packet["mark"] == "0x10" and leaf.outcome.packet["connmark"] == "0x10"
    assert [e[3] for e in kernel_path(leaf.steps, ["mangle"])] == [
        "CONTINUE", "CONTINUE", "CONTINUE", "ACCEPT", "ACCEPT"]  # PREROUTING's then INPUT's policy


def test_chain_loop_is_detected():
    rs = rs_of("""*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:A - [0:0]
:B - [0:0]
-A INPUT -j A
-A A -j B
-A B -j A""")
    leaf = only_leaf(trace_flow(rs, Flow(dport=22, src="203.0.113.9"), DOCKER_HOST))
    assert leaf.outcome.kind == T.UNDECIDED and "loop" in leaf.outcome.summary
    assert any(s.kind == T.NOTE and "A → B → A" in s.reason for s in leaf.steps)


# ---------------------------------------------------------------------------------------------
# Forks.


def test_open_source_forks_on_a_source_rule_with_conditions():
    rs = rs_of("""*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -s 10.0.0.0/8 -p tcp --dport 22 -j DROP""")
    tr = trace_flow(rs, Flow(dport=22), DOCKER_HOST)
    kinds = {l.conditions[0].text: l.outcome.kind for l in tr.leaves()}
    assert kinds == {"source in 10.0.0.0/8": T.DROPPED, "source not in 10.0.0.0/8": T.DELIVERED}
    # A concrete source decides.
    leaf = only_leaf(trace_flow(rs, Flow(dport=22, src="10.1.2.3"), DOCKER_HOST))
    assert leaf.outcome.kind == T.DROPPED


def test_log_on_part_of_the_packets_does_not_fork():
    rs = rs_of("""*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -s 10.0.0.0/8 -j LOG""")
    leaf = only_leaf(trace_flow(rs, Flow(dport=22), DOCKER_HOST))
    partial = [s for s in leaf.steps if s.kind == T.RULE and s.detail.get("partial")]
    assert partial and "10.0.0.0/8" in partial[0].reason


def test_limit_forks_with_under_the_rate_first():
    rs = rs_of("""*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp --dport 22 -m limit --limit 3/min -j ACCEPT""")
    tr = trace_flow(rs, Flow(dport=22, src="203.0.113.9"), DOCKER_HOST)
    leaves = list(tr.leaves())
    assert [l.outcome.kind for l in leaves] == [T.DELIVERED, T.DROPPED]
    assert leaves[0].conditions[0].text.startswith("under the rate limit 3/min")


KUBE = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-A - [0:0]
:KUBE-SEP-1 - [0:0]
:KUBE-SEP-2 - [0:0]
:KUBE-SEP-3 - [0:0]
-A PREROUTING -j KUBE-SERVICES
-A OUTPUT -j KUBE-SERVICES
-A KUBE-SERVICES -d 10.96.0.10/32 -p udp -m udp --dport 53 -j KUBE-SVC-A
-A KUBE-SVC-A -m statistic --mode random --probability 0.33333333349 -j KUBE-SEP-1
-A KUBE-SVC-A -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-2
-A KUBE-SVC-A -j KUBE-SEP-3
-A KUBE-SEP-1 -p udp -j DNAT --to-destination 10.244.0.2:53
-A KUBE-SEP-2 -p udp -j DNAT --to-destination 10.244.0.3:53
-A KUBE-SEP-3 -p udp -j DNAT --to-destination 10.244.1.4:53"""


def test_statistic_cascade_gives_each_endpoint_its_effective_probability():
    tr = trace_flow(rs_of(KUBE), Flow(proto="udp", dst="10.96.0.10", dport=53, from_host=True), DOCKER_HOST)
    leaves = list(tr.leaves())
    assert sorted(l.outcome.packet["dst"] for l in leaves) == ["10.244.0.2", "10.244.0.3", "10.244.1.4"]
    for l in leaves:
        assert l.probability == pytest.approx(1 / 3, abs=1e-6)
        assert l.conditions[0].probability == pytest.approx(1 / 3, abs=1e-6)
    assert len(tr.root.fork.branches) == 3 if tr.root.fork else False


def test_unknown_module_forks_as_not_understood():
    rs = rs_of("""*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m quota2 --quota 100 -j DROP""")
    tr = trace_flow(rs, Flow(dport=22, src="203.0.113.9"), DOCKER_HOST)
    assert {l.outcome.kind for l in tr.leaves()} == {T.DROPPED, T.DELIVERED}
    assert "not understood" in tr.root.fork.reason


def test_branch_cap_stops_following_forks():
    rules = "\n".join(f"-A INPUT -s 10.{i}.0.0/16 -j DROP" for i in range(40))
    rs = rs_of(f"""*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
{rules}""")
    tr = trace_flow(rs, Flow(dport=22), DOCKER_HOST, max_branches=8)
    leaves = list(tr.leaves())
    assert len(leaves) <= 9
    assert any(l.outcome.kind == T.UNDECIDED for l in leaves)
    assert any("branches" in n for n in tr.notes)


def test_ipset_from_dump_decides_else_forks():
    rs = rs_of("""*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m set --match-set BAD src -j DROP""")
    sets = parse_ipset_save("create BAD hash:net family inet\nadd BAD 203.0.113.0/24\n")
    assert only_leaf(trace_flow(rs, Flow(dport=22, src="203.0.113.9"), DOCKER_HOST, ipsets=sets)).outcome.kind == T.DROPPED
    assert only_leaf(trace_flow(rs, Flow(dport=22, src="192.0.2.9"), DOCKER_HOST, ipsets=sets)).outcome.kind == T.DELIVERED
    tr = trace_flow(rs, Flow(dport=22, src="192.0.2.9"), DOCKER_HOST)
    assert {l.outcome.kind for l in tr.leaves()} == {T.DROPPED, T.DELIVERED}


# ---------------------------------------------------------------------------------------------
# IPv6.


V6 = """*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j ACCEPT
-A INPUT -s 2001:db8:bad::/48 -j DROP
-A INPUT -p tcp -m tcp --dport 22 -m hl --hl-gt 1 -j ACCEPT
-A INPUT -m rt --rt-type 0 -j DROP"""


def test_ipv6_icmpv6_prefixes_and_hop_limit():
    h = host(("eth0", "2001:db8::1/64"), ("lo", "::1/128"), routes=(("default", "eth0", "2001:db8::fffe"),))
    rs = rs_of(V6, family=6)
    ping = only_leaf(trace_flow(rs, Flow(family=6, proto="icmpv6", src="2001:db8:5::9"), h))
    assert ping.outcome.kind == T.DELIVERED
    assert ("filter", "INPUT", "-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j ACCEPT", "ACCEPT") in kernel_path(ping.steps)
    bad = only_leaf(trace_flow(rs, Flow(family=6, dport=22, src="2001:db8:bad::9"), h))
    assert bad.outcome.kind == T.DROPPED
    ssh = trace_flow(rs, Flow(family=6, dport=22, src="2001:db8:5::9"), h)
    # The hop limit is not in the flow: fork on it.
    assert {l.conditions[0].text: l.outcome.kind for l in ssh.leaves()} == {
        "hop limit in 2-255": T.DELIVERED, "hop limit not in 2-255": T.DROPPED}


def test_ipv6_dnat_forwards():
    h = host(("eth0", "2001:db8::1/64"), ("docker0", "fd00:17::1/64"), ("lo", "::1/128"),
             routes=(("default", "eth0", "2001:db8::fffe"),))
    rs = rs_of("""*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d 2001:db8::1/128 -p tcp -m tcp --dport 80 -j DNAT --to-destination [fd00:17::2]:8080""", family=6)
    leaf = only_leaf(trace_flow(rs, Flow(family=6, dport=80, src="2001:db8:7::1"), h))
    assert leaf.outcome.kind == T.FORWARDED and leaf.outcome.iface == "docker0"
    assert leaf.outcome.summary == "forwarded to [fd00:17::2]:8080 via docker0"


# ---------------------------------------------------------------------------------------------
# Host model.


def test_host_options_and_inference_notes():
    h = parse_host_options(ifaces=["eth1=203.0.113.5/24"], routes=["default=eth1,203.0.113.1"],
                           local=["192.0.2.10"])
    assert [str(a) for a in h.interfaces["eth1"].addrs] == ["203.0.113.5/24", "192.0.2.10/32"]
    rs = load(str(FIXTURES / "seed-docker.v4.save"))
    full = complete_host(h, rs, Flow(dport=9525))
    assert "docker0" in full.interfaces and full.interfaces["docker0"].inferred
    assert not any("assumed: eth1" in n for n in full.notes)
    with pytest.raises(InputError):
        parse_host_options(ifaces=["eth0"])
    with pytest.raises(InputError):
        parse_host_options(routes=["10.0.0.0/8=eth0,not-an-ip"])


def test_addrtype_limit_iface_in():
    rs = rs_of("""*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m addrtype --dst-type LOCAL --limit-iface-in -j DROP""")
    # 172.17.0.1 is local, but not an address of eth0 where the packet came in.
    leaf = only_leaf(trace_flow(rs, Flow(dst="172.17.0.1", dport=22, src="203.0.113.9"), DOCKER_HOST))
    assert leaf.outcome.kind == T.DELIVERED
    leaf = only_leaf(trace_flow(rs, Flow(dst="198.51.100.1", dport=22, src="203.0.113.9"), DOCKER_HOST))
    assert leaf.outcome.kind == T.DROPPED


def test_owner_only_for_locally_generated_packets():
    rs = rs_of("""*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A OUTPUT -m owner --uid-owner 1000 -j DROP""")
    tr = trace_flow(rs, Flow(dst="203.0.113.9", dport=443, from_host=True), DOCKER_HOST)
    assert {l.outcome.kind for l in tr.leaves()} == {T.DROPPED, T.SENT}


# ---------------------------------------------------------------------------------------------
# More modules.


def test_nfqueue_forks_user_space_decides():
    rs = rs_of("""*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp --dport 22 -j NFQUEUE --queue-num 3
-A INPUT -p tcp --dport 22 -j DROP""")
    tr = trace_flow(rs, Flow(dport=22, src="203.0.113.9"), DOCKER_HOST)
    leaves = list(tr.leaves())
    # Accepted by the program: the table's traversal ends (the DROP below is not reached).
    assert [l.outcome.kind for l in leaves] == [T.DELIVERED, T.DROPPED]
    assert "user space" in tr.root.fork.reason


def test_conntrack_original_tuple_is_before_dnat_and_ctstate_dnat():
    rs = rs_of("""*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -p tcp --dport 8080 -j DNAT --to-destination 172.17.0.6:80""", """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate DNAT --ctorigdst 198.51.100.1 --ctorigdstport 8080 --ctreplsrc 172.17.0.6 -j ACCEPT""")
    leaf = only_leaf(trace_flow(rs, Flow(dport=8080, src="203.0.113.9"), DOCKER_HOST))
    assert leaf.outcome.kind == T.FORWARDED


def test_ct_helper_is_seen_by_the_helper_match():
    rs = rs_of("""*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p tcp --dport 21 -j CT --helper ftp""", """*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m helper --helper ftp -j ACCEPT""")
    assert only_leaf(trace_flow(rs, Flow(dport=21, src="203.0.113.9"), DOCKER_HOST)).outcome.kind == T.DELIVERED
    assert only_leaf(trace_flow(rs, Flow(dport=22, src="203.0.113.9"), DOCKER_HOST)).outcome.kind == T.DROPPED


def test_iprange_and_multiport_and_tcp_flags():
    rs = rs_of("""*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN -j DROP
-A INPUT -m iprange --src-range 203.0.113.10-203.0.113.20 -j DROP
-A INPUT -p tcp -m multiport --dports 80,443,8000:8100 -j REJECT""")
    assert only_leaf(trace_flow(rs, Flow(dport=22, src="203.0.113.15"), DOCKER_HOST)).outcome.kind == T.DROPPED
    assert only_leaf(trace_flow(rs, Flow(dport=8050, src="203.0.113.9"), DOCKER_HOST)).outcome.kind == T.REJECTED
    assert only_leaf(trace_flow(rs, Flow(dport=22, src="203.0.113.9"), DOCKER_HOST)).outcome.kind == T.DELIVERED
    # A later packet of the connection is not a SYN: the first rule drops it.
    est = trace_flow(rs, Flow(dport=22, src="203.0.113.9", state="ESTABLISHED"), DOCKER_HOST)
    assert only_leaf(est).outcome.kind == T.DROPPED


def test_tos_target_then_dscp_match():
    rs = rs_of("""*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -j DSCP --set-dscp 0x2e
-A INPUT -m dscp --dscp 0x2e -j MARK --set-xmark 0x1/0xffffffff""")
    leaf = only_leaf(trace_flow(rs, Flow(dport=22, src="203.0.113.9"), DOCKER_HOST))
    assert leaf.outcome.packet["mark"] == "0x1"


def test_established_flow_needs_no_nat_table_and_is_not_a_syn():
    rs = load(str(FIXTURES / "seed-docker.v4.save"))
    tr = trace_flow(rs, Flow(dport=22, src="203.0.113.9", state="ESTABLISHED"), DOCKER_HOST)
    leaf = only_leaf(tr)
    assert leaf.outcome.kind == T.DELIVERED
    assert [s.reason for s in leaf.steps if s.kind == T.CONNTRACK][0].startswith("ESTABLISHED connection")


def test_untracked_flow_from_user_state_option():
    rs = load(str(FIXTURES / "seed-docker.v4.save"))
    leaf = only_leaf(trace_flow(rs, Flow(dport=9525, src="203.0.113.9", state="INVALID"), DOCKER_HOST))
    # An INVALID packet is not NATed: it is the host's own port 9525.
    assert leaf.outcome.kind == T.DELIVERED


def test_from_container_by_address():
    rs = load(str(FIXTURES / "seed-docker.v4.save"))
    leaf = only_leaf(trace_flow(rs, Flow(from_container="172.17.0.6", dst="203.0.113.9", dport=443), DOCKER_HOST))
    assert leaf.outcome.kind == T.FORWARDED and leaf.outcome.packet["src"] == "198.51.100.1"
    with pytest.raises(InputError):
        trace_flow(rs, Flow(from_container="nosuch", dst="203.0.113.9", dport=443), DOCKER_HOST)


def test_big_dispatch_chain_skips_other_destinations_compactly():
    rules = "\n".join(f"-A SVC -d 10.96.{i // 250}.{i % 250 + 1}/32 -p tcp -m tcp --dport 80 -j DROP"
                      for i in range(2000))
    rs = rs_of(f"""*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:SVC - [0:0]
-A OUTPUT -j SVC
{rules}""")
    leaf = only_leaf(trace_flow(rs, Flow(dst="10.96.4.100", dport=80, from_host=True), DOCKER_HOST))
    assert leaf.outcome.kind == T.DROPPED
    assert leaf.outcome.rule.number == 4 * 250 + 100
    skipped = [s for s in leaf.steps if s.kind == T.NOTE and "other destinations" in s.reason]
    assert skipped and skipped[0].detail["skipped"] == 4 * 250 + 99
    assert sum(1 for s in leaf.steps if s.kind == T.RULE) == 2  # OUTPUT's jump and the match


def test_bridged_traffic_skips_iptables_when_bridge_nf_is_off():
    rs = load(str(FIXTURES / "seed-docker.v4.save"))
    flow = Flow(src="172.17.0.6", iniface="docker0", dst="172.17.0.7", dport=80)
    on = only_leaf(trace_flow(rs, flow, DOCKER_HOST))
    assert any(s.kind == T.TABLE for s in on.steps)
    off = host(("eth0", "198.51.100.1/24"), ("docker0", "172.17.0.1/16"), ("lo", "127.0.0.1/8"),
               routes=(("default", "eth0", "198.51.100.254"),), sysctls={"net.bridge.bridge-nf-call-iptables": "0"})
    leaf = only_leaf(trace_flow(rs, flow, off))
    assert leaf.outcome.kind == T.FORWARDED and not any(s.kind == T.TABLE for s in leaf.steps)


def test_reply_undoes_dnat_and_masquerade():
    rs = load(str(FIXTURES / "seed-docker.v4.save"))
    leaf = only_leaf(trace_flow(rs, Flow(dport=9525, src="203.0.113.9", sport=40000, reply=True), DOCKER_HOST))
    assert leaf.outcome.kind == T.FORWARDED and leaf.outcome.iface == "eth0"
    assert (leaf.outcome.packet["src"], leaf.outcome.packet["sport"]) == ("198.51.100.1", "9525")
    assert not any(s.kind == T.TABLE and s.table == "nat" for s in leaf.steps)
    out = only_leaf(trace_flow(rs, Flow(src="172.17.0.6", iniface="docker0", dst="203.0.113.9", dport=443,
                                        sport=5555, reply=True), DOCKER_HOST))
    assert out.outcome.iface == "docker0" and out.outcome.packet["dst"] == "172.17.0.6"
    assert ("filter", "FORWARD", "-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            "ACCEPT") in kernel_path(out.steps)


def test_reply_forks_per_endpoint_with_probabilities():
    tr = trace_flow(rs_of(KUBE), Flow(proto="udp", dst="10.96.0.10", dport=53, from_host=True, reply=True),
                    DOCKER_HOST)
    leaves = list(tr.leaves())
    assert len(leaves) == 3
    for l in leaves:
        assert l.outcome.kind == T.DELIVERED and l.outcome.packet["src"] == "10.96.0.10"
        assert l.probability == pytest.approx(1 / 3, abs=1e-6)


def test_reply_without_a_connection():
    rs = rs_of("""*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]""")
    leaf = only_leaf(trace_flow(rs, Flow(dport=22, src="203.0.113.9", reply=True), DOCKER_HOST))
    assert leaf.outcome.kind == T.UNDECIDED and "no reply" in leaf.outcome.summary


def test_every_module_has_its_tracer_face():
    """Netfilter knowledge of a module lives in its file: every match decides, every target applies."""
    from iptexplain.ext import MATCHES, TARGETS, load_all

    load_all()
    assert not sorted({c.name for c in MATCHES.values() if not callable(getattr(c, "decide", None))})
    assert not sorted({c.name for c in TARGETS.values() if not callable(getattr(c, "apply", None))})


def test_npt_translates_the_prefix():
    rs = rs_of("""*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d 2001:db8:1::/64 -j DNPT --src-pfx 2001:db8:1::/64 --dst-pfx fd00:17::/64""", family=6)
    h = host(("eth0", "2001:db8:1::1/64"), ("docker0", "fd00:17::1/64"), ("lo", "::1/128"),
             routes=(("default", "eth0", "2001:db8:1::fffe"),))
    leaf = only_leaf(trace_flow(rs, Flow(family=6, dst="2001:db8:1::42", dport=80, src="2001:db8:7::1"), h))
    assert leaf.outcome.kind == T.FORWARDED and leaf.outcome.packet["dst"] == "fd00:17::42"


def test_established_packet_of_a_random_endpoint_connection_forks_per_binding():
    tr = trace_flow(rs_of(KUBE), Flow(proto="udp", dst="10.96.0.10", dport=53, from_host=True, state="ESTABLISHED"),
                    DOCKER_HOST)
    leaves = list(tr.leaves())
    assert sorted(l.outcome.packet["dst"] for l in leaves) == ["10.244.0.2", "10.244.0.3", "10.244.1.4"]
    for l in leaves:
        assert l.probability == pytest.approx(1 / 3, abs=1e-6)
        assert not any(s.kind == T.TABLE and s.table == "nat" for s in l.steps)


# ---------------------------------------------------------------------------------------------
# Every real ruleset: the fixtures (always) and the shared corpus (when present).


def _real_rulesets() -> list[Path]:
    from corpus_index import entries

    files = sorted(p for p in FIXTURES.iterdir() if p.is_file() and p.name.endswith((".save", ".save-c", ".restore")))
    return files + [e.path for e in entries() if not e.rejected_for_content]


@pytest.mark.parametrize("path", _real_rulesets(), ids=lambda p: p.name)
def test_real_rulesets_trace_without_surprises(path: Path):
    from iptexplain.ext.base import OpaqueMatch

    try:
        rs = load(str(path))
    except InputError:
        pytest.skip("iptexplain refuses this file (tested in the parser's suite)")
    opaque = {m.opaque_name for r in rs.rules() for m in r.matches if isinstance(m, OpaqueMatch)}
    for fam in rs.families():
        flows = [Flow(family=fam, dport=22), Flow(family=fam, proto="udp", dport=53),
                 Flow(family=fam, proto="icmp"),
                 Flow(family=fam, dst="192.0.2.80" if fam == 4 else "2001:db8:9::80", dport=443, from_host=True)]
        for flow in flows:
            tr = trace_flow(rs, flow, verbose=False, max_branches=64)
            leaves = list(tr.leaves())
            assert 1 <= len(leaves) <= 65
            for leaf in leaves:
                assert leaf.outcome.kind in (T.DELIVERED, T.FORWARDED, T.SENT, T.DROPPED, T.REJECTED,
                                             T.QUEUED, T.UNDECIDED)
            todo = [tr.root]
            while todo:
                p = todo.pop()
                if p.fork is not None:
                    if "not understood" in p.fork.reason:
                        # Only modules no extension knows may stay undecided for that reason.
                        assert any(f"module {name} " in p.fork.reason for name in opaque), p.fork.reason
                    todo.extend(sub for _, sub in p.fork.branches)


def test_flow_errors_and_family_notes():
    rs = load(str(FIXTURES / "seed-docker.v4.save"))
    with pytest.raises(InputError):
        trace_flow(rs, Flow(dst="2001:db8::1", dport=80))
    tr = trace_flow(rs, Flow(family=6, dport=80))
    assert any("no IPv6 tables" in n for n in tr.notes)


def test_cli_reply_option():
    from click.testing import CliRunner

    from iptexplain.cli import main

    r = CliRunner().invoke(main, ["trace", str(FIXTURES / "seed-docker.v4.save"), "--dport", "9525",
                                  "-s", "203.0.113.9", "--sport", "40000", "--reply", "--json"])
    assert r.exit_code == 0, r.output
    assert "198.51.100.1" in r.output and "undone for the reply" in r.output


def test_listing_without_interfaces_marks_deciding_rules_uncertain():
    # The seed blog post's own listing (iptables -nL): Docker's `-i docker0 -j RETURN` shows as
    # a bare `RETURN all`.  Docker's standard rules fill the hidden interfaces in (the kernel's
    # answer: DNAT, forwarded), and the verdict says it rests on that inference.
    rs = load(str(FIXTURES / "seed-blog-listing.txt"))
    assert "interfaces" in rs.hidden
    tr = trace_flow(rs, Flow(dport=9525))
    # The listing has no raw and mangle tables: a second way says what they could do.
    leaf, lacking = list(tr.leaves())
    assert lacking.outcome.kind == T.DROPPED and "the raw table or the mangle table" in lacking.conditions[0].text
    assert leaf.outcome.kind == T.FORWARDED and leaf.outcome.packet["dst"] == "172.17.0.6"
    assert "filled in from Docker's standard rules" in leaf.outcome.uncertain
    marked = [s for s in leaf.steps if s.kind == T.RULE and s.matched and "uncertain" in s.detail]
    assert ("nat", "DOCKER", 2) in [(s.table, s.chain, s.rule.number) for s in marked]
    dnat = next(s for s in marked if s.chain == "DOCKER" and s.table == "nat")
    assert dnat.detail["filled"] == "hidden `! -i docker0` filled in from Docker's standard rules"
    assert [(r.table, r.chain, r.number) for r in leaf.outcome.uncertain_rules][:2] == \
        [("nat", "PREROUTING", 1), ("nat", "DOCKER", 2)]
    assert any("iptables -nvL" in n for n in tr.notes)
    # The same rules from iptables-save: nothing uncertain.
    exact = only_leaf(trace_flow(load(str(FIXTURES / "seed-docker.v4.save")), Flow(dport=9525)))
    assert exact.outcome.uncertain is None and not exact.outcome.uncertain_rules
    assert not any("uncertain" in s.detail for s in exact.steps)


def test_rules_that_change_nothing_are_not_uncertain_deciders():
    # A LOG rule read from an -nL listing hides its interfaces too, but matching it or not
    # changes nothing: only rules that decide (jump, verdict, rewrite) make a verdict uncertain.
    text = """Chain INPUT (policy ACCEPT)
target     prot opt source               destination
LOG        all  --  0.0.0.0/0            0.0.0.0/0            LOG flags 0 level 4
DROP       tcp  --  0.0.0.0/0            0.0.0.0/0            tcp dpt:22
"""
    from iptexplain.parse import parse_text

    rs = parse_text(text, "input.txt")
    assert "interfaces" in rs.hidden
    # The DROP may hide an -i: the trace forks on it (as listed first); the LOG does not fork.
    tr = trace_flow(rs, Flow(dst="198.51.100.1", dport=22))
    leaves = list(tr.leaves())  # and, after each, what the tables the paste lacks could do
    leaf = leaves[0]
    other = next(lf for lf in leaves if lf.outcome.kind == T.DELIVERED)
    assert leaf.outcome.kind == T.DROPPED
    assert "INPUT #2's hidden -i/-o admit" in leaf.conditions[0].text
    assert "INPUT #2 has a hidden -i/-o that excludes" in other.conditions[0].text
    assert [(r.number, r.target_name) for r in leaf.outcome.uncertain_rules] == [(2, "DROP")]
    assert other.outcome.uncertain and [r.number for r in other.outcome.uncertain_rules] == [2]
    log = [s for s in leaf.steps if s.kind == T.RULE and s.rule is not None and s.rule.number == 1]
    assert log and log[0].matched and "uncertain" not in log[0].detail


def test_rewrites_show_address_and_port_together():
    # The wording: `dst 198.51.100.1:9525 → 172.17.0.6:9525`, even though only the
    # address changes; a port-only rewrite (REDIRECT) shows the address it keeps.
    rs = load(str(FIXTURES / "seed-docker.v4.save"))
    leaf = only_leaf(trace_flow(rs, Flow(proto="tcp", src="203.0.113.7", iniface="eth0", dst="198.51.100.1",
                                         dport=9525), DOCKER_HOST))
    rw = [s for s in leaf.steps if s.kind == T.REWRITE]
    assert [s.reason for s in rw] == ["DNAT: dst 198.51.100.1:9525 → 172.17.0.6:9525"]
    assert rw[0].detail["fields"] == {"dst": ["198.51.100.1", "172.17.0.6"]}
    from iptexplain.parse import parse_text

    redirect = parse_text("*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p udp --dport 53 -j REDIRECT "
                          "--to-ports 5353\nCOMMIT\n", "r.save")
    leaf = only_leaf(trace_flow(redirect, Flow(proto="udp", src="203.0.113.7", sport=40000, iniface="eth0",
                                               dst="198.51.100.1", dport=53), DOCKER_HOST))
    rw = [s for s in leaf.steps if s.kind == T.REWRITE]
    assert [s.reason for s in rw] == ["REDIRECT: dst 198.51.100.1:53 → 198.51.100.1:5353"]
    # ICMP has no ports: the address alone
    icmp = parse_text("*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p icmp -j DNAT "
                      "--to-destination 172.17.0.6\nCOMMIT\n", "i.save")
    leaf = only_leaf(trace_flow(icmp, Flow(proto="icmp", src="203.0.113.7", iniface="eth0",
                                           dst="198.51.100.1"), DOCKER_HOST))
    assert [s.reason for s in leaf.steps if s.kind == T.REWRITE] == ["DNAT: dst 198.51.100.1 → 172.17.0.6"]


def test_source_in_a_connected_subnet_arrives_on_its_interface():
    rs = load(str(FIXTURES / "seed-docker.v4.save"))
    tr = trace_flow(rs, Flow(src="172.17.0.6", dst="203.0.113.9", dport=443), DOCKER_HOST)
    leaf = only_leaf(tr)
    assert leaf.outcome.kind == T.FORWARDED and leaf.outcome.packet["src"] == "198.51.100.1"
    assert any("arriving on docker0" in n for n in tr.notes)
    # An outside source still comes in on the external interface.
    tr = trace_flow(rs, Flow(src="203.0.113.9", dport=9525), DOCKER_HOST)
    assert any("arriving on eth0" in n for n in tr.notes)


HOST_FILES = Path(__file__).resolve().parent.parent / "fixtures" / "host"


def _host_from(*names: str):
    from iptexplain.hostio import host_from_ip

    return host_from_ip([((HOST_FILES / n).read_text(), str(HOST_FILES / n)) for n in names])


@pytest.mark.parametrize("files", [("docker-ip-addr.json",), ("docker-ip-route.json",),
                                   ("docker-ip-addr.json", "docker-ip-route.json")])
@pytest.mark.parametrize("fixture", ["seed-docker.v4.save", "seed-blog-listing.txt"])
def test_host_file_with_docker0_flow_is_never_contradicted(files, fixture):
    # Saved `ip -j addr` / `ip -j route` of a Docker host (eth0 192.0.2.10/24, docker0
    # 172.17.0.1/16), and a container's flow coming in on docker0: the tracer used to take the
    # flow's interface for the external one and say "docker0 has address 198.51.100.1/24" (route
    # file) or route the default via docker0 (addr file).
    host = _host_from(*files)
    rs = load(str(FIXTURES / fixture))
    tr = trace_flow(rs, Flow(proto="tcp", src="172.17.0.6", dst="93.184.215.14", dport=443, iniface="docker0"),
                    host)
    h = tr.host
    assert [str(a) for a in h.interfaces["docker0"].addrs if a.family == 4] == ["172.17.0.1/16"]
    assert [str(a) for a in h.interfaces["eth0"].addrs if a.family == 4] == ["192.0.2.10/24"]
    assert not any("198.51.100" in n or "203.0.113" in n for n in tr.notes), tr.notes
    (default,) = [r for r in h.routes if r.dst == "default" and r.family == 4]
    assert default.dev == "eth0"
    leaf = next(iter(tr.leaves()))
    routes = [s for s in leaf.steps if s.kind == T.ROUTE]
    assert routes and "dev eth0" in routes[0].reason, routes[0].reason
    if fixture.endswith(".save"):  # exact rules: Docker's MASQUERADE to eth0's real address
        assert leaf.outcome.kind == T.FORWARDED and leaf.outcome.iface == "eth0"
        assert leaf.outcome.packet["src"] == "192.0.2.10"


def test_an_interface_the_host_data_lists_gets_no_invented_address():
    # peer0 is in the host data with only an IPv6 link-local address: a flow arriving on it
    # must not give it a documentation IPv4 address.
    host = _host_from("docker-ip-addr.json", "docker-ip-route.json")
    tr = trace_flow(load(str(FIXTURES / "seed-docker.v4.save")),
                    Flow(proto="tcp", src="203.0.113.7", dst="192.0.2.10", dport=22, iniface="peer0"), host)
    assert not [a for a in tr.host.interfaces["peer0"].addrs if a.family == 4]
    assert any("peer0 has no IPv4 address in the host data" in n for n in tr.notes), tr.notes
