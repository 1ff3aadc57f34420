"""Partial input: what -S / -L text and pastes of it leave out is named on the rule graph and in
the notes, and never taken for an empty table or an empty chain with policy ACCEPT.

Real files: fixtures/listing (iptables 1.8.9 output of real tools' rulesets) and pastes copied
from the corpus (fixtures/partial, see its README).
"""

from __future__ import annotations

from pathlib import Path

from iptexplain.parse import parse_text

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
    assert note.kind == "fidelity"
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
    assert any("FORWARD, OUTPUT not listed: their rules and policy are unknown" in n.message
               for n in rs.notes)


def test_listing_jump_to_a_chain_not_shown_marks_it_unknown() -> None:
    text = ("Chain INPUT (policy ACCEPT)\ntarget     prot opt source               destination\n"
            "ts-input   all  --  0.0.0.0/0            0.0.0.0/0\n")
    rs = parse_text(text, "cut.nL")
    chain = rs.table("filter").chains["ts-input"]
    assert not chain.listed and not chain.builtin and chain.rules == []
