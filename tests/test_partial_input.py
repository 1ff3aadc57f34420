"""Partial input: what -S / -L text and pastes of it leave out is named on the rule graph and in
the notes, and never taken for an empty table or an empty chain with policy ACCEPT.

Real files: fixtures/listing (iptables 1.8.9 output of real tools' rulesets) and pastes copied
from the corpus (fixtures/partial, see its README).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from iptexplain.errors import InputError
from iptexplain.parse import load, parse_text
from iptexplain.parse.combine import combine
from iptexplain.parse.partial import enter_chain, entry_chains
from iptexplain.parse.rough import RedactedValue
from iptexplain.sources import read_files

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "fixtures"
DOCKER = FIX / "listing" / "docker"


def _read(path: Path, **kw):  # type: ignore[no-untyped-def]
    return parse_text(path.read_text(), path.name, **kw)


# ---------------------------------------------------------------------------------------------
# Which tables the input holds, and which it lacks.


def test_save_dump_is_whole_and_lacks_nothing() -> None:
    rs = _read(FIX / "seed-docker.v4.save")
    assert rs.whole
    assert rs.missing_tables(4) == ()
    assert not any("unknown --" in n.message for n in rs.notes)
    assert rs.unknown_chains() == []


def test_filter_S_lacks_the_other_tables_and_says_so() -> None:
    rs = _read(DOCKER / "moby-iptablesdoc_v28.5.2__usernet-portmap.filter.v4.S")
    assert not rs.whole
    assert rs.tables_shown(4) == ("filter",)
    assert rs.missing_tables(4) == ("raw", "mangle", "nat", "security")
    (note,) = [n for n in rs.notes if "unknown --" in n.message]
    assert note.kind == "partial"
    for t in ("raw", "mangle", "nat", "security"):
        assert t in note.message
    assert "iptables -t TABLE -S" in note.message
    # -S printed every built-in chain's policy: all of filter is known.
    assert all(c.complete for c in rs.table("filter").chains.values())


def test_listing_of_two_tables_lacks_three() -> None:
    rs = _read(FIX / "seed-blog-listing.txt")
    assert not rs.whole
    assert set(rs.tables_shown(4)) == {"nat", "filter"}
    assert rs.missing_tables(4) == ("raw", "mangle", "security")
    assert rs.missing_tables(6) == ()  # no IPv6 table at all: nothing to say about IPv6


# ---------------------------------------------------------------------------------------------
# Built-in chains the input does not show are unknown, not empty with policy ACCEPT.


def test_S_excerpt_without_policy_lines_marks_policies_and_absent_chains_unknown() -> None:
    rs = parse_text("-A INPUT -p tcp --dport 22 -j ACCEPT\n-P OUTPUT DROP\n", "excerpt.S")
    f = rs.table("filter")
    assert f.chains["INPUT"].listed and not f.chains["INPUT"].policy_known
    assert not f.chains["INPUT"].complete
    assert not f.chains["FORWARD"].listed  # never shown: unknown
    assert f.chains["OUTPUT"].complete and f.chains["OUTPUT"].policy == "DROP"
    assert {c.name for c in rs.unknown_chains()} == {"INPUT", "FORWARD"}


def test_listing_without_a_builtin_chain_marks_it_unknown() -> None:
    text = ("Chain INPUT (policy DROP)\ntarget     prot opt source               destination\n"
            "ACCEPT     tcp  --  0.0.0.0/0            0.0.0.0/0            tcp dpt:22\n")
    rs = parse_text(text, "input-only.nL")
    f = rs.table("filter")
    assert f.chains["INPUT"].complete and f.chains["INPUT"].policy == "DROP"
    assert not f.chains["FORWARD"].listed and not f.chains["OUTPUT"].listed
    assert any("built-in chains FORWARD and OUTPUT not shown: their rules and policy are unknown" in n.message
               for n in rs.notes)


def test_listing_jump_to_a_chain_not_shown_marks_it_unknown() -> None:
    text = ("Chain INPUT (policy ACCEPT)\ntarget     prot opt source               destination\n"
            "ts-input   all  --  0.0.0.0/0            0.0.0.0/0\n")
    rs = parse_text(text, "cut.nL")
    chain = rs.table("filter").chains["ts-input"]
    assert not chain.listed and not chain.builtin and chain.rules == []


# ---------------------------------------------------------------------------------------------
# Tables are what iptables says they are.

PARTIAL = FIX / "partial"
MOBY = "moby-iptablesdoc_v28.5.2__usernet-portmap"


def test_filter_S_using_MARK_is_filter_not_mangle() -> None:
    rs = _read(PARTIAL / "calico-docker-libnetwork_filter.v4.S")
    assert rs.tables_shown(4) == ("filter",)
    assert any(r.target_name == "MARK" for r in rs.rules())
    assert not any("mangle inferred" in n.message for n in rs.notes)


def test_filter_listing_using_TCPMSS_is_filter() -> None:
    text = ("Chain FORWARD (policy DROP 0 packets, 0 bytes)\n"
            " pkts bytes target     prot opt in     out     source               destination\n"
            "    0     0 TCPMSS     tcp  --  *      ppp0    0.0.0.0/0            0.0.0.0/0            "
            "tcp flags:0x06/0x02 TCPMSS clamp to PMTU\n")
    rs = parse_text(text, "fwd.nvL")
    assert rs.tables_shown(4) == ("filter",)
    assert rs.table("filter").chains["FORWARD"].rules[0].target_name == "TCPMSS"


def test_text_that_cannot_be_filter_is_read_as_the_table_it_must_be() -> None:
    rs = _read(DOCKER / f"{MOBY}.nat.v4.S")  # no prompt: -P PREROUTING ... cannot be filter
    assert rs.tables_shown(4) == ("nat",)
    (note,) = [n for n in rs.notes if n.kind == "inference"]
    assert "cannot be filter" in note.message and "PREROUTING" in note.message


def test_heading_naming_the_table_decides_it() -> None:
    text = ("Output of -t nat -nL on the router:\n"
            "Chain DOCKER (2 references)\n"
            "target     prot opt source               destination\n"
            "RETURN     all  --  0.0.0.0/0            0.0.0.0/0\n")
    rs = parse_text(text, "heading.nL")
    assert rs.tables_shown(4) == ("nat",)


def test_table_option_overrides_and_contradiction_is_an_input_error() -> None:
    text = "-N DOCKER\n-A DOCKER -i docker0 -j RETURN\n"
    assert parse_text(text, "d.S").tables_shown(4) == ("filter",)
    assert parse_text(text, "d.S", table="nat").tables_shown(4) == ("nat",)
    listing = "Chain FORWARD (policy DROP)\ntarget     prot opt source               destination\n"
    with pytest.raises(InputError, match="--table nat: table nat has no FORWARD chain"):
        parse_text(listing, "f.nL", table="nat")


def test_one_paste_of_several_S_commands_is_one_ruleset() -> None:
    f = (DOCKER / f"{MOBY}.filter.v4.S").read_text()
    n = (DOCKER / f"{MOBY}.nat.v4.S").read_text()
    text = f"root@host:~# iptables -S\n{f}root@host:~# iptables -t nat -S\n{n}"
    rs = parse_text(text, "session.txt")
    assert set(rs.tables_shown(4)) == {"filter", "nat"}
    save = load(str(FIX / "moby28.5-usernet-portmap.v4.save"))
    del save.tables[(4, "raw")]
    assert save.difference(rs, ignore={"counters"}) is None
    # every rule keeps its line in the one paste
    dnat = next(r for r in rs.rules() if r.target_name == "DNAT")
    assert text.splitlines()[dnat.line - 1].startswith("-A DOCKER") and "DNAT" in text.splitlines()[dnat.line - 1]


def test_S_paste_without_prompts_splits_at_the_next_policy_block() -> None:
    f = (DOCKER / f"{MOBY}.filter.v4.S").read_text()
    n = (DOCKER / f"{MOBY}.nat.v4.S").read_text()
    rs = parse_text(f + n, "two.S")
    assert set(rs.tables_shown(4)) == {"filter", "nat"}


# ---------------------------------------------------------------------------------------------
# Several inputs, one ruleset.


def test_pieces_in_any_format_make_the_ruleset_of_the_save_dump() -> None:
    save = load(str(FIX / "moby28.5-usernet-portmap.v4.save"))
    for kind in ("S", "vL"):
        files = tuple(str(DOCKER / f"{MOBY}.{t}.v4.{kind}") for t in ("filter", "nat", "raw"))
        rs = read_files(files)
        assert save.difference(rs, ignore={"counters"}) is None, kind
        assert rs.missing_tables(4) == ("mangle", "security")
        for r in rs.rules():
            assert r.source in files and r.line > 0


def test_mixed_formats_and_file_line_in_the_trace() -> None:
    files = [str(DOCKER / f"{MOBY}.filter.v4.S"), str(DOCKER / f"{MOBY}.nat.v4.vL")]
    out = subprocess.run([sys.executable, "-m", "iptexplain", "trace", *files, "--dport", "8080",
                          "--color", "never", "--width", "200"], capture_output=True, text=True)
    assert out.returncode in (0, 3), out.stderr
    assert f"{MOBY}.nat.v4.vL:" in out.stdout  # the DNAT rule is pointed at in its own file
    assert "ruleset " in out.stdout and " + " in out.stdout


def test_table_given_twice_is_one_table_seen_twice() -> None:
    a = parse_text("-P INPUT DROP\n-P FORWARD DROP\n-P OUTPUT ACCEPT\n-N ssh\n-A INPUT -j ssh\n", "a.S")
    b = parse_text("-N ssh\n-A ssh -p tcp --dport 22 -j ACCEPT\n", "b.S")
    rs = combine([a, b])
    f = rs.table("filter")
    assert f.chains["INPUT"].policy == "DROP" and f.chains["INPUT"].policy_known
    assert [r.source for r in f.chains["ssh"].rules] == ["b.S"]
    assert f.chains["ssh"].references[0].source == "a.S"
    assert all(c.complete for c in f.chains.values())
    c = parse_text("-N ssh\n-A ssh -p tcp --dport 2222 -j ACCEPT\n", "c.S")
    rs = combine([rs, c])
    assert rs.table("filter").chains["ssh"].rules[0].source == "c.S"
    assert any(n.kind == "duplicate" and "ssh differ" in n.message for n in rs.notes)


def test_several_inputs_on_the_command_line_errors() -> None:
    with pytest.raises(InputError, match="--table is for iptables -S and -L text"):
        read_files((str(FIX / "seed-docker.v4.save"),), table="nat")


# ---------------------------------------------------------------------------------------------
# Rough pastes, cut from real files the way people cut them (each test says how).  Read with
# notes, never refused, the gaps marked so that no verdict resting on them can be exact.

GEN = FIX / "listing" / "generated"
D20_S = (PARTIAL / "docker20_containers_nft.v4.S").read_text()
D20_NVL = (GEN / "docker20_containers_nft.v4.nvL").read_text()
D20_NAT = (GEN / "docker20_containers_nft.v4.nat.nvL").read_text()


def _block(listing: str, chain: str) -> str:
    """One `Chain NAME (...)` block of a listing, as a user selects it."""
    out, on = [], False
    for line in listing.splitlines():
        if line.startswith("Chain "):
            on = line.startswith(f"Chain {chain} ")
        if on:
            out.append(line)
    return "\n".join(out).rstrip() + "\n"


def test_one_user_chain_pasted_alone() -> None:
    rs = parse_text(_block(D20_NVL, "DOCKER-ISOLATION-STAGE-1"), "one-chain.nvL")
    f = rs.table("filter")
    assert [c.name for c in f.chains.values() if c.listed] == ["DOCKER-ISOLATION-STAGE-1"]
    assert not f.chains["INPUT"].listed and not f.chains["FORWARD"].listed
    assert not f.chains["DOCKER-ISOLATION-STAGE-2"].listed  # jumped to, never shown
    assert len(f.chains["DOCKER-ISOLATION-STAGE-1"].rules) == 7
    kinds = {n.kind for n in rs.notes}
    assert "partial" in kinds


def test_S_excerpt_of_one_chain_indented_with_elisions() -> None:
    # FORWARD's rules of the real -S, indented as in a mail, the middle elided with `// ......'.
    forward = [ln for ln in D20_S.splitlines() if ln.startswith("-A FORWARD")]
    text = "\n".join(["    " + ln for ln in forward[:3]] + ["    // ......"] + ["    " + ln for ln in forward[-2:]]) + "\n"
    rs = parse_text(text, "excerpt.S")
    f = rs.table("filter")
    fwd = f.chains["FORWARD"]
    assert [r.line for r in fwd.rules] == [1, 2, 3, 5, 6]
    assert fwd.gaps == (3,) and not fwd.policy_known
    for name in ("DOCKER-USER", "DOCKER-ISOLATION-STAGE-1"):
        assert not f.chains[name].listed  # jumped to: declared implicitly, unknown
    assert any(n.kind == "skipped" and "elision" in n.message and "line 4" in n.message for n in rs.notes)


def test_undeclared_chains_of_an_S_excerpt_are_declared_implicitly() -> None:
    text = "\n".join(ln for ln in D20_S.splitlines() if ln.startswith("-A DOCKER-USER")
                     or ln.startswith("-A FORWARD -j DOCKER-USER")) + "\n"
    rs = parse_text(text, "user.S")  # today: "chain `DOCKER-USER' does not exist"
    chain = rs.table("filter").chains["DOCKER-USER"]
    assert chain.listed and [r.target_name for r in chain.rules] == ["RETURN"]
    assert any(n.kind == "inference" and "declared implicitly" in n.message for n in rs.notes)


def test_stray_character_before_a_chain_header() -> None:
    text = "[" + _block(D20_NVL, "INPUT") + _block(D20_NVL, "FORWARD")
    rs = parse_text(text, "stray.nvL")  # today: "bad counters"
    assert rs.format == "listing"
    assert rs.table("filter").chains["INPUT"].listed
    assert len(rs.table("filter").chains["FORWARD"].rules) == 19
    assert any(n.kind == "repair" and "stray" in n.message for n in rs.notes)


def test_quoted_paste() -> None:
    quoted = "".join("> " + ln + "\n" for ln in D20_S.splitlines())
    rs = parse_text(quoted, "mail.txt")
    assert rs.difference(parse_text(D20_S, "plain.S"), ignore={"counters"}) is None
    assert any(n.kind == "repair" and "quoting" in n.message for n in rs.notes)


def test_listing_cut_mid_row_is_truncated_not_refused() -> None:
    full = _block(D20_NVL, "DOCKER")
    cut = full[: full.index("tcp dpt:22") + len("tcp dp")]  # the selection stopped mid-row
    rs = parse_text(_block(D20_NVL, "FORWARD") + cut, "cut.nvL")
    docker = rs.table("filter").chains["DOCKER"]
    assert len(docker.rules) == 3 and docker.gaps == (3,)
    assert any("cut off" in n.message for n in rs.notes if n.kind == "fidelity")


def test_listing_that_stops_before_the_chains_it_jumps_to_is_said_to_be_cut() -> None:
    rs = parse_text(_block(D20_NVL, "INPUT") + _block(D20_NVL, "FORWARD"), "stops.nvL")
    f = rs.table("filter")
    assert f.chains["FORWARD"].gaps == (19,)
    assert not f.chains["DOCKER"].listed
    assert any("looks cut off" in n.message and "DOCKER" in n.message for n in rs.notes)


def test_save_dump_cut_off_is_truncated_not_refused() -> None:
    text = (FIX / "docker20-containers.v4.save").read_text()
    cut = text[: text.index("-A DOCKER -d 172.17.0.2/32") + 20]
    rs = parse_text(cut, "cut.save")
    assert not rs.whole
    docker = rs.table("filter").chains["DOCKER"]
    assert docker.gaps == (len(docker.rules),)
    notes = [n.message for n in rs.notes if n.kind == "fidelity"]
    assert any("cut off mid-rule" in m for m in notes) and any("no COMMIT" in m for m in notes)


def test_bad_line_in_the_middle_is_still_an_error() -> None:
    with pytest.raises(InputError, match=r"cut\.S:1: invalid port"):
        parse_text("-A INPUT -p tcp --dport 70000 -j ACCEPT\n-A INPUT -j DROP\n", "cut.S")


def test_redacted_values_fork_instead_of_refusing() -> None:
    text = D20_S.replace("--dport 9000", "--dport {{ app_port }}").replace("-d 192.0.2.2/32", "-d 192.0.x.x/32", 1)
    rs = parse_text(text, "redacted.S")
    docker = rs.table("filter").chains["DOCKER"]
    red = [m for r in docker.rules for m in r.matches if isinstance(m, RedactedValue)]
    assert [m.raw for m in red] == [("-d", "192.0.x.x/32"), ("--dport", "{{app_port}}")]
    assert any(n.kind == "fidelity" and "hidden by hand" in n.message for n in rs.notes)
    nat = D20_NAT.replace("to:172.17.0.2:9000", "to:172.17.x.x:9000")
    assert nat != D20_NAT
    rs = parse_text(nat, "redacted.nat.nvL")
    assert any(n.kind == "fidelity" and "172.17.x.x" in n.message for n in rs.notes)


def test_redacted_value_decides_cannot_say() -> None:
    rs = parse_text("-P INPUT DROP\n-A INPUT -s 212.47.x -p tcp --dport 22 -j ACCEPT\n", "r.S")
    out = subprocess.run([sys.executable, "-m", "iptexplain", "trace", "-", "--dport", "22", "--local",
                          "198.51.100.1", "-d", "198.51.100.1", "--json"],
                         input="-P INPUT DROP\n-P FORWARD DROP\n-P OUTPUT ACCEPT\n"
                               "-A INPUT -s 212.47.x -p tcp --dport 22 -j ACCEPT\n",
                         capture_output=True, text=True)
    assert out.returncode in (0, 1, 3), out.stderr
    assert "redacted" in out.stdout and "DELIVERED" in out.stdout.upper() and "DROPPED" in out.stdout.upper()
    assert " -s 212.47.x " in rs.table("filter").chains["INPUT"].rules[0].spec()


def test_several_tables_in_one_paste_without_prompts() -> None:
    rs = parse_text(D20_NVL + "\n" + D20_NAT, "both.nvL")
    assert set(rs.tables_shown(4)) == {"filter", "nat"}
    save = load(str(GEN / "docker20_containers_nft.v4.save"))
    for t in list(save.tables):
        if t[1] not in ("filter", "nat"):
            del save.tables[t]
    assert save.difference(rs, ignore={"counters"}) is None


# ---------------------------------------------------------------------------------------------
# Where a trace of a fragment starts: a chain shown without its callers.


def test_chain_shown_without_callers_is_suggested_as_the_start() -> None:
    rs = parse_text(_block(D20_NVL, "DOCKER-ISOLATION-STAGE-1"), "one-chain.nvL")
    assert [c.name for c in entry_chains(rs)] == ["DOCKER-ISOLATION-STAGE-1"]
    assert rs.table("filter").chains["DOCKER-ISOLATION-STAGE-1"].kernel_references == 1
    assert any(n.kind == "partial" and "--chain DOCKER-ISOLATION-STAGE-1" in n.message for n in rs.notes)
    # With its caller shown (FORWARD jumps to it once, as the header counts), nothing to suggest.
    rs = parse_text(_block(D20_NVL, "FORWARD") + _block(D20_NVL, "DOCKER-ISOLATION-STAGE-1"), "two.nvL")
    assert "DOCKER-ISOLATION-STAGE-1" not in [c.name for c in entry_chains(rs)]
    # DOCKER (4 references) shown with none of its callers: suggested; a whole dump: never.
    rs = parse_text(_block(D20_NVL, "DOCKER"), "docker.nvL")
    assert [c.name for c in entry_chains(rs)] == ["DOCKER"]
    assert entry_chains(load(str(GEN / "docker20_containers_nft.v4.save"))) == []


def test_enter_chain_jumps_from_every_builtin_and_leaves_the_rest_unknown() -> None:
    rs = parse_text(_block(D20_NVL, "DOCKER-ISOLATION-STAGE-1"), "one-chain.nvL")
    enter_chain(rs, "DOCKER-ISOLATION-STAGE-1")
    f = rs.table("filter")
    for b in ("INPUT", "FORWARD", "OUTPUT"):
        chain = f.chains[b]
        assert [r.jump for r in chain.rules] == ["DOCKER-ISOLATION-STAGE-1"]
        assert chain.gaps == (1,) and not chain.policy_known  # after it returns: unknown
    assert len(f.chains["DOCKER-ISOLATION-STAGE-1"].references) == 3
    assert any("--chain" in n.message and "unknown" in n.message for n in rs.notes)


def test_enter_chain_errors_name_the_choice() -> None:
    rs = parse_text(D20_NVL + "\n" + D20_NAT, "both.nvL")
    with pytest.raises(InputError, match="tables nat and filter both have it.*--chain nat:DOCKER"):
        enter_chain(rs, "DOCKER")
    enter_chain(rs, "nat:DOCKER")
    assert rs.table("nat").chains["PREROUTING"].rules[0].jump == "DOCKER"
    with pytest.raises(InputError, match="no IPv4 table of the input has a chain `NOPE'"):
        enter_chain(parse_text(D20_NVL, "f.nvL"), "NOPE")


def test_trace_chain_on_the_command_line() -> None:
    out = subprocess.run([sys.executable, "-m", "iptexplain", "trace", "-", "--chain", "DOCKER-ISOLATION-STAGE-1",
                          "-i", "docker0", "-s", "172.17.0.2", "-d", "192.0.2.2", "--dport", "80",
                          "--color", "never", "--width", "200"],
                         input=_block(D20_NVL, "DOCKER-ISOLATION-STAGE-1"), capture_output=True, text=True)
    assert out.returncode in (0, 1, 3), out.stderr
    assert "DOCKER-ISOLATION-STAGE-1 #6" in out.stdout  # the trace walked the chain
    assert "the trace starts in chain DOCKER-ISOLATION-STAGE-1" in out.stdout


def test_show_names_what_the_input_does_not_show() -> None:
    text = "-A FORWARD -j DOCKER-USER\n-A DOCKER-USER -j RETURN\n"
    out = subprocess.run([sys.executable, "-m", "iptexplain", "show", "-"], input=text,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "filter FORWARD  policy not shown (unknown)" in out.stdout
    assert "filter INPUT  not in the input: rules and policy unknown" in out.stdout


def test_one_session_of_S_and_a_listing_is_one_ruleset() -> None:
    # A terminal session: `iptables -S' then `iptables -t nat -nvL', pasted as one text.
    text = "root@h:~# iptables -S\n" + D20_S + "root@h:~# iptables -t nat -nvL\n" + D20_NAT
    rs = parse_text(text, "session.txt")
    assert rs.format == "mixed" and set(rs.tables_shown(4)) == {"filter", "nat"}
    save = load(str(GEN / "docker20_containers_nft.v4.save"))
    for t in list(save.tables):
        if t[1] not in ("filter", "nat"):
            del save.tables[t]
    assert save.difference(rs, ignore={"counters"}) is None
    lines = text.splitlines()
    for r in rs.rules():
        assert r.source == "session.txt" and lines[r.line - 1].strip()
