"""Partial input on the trace side (issue 19): what the input hid becomes a condition of the
trace, never an assumption.  The kernel's side of these claims is tests/test_partial_kernel.py."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from iptexplain import cli
from iptexplain.host import HostModel, IfAddr, Interface
from iptexplain.netfilter import trace as T
from iptexplain.netfilter.trace import Flow
from iptexplain.netfilter.tracer import trace_flow
from iptexplain.parse import parse_text
from iptexplain.render.dot import render_dot
from iptexplain.render.json_out import exit_status, trace_json

ROOT = Path(__file__).resolve().parent.parent
SEED_LISTING = ROOT / "fixtures" / "seed-blog-listing.txt"

INPUT_ONLY = """Chain INPUT (policy DROP)
target     prot opt source               destination
ACCEPT     tcp  --  0.0.0.0/0            0.0.0.0/0            tcp dpt:443
"""

ALL_TABLES_LISTED = "".join(f"# iptables -t {t} -nL\n" + {
    "raw": "Chain PREROUTING (policy ACCEPT)\ntarget prot opt source destination\n\n"
           "Chain OUTPUT (policy ACCEPT)\ntarget prot opt source destination\n\n",
    "mangle": "".join(f"Chain {c} (policy ACCEPT)\ntarget prot opt source destination\n\n"
                      for c in ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")),
    "nat": "".join(f"Chain {c} (policy ACCEPT)\ntarget prot opt source destination\n\n"
                   for c in ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")),
}[t] for t in ("raw", "mangle", "nat"))


def host(*ifaces: tuple[str, str]) -> HostModel:
    h = HostModel(source="test")
    for name, cidr in ifaces:
        addr, plen = cidr.split("/")
        h.add_interface(Interface(name, [IfAddr(addr, int(plen))]))
    return h


def kinds(tr: T.Trace) -> list[str]:
    return [lf.outcome.kind for lf in tr.leaves()]


def test_a_hidden_interface_that_cannot_change_the_outcome_is_not_a_fork() -> None:
    # A user chain whose only rule is a RETURN: whether its hidden -i matches or not, the packet
    # goes on with the next rule of INPUT.  The fork is folded; the outcome says why it is one.
    text = ALL_TABLES_LISTED + """# iptables -nL
Chain INPUT (policy ACCEPT)
target     prot opt source               destination
checks     all  --  0.0.0.0/0            0.0.0.0/0
DROP       tcp  --  0.0.0.0/0            0.0.0.0/0            tcp dpt:23

Chain FORWARD (policy ACCEPT)
target     prot opt source               destination

Chain OUTPUT (policy ACCEPT)
target     prot opt source               destination

Chain checks (1 references)
target     prot opt source               destination
RETURN     all  --  0.0.0.0/0            0.0.0.0/0
"""
    rs = parse_text(text, "paste.txt")
    assert "interfaces" in rs.hidden and rs.missing_tables(4) == ("security",)  # no doubt from it
    h = host(("eth0", "198.51.100.1/24"))
    tr = trace_flow(rs, Flow(proto="tcp", src="203.0.113.7", dst="198.51.100.1", dport=22, iniface="eth0"), h)
    (leaf,) = list(tr.leaves())
    assert leaf.outcome.kind == T.DELIVERED
    assert "every way ends so" in leaf.outcome.uncertain
    # The DROP of port 23 would decide: there the trace forks, as listed first.
    tr23 = trace_flow(rs, Flow(proto="tcp", src="203.0.113.7", dst="198.51.100.1", dport=23, iniface="eth0"), h)
    assert kinds(tr23) == [T.DROPPED, T.DELIVERED]
    first, second = tr23.leaves()
    assert "INPUT #2's hidden -i/-o admit this packet (as listed)" in first.conditions[-1].text
    assert "INPUT #2 has a hidden -i/-o that excludes this packet" in second.conditions[-1].text


def test_tables_the_input_lacks_add_their_ways() -> None:
    # `iptables -S` is the filter table only: a nat table could DNAT the flow elsewhere, and raw
    # or mangle could drop it.  The way the input shows comes first, then theirs.
    rs = parse_text("-P INPUT DROP\n-P FORWARD DROP\n-P OUTPUT ACCEPT\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n",
                    "filter.S")
    assert rs.missing_tables(4) == ("raw", "mangle", "nat", "security")
    h = host(("eth0", "198.51.100.1/24"))
    tr = trace_flow(rs, Flow(proto="tcp", src="203.0.113.7", dst="198.51.100.1", dport=80, iniface="eth0"), h)
    leaves = list(tr.leaves())
    assert [lf.outcome.kind for lf in leaves] == [T.DROPPED, T.UNDECIDED]
    assert "if what the input lacks lets it through unchanged" in leaves[0].conditions[0].text
    assert "if the nat table (not in the input) rewrites it" in leaves[1].conditions[0].text
    assert "a nat table (not in the input) can DNAT or REDIRECT it elsewhere" in leaves[0].outcome.uncertain
    doc = trace_json(tr, rs)
    assert doc["ruleset"]["tables"] == ["filter"] and "nat" in doc["ruleset"]["tables_lacking"]
    assert doc["uncertain"] is True and exit_status(tr) == 3
    # Delivered as shown: the missing tables could still drop it.
    ok = trace_flow(rs, Flow(proto="tcp", src="203.0.113.7", dst="198.51.100.1", dport=22, iniface="eth0"), h)
    assert kinds(ok) == [T.DELIVERED, T.DROPPED, T.UNDECIDED]
    # An established packet never meets the nat chains: no nat way for it.
    est = trace_flow(rs, Flow(proto="tcp", src="203.0.113.7", dst="198.51.100.1", dport=22, iniface="eth0",
                              state="ESTABLISHED"), h)
    assert T.UNDECIDED not in kinds(est)


def test_a_built_in_chain_the_input_never_showed_is_unknown() -> None:
    rs = parse_text("-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n", "excerpt.S")
    h = host(("eth0", "198.51.100.1/24"), ("eth1", "10.0.0.1/24"))
    tr = trace_flow(rs, Flow(proto="tcp", src="203.0.113.7", dst="10.0.0.9", dport=80, iniface="eth0"), h)
    leaves = list(tr.leaves())
    leaf = leaves[0]
    assert leaf.outcome.kind == T.FORWARDED
    assert "filter FORWARD is not in the input: its rules and policy are unknown" in leaf.outcome.uncertain
    # ... and its policy could be DROP: that way follows, named with what else the input lacks.
    dropped = [lf for lf in leaves if lf.outcome.kind == T.DROPPED]
    assert dropped and "filter FORWARD (not in the input) drops it" in dropped[0].conditions[0].text


def test_whether_a_named_address_is_the_hosts_own_is_a_fork_without_a_host_model() -> None:
    # The case: an INPUT-only paste, `-d 198.51.100.10 --dport 443`, no host model.
    rs = parse_text(INPUT_ONLY, "input.nL")
    tr = trace_flow(rs, Flow(proto="tcp", dst="198.51.100.10", dport=443))
    leaves = list(tr.leaves())
    first_cond = leaves[0].conditions[0].text
    assert first_cond == "if 198.51.100.10 is this host's own address"  # the paste is INPUT rules only
    routed = [lf for lf in leaves if lf.conditions[0].text.startswith("if 198.51.100.10 is another machine's")]
    assert routed and routed[0].outcome.kind == T.FORWARDED and routed[0].outcome.uncertain
    assert any("suggests it is the host's own" in n for n in tr.notes)
    # Given the host, there is nothing to fork on.
    given = trace_flow(rs, Flow(proto="tcp", dst="198.51.100.10", dport=443), host(("eth0", "198.51.100.10/24")))
    assert not any("host's own address" in c.text for lf in given.leaves() for c in lf.conditions)


def test_uncertainty_survives_reply_json_dot_and_exit_status() -> None:
    runner = CliRunner()
    r = runner.invoke(cli.main, ["trace", str(SEED_LISTING), "--dport", "9525", "--reply", "--json"])
    assert r.exit_code == 3, r.output
    doc = json.loads(r.stdout)
    assert doc["uncertain"] is True and doc["exit_status"] == 3
    assert all(o["outcome"]["uncertain_reason"] for o in doc["outcomes"])
    rs = parse_text(SEED_LISTING.read_text(), "seed-blog-listing.txt")
    tr = trace_flow(rs, Flow(proto="tcp", dport=9525))
    dot = render_dot(tr, rs)
    assert "FORWARDED?" in dot and "uncertain:" in dot
    # The exact input: exit status of the outcome, nothing uncertain.
    exact = runner.invoke(cli.main, ["trace", str(ROOT / "fixtures" / "seed-docker.v4.save"), "--dport", "9525"])
    assert exact.exit_code == 0, exact.output


def test_rules_the_input_left_out_make_the_verdict_uncertain() -> None:
    # An -S excerpt of one chain with an elision: the flow passes the elided place, where a
    # left-out rule may have decided it; and a chain only jumped to is unknown, not empty.
    from iptexplain.graph import Chain

    rs = parse_text("-P INPUT ACCEPT\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n"
                    "-A INPUT -p tcp -m tcp --dport 25 -j DROP\n-A INPUT -j audit\n", "excerpt.S")
    filt = rs.table("filter")
    filt.chains["INPUT"].gaps = (1,)  # the paste elided rules after the first one
    if "audit" not in filt.chains or filt.chains["audit"].listed:
        filt.chains["audit"] = Chain("audit", "filter", False, listed=False)
    rs.link()
    h = host(("eth0", "198.51.100.1/24"))
    seen = trace_flow(rs, Flow(proto="tcp", src="203.0.113.7", dst="198.51.100.1", dport=22, iniface="eth0"), h)
    first = next(iter(seen.leaves())).outcome
    assert first.kind == T.DELIVERED and "leaves out rules" not in (first.uncertain or "")
    past = trace_flow(rs, Flow(proto="tcp", src="203.0.113.7", dst="198.51.100.1", dport=80, iniface="eth0"), h)
    out = next(iter(past.leaves())).outcome
    assert "the input leaves out rules of filter INPUT after its rule 1" in out.uncertain
    assert "filter audit is not in the input (only jumped to)" in out.uncertain
