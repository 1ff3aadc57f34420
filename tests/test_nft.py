"""nft rulesets: the text read into the rule graph, and traced with the iptables tables.

What the kernel does with each construct is checked in tests/test_nft_kernel.py; here the
reader (grammar, expressions, errors) and the tracer's answers on small rulesets.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from iptexplain.core.errors import InputError
from iptexplain.host.model import HostModel, IfAddr, Interface, Route
from iptexplain.netfilter import hooks as H
from iptexplain.netfilter import trace as T
from iptexplain.netfilter.trace import Flow
from iptexplain.netfilter.tracer import trace_flow
from iptexplain.nft.reader import read_nft
from iptexplain.parse import detect_format, parse_text

ROOT = Path(__file__).resolve().parent.parent
SERVER = ROOT / "fixtures" / "nft" / "inet-server.nft"
from corpus_index import CORPUS  # noqa: E402

AUX = CORPUS / "generated" / "aux"
FIREWALLD = [AUX / "firewalld-nftables-backend_nft.nft-ruleset.txt",
             AUX / "firewalld-iptables-backend_nft.nft-ruleset.txt"]


def host() -> HostModel:
    h = HostModel(source="test")
    h.add_interface(Interface("lo", [IfAddr("127.0.0.1", 8, 4), IfAddr("::1", 128, 6)], kind="loopback"))
    h.add_interface(Interface("eth0", [IfAddr("198.51.100.1", 24, 4), IfAddr("2001:db8::1", 64, 6)]))
    h.add_interface(Interface("docker0", [IfAddr("172.17.0.1", 16, 4)], kind="bridge"))
    h.routes.append(Route("default", "eth0", via="198.51.100.254", family=4))
    h.sysctls["net.ipv4.ip_forward"] = "1"
    return h


def outcomes(rs, flow: Flow) -> list[tuple[tuple[str, ...], str, str]]:
    tr = trace_flow(rs, flow, host())
    return [(tuple(c.text for c in l.conditions), l.outcome.kind, l.outcome.summary) for l in tr.leaves()]


def only(rs, flow: Flow) -> T.Outcome:
    leaves = list(trace_flow(rs, flow, host()).leaves())
    assert len(leaves) == 1, [(l.conditions, l.outcome.summary) for l in leaves]
    return leaves[0].outcome


# ---------------------------------------------------------------------------------------------
# Reading.


def test_the_server_ruleset_reads_into_tables_chains_sets_and_rules() -> None:
    rs = read_nft(SERVER.read_text(), "inet-server.nft")
    assert detect_format(SERVER.read_text()) == "nft"
    t, = rs.nft_tables
    assert (t.name, t.nft_family, t.ip_families) == ("inet filter", "inet", (4, 6))
    inp = t.chains["input"]
    assert (inp.nft_type, inp.hook, inp.priority, inp.policy) == ("filter", "INPUT", 0, "DROP")
    assert set(t.sets) == {"admin_v4", "blocked", "web_ports"}
    assert t.sets["admin_v4"].flags == {"interval"} and len(t.sets["admin_v4"].elements) == 2
    assert t.sets["blocked"].dynamic and not t.sets["web_ports"].dynamic
    # 11 rules as written; the verdict map is walked as one piece per element
    assert len(inp.written) == 11 and len(inp.rules) == 13
    first = inp.rules[:3]
    assert [r.piece for r in first] == ["invalid : drop", "established : accept", "related : accept"]
    assert {r.number for r in first} == {1}
    assert inp.written[5].text.startswith("tcp dport 22 ct state new limit rate over 3/minute")
    assert rs.families() == [4, 6]
    assert not rs.not_understood()


def test_handles_counters_and_comments_of_nft_list_ruleset_a() -> None:
    text = """table ip nat { # handle 3
	chain PREROUTING { # handle 1
		type nat hook prerouting priority dstnat; policy accept;
		tcp dport 8080 counter packets 12 bytes 720 dnat to 172.17.0.6:80 comment "web" # handle 7
	}
}
"""
    rs = read_nft(text, "a.nft")
    t, = rs.nft_tables
    r, = t.chains["PREROUTING"].rules
    assert (t.handle, t.chains["PREROUTING"].handle, r.handle, r.comment) == (3, 1, 7, "web")
    assert r.text == 'tcp dport 8080 counter dnat to 172.17.0.6:80 comment "web"'
    assert r.where() == "a.nft:4 handle 7"


@pytest.mark.parametrize("words,value", [(["filter"], 0), (["filter", "+", "10"], 10), (["mangle", "-", "5"], -155),
                                          (["-90"], -90), (["dstnat"], -100), (["srcnat"], 100), (["raw"], -300)])
def test_priority_names(words, value) -> None:
    from iptexplain.nft.model import priority_value

    assert priority_value(words, "inet") == value


def test_priorities_of_the_bridge_family() -> None:
    from iptexplain.nft.model import priority_value

    assert priority_value(["filter"], "bridge") == -200


@pytest.mark.parametrize("path", FIREWALLD, ids=lambda p: p.name)
def test_firewalld_rulesets_read(path: Path) -> None:
    rs = read_nft(path.read_text(), path.name)
    base = [c for t in rs.nft_tables for c in t.chains.values() if c.is_base]
    assert base and all(c.priority is not None for c in base)
    if "iptables-backend" in path.name:
        # iptables-nft's tables: read, and their xtables targets shown as not understood
        managed = {t.name for t in rs.nft_tables if t.managed_by == "iptables-nft"}
        assert {"ip raw", "ip nat", "ip filter", "ip6 raw", "ip6 mangle", "ip6 filter"} == managed
        assert rs.not_understood() == {"xt target CT": 4}
    else:
        assert not rs.not_understood()


BAD = [
    ("table inet t {\n\tchain c {\n\t\ttype filter hook input priority bogus; policy accept;\n\t}\n}\n", 3,
     "bad priority"),
    ("table inet t {\n\tchain c {\n\t\ttype filter hook sideways priority 0;\n\t}\n}\n", 3, "unknown hook"),
    ("table inet t {\n\tchain c {\n\t\tip saddr @nope drop\n\t}\n}\n", 3, "set @nope is not defined"),
    ("table inet t {\n\tchain c {\n\t\tjump elsewhere\n\t}\n}\n", 3, "chain elsewhere"),
    ("table inet t {\n\tchain c {\n\t\ttcp dport 99999 accept\n\t}\n}\n", 3, "99999"),
    ("table inet t {\n\tchain c {\n\t\tip saddr 10.0.0.300 accept\n\t}\n}\n", 3, "10.0.0.300"),
    ("table inet t {\n\tchain c {\n\t\taccept\n\t}\n", 4, "ends inside a block"),
    ("table spam t {\n}\n", 1, "unknown table family"),
]


@pytest.mark.parametrize("text,line,what", BAD, ids=[b[2] for b in BAD])
def test_bad_input_names_file_and_line(text: str, line: int, what: str) -> None:
    with pytest.raises(InputError) as e:
        read_nft(text, "bad.nft")
    msg = str(e.value)
    assert msg.startswith(f"bad.nft:{line}: "), msg
    assert what in msg


def test_cli_bad_nft_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    p = tmp_path / "bad.nft"
    p.write_text("table inet t {\n\tchain c {\n\t\ttype filter hook input priority nope;\n\t}\n}\n")
    r = subprocess.run([sys.executable, "-m", "iptexplain", "trace", str(p), "-p", "tcp", "--dport", "22"],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and f"{p}:3: chain c: bad priority" in r.stderr


def test_unknown_words_are_kept_verbatim_and_fork() -> None:
    rs = read_nft("table inet t {\n\tchain c {\n\t\ttype filter hook input priority 0; policy drop;\n"
                  "\t\ttcp dport 22 osf name \"Linux\" accept\n\t}\n}\n", "u.nft")
    assert rs.not_understood() == {"osf": 1}
    got = outcomes(rs, Flow(proto="tcp", dport=22, src="203.0.113.9"))
    assert sorted(k for _, k, _ in got) == ["delivered", "dropped"]
    assert any("osf name \"Linux\"" in c for conds, _, _ in got for c in conds)


# ---------------------------------------------------------------------------------------------
# Tracing.


def test_the_server_ruleset_traces_ssh_with_its_sets_and_limits() -> None:
    rs = read_nft(SERVER.read_text(), "inet-server.nft")
    got = outcomes(rs, Flow(proto="tcp", dport=22, src="203.0.113.9"))
    assert ("ip saddr @blocked",) in {c for c, _, _ in got}  # a set the host fills at run time
    kinds = {c[-1]: k for c, k, _ in got}
    assert kinds["over the rate limit 3/minute burst 5 packets"] == "dropped"
    assert kinds["under the rate limit 3/minute burst 5 packets"] == "delivered"
    admin = outcomes(rs, Flow(proto="tcp", dport=22, src="192.0.2.3"))
    assert [k for c, k, _ in admin if c == ("not ip saddr @blocked",)] == ["delivered"]
    closed = outcomes(rs, Flow(proto="tcp", dport=23, src="203.0.113.9"))
    assert [(k, s) for c, k, s in closed if c == ("not ip saddr @blocked",)] == [
        ("dropped", "dropped by the policy of inet filter input")]


def test_established_packets_take_the_verdict_map() -> None:
    rs = read_nft(SERVER.read_text(), "inet-server.nft")
    for state, kind, piece in (("ESTABLISHED", T.DELIVERED, "established : accept"),
                               ("INVALID", T.DROPPED, "invalid : drop")):
        leaf, = trace_flow(rs, Flow(proto="tcp", dport=23, src="203.0.113.9", state=state), host()).leaves()
        decided = [s.rule for s in leaf.steps if s.kind == T.RULE and s.matched]
        assert leaf.outcome.kind == kind and [r.piece for r in decided] == [piece]


def test_ip_expressions_do_not_match_ipv6_packets_in_an_inet_table() -> None:
    rs = read_nft(SERVER.read_text(), "inet-server.nft")
    # `udp dport 53 ip saddr 10.0.0.0/8 accept` is for IPv4; the IPv6 rule for DHCPv6 answers
    got = outcomes(rs, Flow(family=6, proto="udp", dport=53, src="2001:db8::9", iniface="eth0"))
    assert {k for _, k, _ in got} == {"dropped"}
    got = outcomes(rs, Flow(family=6, proto="udp", dport=546, src="fe80::2", iniface="eth0",
                            dst="2001:db8::1"))
    assert {k for _, k, _ in got} == {"delivered"}


TWO_TABLES = """table inet a {
	chain f {
		type filter hook forward priority 0; policy accept;
		accept
	}
}
table ip b {
	chain f {
		type filter hook forward priority 10; policy drop;
		tcp dport 81 accept
	}
}
"""


def test_an_accept_is_not_final_a_drop_in_a_later_base_chain_is() -> None:
    rs = read_nft(TWO_TABLES, "two.nft")
    out = only(rs, Flow(proto="tcp", src="198.51.100.2", dst="172.17.0.6", dport=80, iniface="eth0"))
    assert (out.kind, out.summary) == (T.DROPPED, "dropped by the policy of ip b f")
    out = only(rs, Flow(proto="tcp", src="198.51.100.2", dst="172.17.0.6", dport=81, iniface="eth0"))
    assert out.kind == T.FORWARDED


def test_the_hook_table_holds_native_chains_beside_iptables_tables() -> None:
    ipt = parse_text("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
                     "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
                     ":POSTROUTING ACCEPT [0:0]\nCOMMIT\n", "ipt")
    ipt.nft_tables = read_nft("""table inet x {
	chain early { type filter hook forward priority -5; policy accept; }
	chain late { type filter hook forward priority 5; policy accept; }
	chain n { type nat hook prerouting priority -150; policy accept; }
	chain m { type filter hook prerouting priority -120; policy accept; }
}
""", "x").nft_tables
    fwd = [(e.table, e.chain.name, e.priority) for e in H.hook_entries(ipt, 4, "FORWARD")]
    assert fwd == [("inet x", "early", -5), ("filter", "FORWARD", 0), ("inet x", "late", 5)]
    pre = [(e.kind, e.table, e.priority, e.last_nat) for e in H.hook_entries(ipt, 4, "PREROUTING")]
    # the nat chain "at -150" runs from the NAT core's -100, before iptables' nat, by its own priority
    assert pre == [("conntrack", "", -200, True), ("table", "inet x", -120, True),
                   ("table", "inet x", -100, False), ("table", "nat", -100, True)]


NAT_TWICE = """table ip first {
	chain pre { type nat hook prerouting priority dstnat; policy accept; tcp dport 8080 dnat to 172.17.0.6:80; }
}
table ip second {
	chain pre { type nat hook prerouting priority dstnat + 10; policy accept; tcp dport 80 dnat to 172.17.0.7:80; tcp dport 8081 dnat to 172.17.0.7:80; }
}
"""


def test_nat_chains_run_until_one_binds_the_connection() -> None:
    rs = read_nft(NAT_TWICE, "nat.nft")
    out = only(rs, Flow(proto="tcp", src="198.51.100.2", dst="198.51.100.1", dport=8080, iniface="eth0"))
    assert (out.kind, out.packet["dst"], out.packet["dport"]) == (T.FORWARDED, "172.17.0.6", "80")
    out = only(rs, Flow(proto="tcp", src="198.51.100.2", dst="198.51.100.1", dport=8081, iniface="eth0"))
    assert (out.kind, out.packet["dst"]) == (T.FORWARDED, "172.17.0.7")


KUBE_LIKE = """table ip kube-proxy {
	chain services {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr . meta l4proto . th dport vmap { 10.96.0.10 . udp . 53 : goto service-dns, 10.96.0.1 . tcp . 443 : goto service-api }
	}
	chain service-api {
		numgen random mod 3 vmap { 0 : goto ep-1, 1 : goto ep-2, 2 : goto ep-3 }
	}
	chain service-dns {
		dnat to 10.244.0.5:53
	}
	chain ep-1 { dnat to 172.17.0.6:6443; }
	chain ep-2 { dnat to 172.17.0.7:6443; }
	chain ep-3 { dnat to 172.17.0.8:6443; }
}
"""


def test_numgen_verdict_maps_are_one_branch_per_endpoint_with_its_probability() -> None:
    rs = read_nft(KUBE_LIKE, "kube.nft")
    tr = trace_flow(rs, Flow(proto="tcp", src="198.51.100.2", dst="10.96.0.1", dport=443, iniface="eth0"), host())
    leaves = list(tr.leaves())
    assert sorted(l.outcome.packet["dst"] for l in leaves) == ["172.17.0.6", "172.17.0.7", "172.17.0.8"]
    assert [round(l.probability, 4) for l in leaves] == [0.3333] * 3
    out = only(rs, Flow(proto="udp", src="198.51.100.2", dst="10.96.0.10", dport=53, iniface="eth0"))
    assert (out.packet["dst"], out.packet["dport"]) == ("10.244.0.5", "53")
    # a key in no element: the lookup fails, the rule does not match
    out = only(rs, Flow(proto="tcp", src="198.51.100.2", dst="10.96.0.10", dport=53, iniface="eth0"))
    assert out.packet["dst"] == "10.96.0.10"


def test_nat_maps_masquerade_and_jump_with_a_mark() -> None:
    rs = read_nft("""table inet t {
	map ports { type inet_service : ipv4_addr . inet_service; elements = { 8080 : 172.17.0.6 . 80 }; }
	chain pre { type nat hook prerouting priority dstnat; policy accept; dnat ip to tcp dport map @ports; }
	chain post { type nat hook postrouting priority srcnat; policy accept; oifname "eth0" masquerade; }
	chain fwd { type filter hook forward priority 0; policy drop; meta mark set 0x2 jump check; }
	chain check { meta mark 0x2 accept; }
}
""", "t.nft")
    out = only(rs, Flow(proto="tcp", src="198.51.100.2", dst="198.51.100.1", dport=8080, iniface="eth0"))
    assert (out.kind, out.packet["dst"], out.packet["mark"]) == (T.FORWARDED, "172.17.0.6", "0x2")
    out = only(rs, Flow(proto="tcp", src="172.17.0.6", dst="203.0.113.9", dport=443, iniface="docker0"))
    assert (out.kind, out.packet["src"]) == (T.FORWARDED, "198.51.100.1")
    # IPv6 packets: `dnat ip to` does not apply to them (NFT_BREAK), the chain goes on
    out = only(rs, Flow(family=6, proto="tcp", src="2001:db8::9", dst="2001:db8::1", dport=8080, iniface="eth0"))
    assert out.kind == T.DELIVERED


def test_cli_traces_an_nft_file(tmp_path: Path) -> None:
    p = tmp_path / "ruleset.nft"
    p.write_text(SERVER.read_text())
    r = subprocess.run([sys.executable, "-m", "iptexplain", "trace", str(p), "-p", "tcp", "--dport", "22",
                        "--src", "192.0.2.3", "--json"], capture_output=True, text=True)
    assert r.returncode == 3, r.stderr  # the ways disagree: the host's @blocked set decides
    doc = json.loads(r.stdout)
    text = json.dumps(doc)
    assert "inet filter" in text and "tcp dport 22 ip saddr @admin_v4 accept" in text


def test_show_lists_nft_rules_as_written_with_hook_priority_and_handle() -> None:
    from rich.console import Console

    from iptexplain.render.show import render_ruleset

    text = """table ip nat { # handle 3
	chain PREROUTING { # handle 1
		type nat hook prerouting priority dstnat - 10; policy accept;
		tcp dport { 80, 443 } counter packets 12 bytes 720 dnat to 172.17.0.6 # handle 7
		ip daddr vmap { 10.0.0.1 : goto svc } # handle 8
	}
	chain svc { # handle 2
		xt target CT # handle 9
	}
}
"""
    console = Console(width=120, record=True, color_system=None)
    render_ruleset(read_nft(text, "n.nft"), console=console)
    out = console.export_text()
    assert "ip nat PREROUTING  type nat hook prerouting priority dstnat - 10 (-110)  policy ACCEPT" in out
    assert "tcp dport { 80, 443 }" in out and "counter dnat to 172.17.0.6" in out
    assert "1 h7     12     720" in out  # the counter's values in the counter columns
    assert "2 h8                  (every packet)" in out
    assert "ip nat svc  1 reference  ← ↪ PREROUTING#2" in out and "ip daddr vmap { 10.0.0.1 : goto svc }" in out
    assert "xt target CT (not understood)" in out
    assert "3 rules" in out and "modules not understood: xt target CT (1 rule)" in out


def test_named_limits_and_flowtable_offload_are_understood() -> None:
    rs = read_nft("""table inet t {
	limit ssh-rate { rate 3/minute }
	flowtable ft { hook ingress priority filter; devices = { eth0 }; }
	chain f {
		type filter hook forward priority filter; policy drop;
		ip protocol tcp flow add @ft
		tcp dport 22 limit name "ssh-rate" accept
	}
}
""", "o.nft")
    assert not rs.not_understood()
    got = outcomes(rs, Flow(proto="tcp", src="198.51.100.2", dst="172.17.0.6", dport=22, iniface="eth0"))
    assert sorted((c, k) for c, k, _ in got) == [(("over the limit ssh-rate",), "dropped"),
                                                (("within the limit ssh-rate",), "forwarded")]


@pytest.mark.parametrize("kind,reroute", [("filter", False), ("route", True)])
def test_only_route_chains_reroute_on_a_new_mark(kind: str, reroute: bool) -> None:
    """Measured: with `ip rule fwmark 1 lookup 100`, a mark set in a route chain sends the packet
    by table 100, the same mark set in a filter chain does not (the kernel re-routes only for
    route chains and iptables' mangle table)."""
    rs = read_nft(f"""table ip t {{
	chain out {{ type {kind} hook output priority mangle; policy accept; tcp dport 80 meta mark set 0x1; }}
}}
""", "o.nft")
    leaf, = trace_flow(rs, Flow(proto="tcp", dst="198.51.100.2", dport=80, from_host=True), host()).leaves()
    routes = [s.hook for s in leaf.steps if s.kind == T.ROUTE]
    assert any(h.startswith("re-routing") for h in routes) == reroute, routes
    assert leaf.outcome.packet["mark"] == "0x1"


def test_header_rewrites_are_kept_as_written_and_not_modelled() -> None:
    rs = read_nft("""table inet t {
	chain post {
		type filter hook forward priority mangle; policy accept;
		tcp flags syn tcp option maxseg size set rt mtu
		ip dscp set cs1 accept
	}
}
""", "w.nft")
    rules = rs.nft_tables[0].chains["post"].rules
    assert [r.target.nft_text() for r in rules] == ["tcp option maxseg size set rt mtu", "ip dscp set cs1 accept"]
    assert rs.not_understood() == {"tcp option maxseg size set": 1, "ip dscp set": 1}
    out = only(rs, Flow(proto="tcp", src="198.51.100.2", dst="172.17.0.6", dport=80, iniface="eth0"))
    assert out.kind == T.FORWARDED


NUMBERS_RULESET = """table inet t {{
\tchain c {{
\t\ttype filter hook input priority 0; policy accept;
\t\ttcp dport {v} meta mark {v} drop
\t}}
}}
"""


@pytest.mark.parametrize("written", ["010", "0x16", "22", "0"])
def test_numbers_are_read_as_nft_reads_them(written: str, tmp_path: Path) -> None:
    """nft's scanner reads numbers as C's ``strtoull(…, 0)``: ``010`` is 8, ``0x16`` is 22.  The
    value nft itself loads (in a network namespace of the test's own, listed back) is the one
    read here."""
    f = tmp_path / "n.nft"
    f.write_text(NUMBERS_RULESET.format(v=written))
    out = subprocess.run(["unshare", "-n", "sh", "-c", f"nft -f {f} && nft list ruleset"],
                         capture_output=True, text=True, check=True).stdout
    port = int(out.split("tcp dport ")[1].split()[0])
    rs = read_nft(f.read_text(), str(f))
    [rule] = [r for t in rs.nft_tables for c in t.chains.values() for r in c.rules]
    hit = trace_flow(rs, Flow(proto="tcp", dst="198.51.100.1", dport=port, mark=port, iniface="eth0"), host())
    miss = trace_flow(rs, Flow(proto="tcp", dst="198.51.100.1", dport=port + 1, mark=port, iniface="eth0"), host())
    assert [lf.outcome.kind for lf in hit.leaves()] == [T.DROPPED], rule
    assert [lf.outcome.kind for lf in miss.leaves()] == [T.DELIVERED]


@pytest.mark.parametrize("written", ["1_000", "\u0663", "99999", "0x"])
def test_numbers_nft_refuses_are_refused(written: str) -> None:
    with pytest.raises(InputError, match=r":4: "):
        read_nft(NUMBERS_RULESET.format(v=written), "n.nft")
