"""The view says each thing once and in one way: an outcome names its rule once, counts agree
with the lists they introduce, assumptions the answer rests on are always shown, the input is
named once, every reference is FILE:LINE of the text the rule came from."""

from __future__ import annotations

import re

from iptexplain.live import FamilyRead, ruleset_from_reads
from iptexplain.netfilter.trace import Flow
from iptexplain.netfilter.tracer import trace_flow
from iptexplain.parse import parse_text
from iptexplain.render.trace_view import render_text

WIDTH = 200

UFW_LIKE = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:user-input - [0:0]
-A INPUT -j user-input
-A user-input -p tcp -m tcp --dport 23 -j DROP
-A user-input -p tcp -m tcp --dport 24 -j REJECT --reject-with tcp-reset
COMMIT
"""


def view(text: str, flow: Flow, source: str = "rules.save", verbose: bool = False) -> str:
    rs = parse_text(text, source)
    return render_text(trace_flow(rs, flow), rs, width=WIDTH, verbose=verbose)


def test_outcome_names_its_rule_once() -> None:
    out = view(UFW_LIKE, Flow(dport=23))
    last = out.strip().splitlines()[-1]
    assert last == "✘ DROPPED by filter user-input #1 (rules.save:7)", last
    rej = view(UFW_LIKE, Flow(dport=24)).strip().splitlines()[-1]
    assert rej.startswith("✘ REJECTED by filter user-input #2 (rules.save:8) with tcp-reset"), rej
    assert rej.count("user-input") == 1


def test_uncertain_count_agrees_with_its_list() -> None:
    chains = ["INPUT", "A", "B", "C", "D", "E", "F"]
    blocks = []
    for name, nxt in zip(chains, chains[1:] + ["DROP"]):
        head = f"Chain {name} (policy ACCEPT)" if name == "INPUT" else f"Chain {name} (1 references)"
        blocks.append(f"{head}\ntarget     prot opt source               destination\n"
                      f"{nxt:<10} all  --  0.0.0.0/0            0.0.0.0/0\n")
    out = view("\n".join(blocks), Flow(dport=22), source="list.txt")
    flat = " ".join(out.split())
    # the way through all seven jumps rests on seven rules (INPUT, A … E jump, F drops): the
    # count is of the rules, and the one named is among them, not beside them
    m = re.search(r"rests on (\d+) rules, the last filter F #1 `-j DROP`", flat)
    assert m and m.group(1) == "7", flat
    assert "earlier rules and" not in flat and "earlier rule and" not in flat


def test_assumptions_are_shown_without_verbose() -> None:
    out = view(UFW_LIKE, Flow(dport=80))
    head = out.split("\n\n")[0]
    assert "assumed: eth0 has address 198.51.100.1/24" in head, head
    assert "assumed: default route via 198.51.100.254 dev eth0" in head


def test_notes_name_the_input_once() -> None:
    text = UFW_LIKE.replace("-A INPUT -j user-input", "-A INPUT -i eth7 -s 10.7.0.0/16 -j user-input")
    out = view(text, Flow(dport=80), source="/srv/tickets/1234/rules.save", verbose=True)
    head = out.split("\n\n")[0]  # the header: the input's name, then the notes
    assert head.count("/srv/tickets/1234/rules.save") == 1, head
    assert re.search(r"inferred: eth7 carries 10\.7\.0\.0/16 .* from line 6: -A INPUT", out), out


def test_addrtype_says_what_it_found_only_when_it_differs() -> None:
    text = UFW_LIKE + ("*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n"
                       ":OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
                       "-A PREROUTING -m addrtype --dst-type LOCAL -j MARK --set-xmark 0x1/0xffffffff\nCOMMIT\n")
    out = view(text, Flow(dport=80), verbose=True)
    assert "is LOCAL (LOCAL)" not in out and "is LOCAL" in out
    out = view(text, Flow(dport=80, dst="192.0.2.9", iniface="eth0"), verbose=True)
    assert "is not LOCAL (UNICAST)" in out, out


def test_live_rules_and_policies_share_one_reference_format() -> None:
    save = "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n" \
           "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\nCOMMIT\n"
    rs = ruleset_from_reads([FamilyRead(4, "nft", save, "iptables-nft-save", "iptables-nft-save -c", 1)])
    dropped = render_text(trace_flow(rs, Flow(dport=80)), rs, width=WIDTH).strip().splitlines()[-1]
    accepted = render_text(trace_flow(rs, Flow(dport=22)), rs, width=WIDTH).strip().splitlines()[-1]
    assert "(iptables-nft-save:2)" in dropped, dropped
    assert "(iptables-nft-save:5)" in accepted, accepted
    assert "live:" not in dropped + accepted


def test_dot_does_not_show_an_unapplied_policy_as_applied() -> None:
    from iptexplain.examples import load_example
    from iptexplain.render.dot import render_dot

    rs, host = load_example("docker")
    published = render_dot(trace_flow(rs, Flow(dport=9525), host), rs)
    # the DNAT decided in nat PREROUTING, filter DOCKER accepted: neither policy was applied
    assert '"nat/PREROUTING" [label="PREROUTING\\npolicy ACCEPT (not reached)"' in published
    assert '"filter/FORWARD" [label="FORWARD\\npolicy DROP (not reached)"' in published
    closed = render_dot(trace_flow(rs, Flow(dport=9522, dst="172.17.0.6"), host), rs)
    assert '"filter/FORWARD" [label="FORWARD\\npolicy DROP"' in closed  # it dropped the packet
    assert '"nat/PREROUTING" [label="PREROUTING\\npolicy ACCEPT"' in closed  # no rule matched there


def test_show_and_trace_say_what_no_file_reads_and_format_means_one_thing() -> None:
    from click.testing import CliRunner

    from iptexplain import cli

    show = CliRunner().invoke(cli.main, ["show", "--help"]).output
    trace = CliRunner().invoke(cli.main, ["trace", "--help"]).output
    flat_show, flat_trace = " ".join(show.split()), " ".join(trace.split())
    assert "unlike trace, show never reads the live host" in flat_show
    assert "live host's ruleset is read (as root) -- unlike show, which reads standard input" in flat_trace
    # --format is the output format (trace); the input format is --input-format in both
    assert "--input-format" in show and "--format" not in show.replace("--input-format", "")
    assert "--input-format" in trace and "Output: the rich view, JSON, or Graphviz" in flat_trace
