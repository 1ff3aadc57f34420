"""``iptexplain show``: the rendered view at a fixed width, as a user reads it."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from click.testing import CliRunner
from rich.console import Console

from iptexplain.cli import main
from iptexplain.inputs.files import load
from iptexplain.parse.save import parse_save
from iptexplain.render.show import _wrap, _wrap_plain, fold, human, iter_view, plain_output, render_ruleset

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

SMALL = """\
*filter
:INPUT DROP [5:300]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:SSH - [0:0]
:ORPHAN - [0:0]
[3:180] -A INPUT -p tcp -m tcp --dport 22 -g SSH
[2:120] -A INPUT -m condition --condition web0 -j DROP
[1:60] -A INPUT -j LOG --log-prefix "in: "
[0:0] -A SSH -s 10.0.0.0/8 -j ACCEPT
[0:0] -A FORWARD -j SSH
COMMIT
"""


def render(rs, width: int = 100, **kw) -> str:
    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    render_ruleset(rs, console=console, **kw)
    return console.export_text()


def test_small_ruleset_view() -> None:
    out = render(parse_save(SMALL, "small.save"))
    assert out.splitlines() == [
        "Ruleset small.save  (save)",
        "",
        "filter INPUT  policy DROP  [5 pkts 300 bytes]",
        "#   pkts   bytes   rule                                             target",
        "─" * 91,
        "1      3     180   -p tcp -m tcp --dport 22                         ↪ SSH",
        "2      2     120   -m condition --condition web0 (not understood)   DROP",
        "3      1      60   (every packet)                                   LOG --log-prefix \"in: \"",
        "",
        "filter FORWARD  policy ACCEPT  [0 pkts 0 bytes]",
        "#   pkts   bytes   rule             target",
        "─" * 42,
        "1      0       0   (every packet)   → SSH",
        "",
        "filter OUTPUT  policy ACCEPT  [0 pkts 0 bytes]  (no rules)",
        "",
        "filter SSH  2 references  ← ↪ INPUT#1, FORWARD#1",
        "#   pkts   bytes   rule            target",
        "─" * 41,
        "1      0       0   -s 10.0.0.0/8   ACCEPT",
        "",
        "filter ORPHAN  0 references  (unreferenced: no packet reaches it)  (no rules)",
        "",
        "1 table, 5 chains (3 built-in, 2 user-defined), 5 rules; modules not understood: condition (1 rule)",
    ]


def test_narrow_width_wraps_rule_text_not_target_names() -> None:
    rs = load(str(FIXTURES / "k3s-node.v4.save-c"))
    out = render(rs, width=80, table="nat", chain="KUBE-SERVICES")
    lines = out.splitlines()
    assert lines[5].endswith("→ KUBE-SVC-NPX46M4PTMTKRN6Y")
    assert all(len(line) <= 80 for line in lines)
    assert "\"kubernetes service nodeports;" in out  # the comment wraps at its blanks
    assert " ".join(" ".join(lines[-2:]).split()) == "1 table, 1 chain (0 built-in, 1 user-defined), 2 rules; modules not understood: none"


def test_notes_and_both_families() -> None:
    v4 = (FIXTURES / "docker20-containers.v4.save").read_text()
    v6 = (FIXTURES / "docker20-containers.v6.save").read_text()
    rs = parse_save("Pasted from my host:\n" + v4 + v6, "both.txt")
    out = render(rs, width=120, table="nat")
    assert "• skipped: line 1: 1 line(s) that are not part of a ruleset were skipped" in out
    assert "nat IPv4 PREROUTING" in out and "nat IPv6 PREROUTING" in out
    assert out.index("nat IPv4 POSTROUTING") < out.index("nat IPv6 PREROUTING")


def test_anonymized_mac_note_in_view() -> None:
    rs = load(str(FIXTURES / "tum-chair-2016-06-27.v4.save"))
    out = render(rs, width=200, table="raw")
    assert "• anonymized: line 1826: MAC addresses anonymized as XX:XX:XX:XX:XX:XX" in out
    assert "(1931 rule(s), first at line 1826)" in " ".join(out.split())


def test_tum_whole_view_renders_every_rule() -> None:
    rs = load(str(FIXTURES / "tum-chair-2016-06-27.v4.save"))
    out = render(rs, width=160)
    assert out.rstrip().splitlines()[-1] == (
        "3 tables, 100 chains (9 built-in, 91 user-defined), 5556 rules; modules not understood: none")
    assert out.count("\n1   ") + out.count("\n 1   ") + out.count("\n  1   ") >= 80


def test_human_counters() -> None:
    assert [human(n) for n in (0, 99_999, 100_000, 27_204_000_000_000)] == ["0", "99999", "100K", "27204G"]


def test_cli_show_options() -> None:
    runner = CliRunner()
    res = runner.invoke(main, ["show", str(FIXTURES / "docker20-containers.v6.save"), "-6", "-t", "filter",
                               "--chain", "DOCKER"])
    assert res.exit_code == 0, res.output
    assert "filter DOCKER  2 references  ← FORWARD#3, FORWARD#" in res.output
    assert "nat" not in res.output.split("\n", 2)[2]


def test_cli_show_reads_stdin() -> None:
    res = CliRunner().invoke(main, ["show", "-"], input=SMALL)
    assert res.exit_code == 0
    assert "Ruleset <stdin>  (save)" in res.output


@pytest.mark.parametrize("args,message", [
    (["-t", "nat"], "no table nat in this ruleset (it has: filter (IPv4))"),
    (["--chain", "NOPE"], "no chain `NOPE' in the tables shown"),
    (["-6"], "no IPv6 in this ruleset (it has: filter (IPv4))"),
])
def test_cli_show_selection_errors(args: list[str], message: str, tmp_path) -> None:
    f = tmp_path / "small.save"
    f.write_text(SMALL)
    res = CliRunner().invoke(main, ["show", str(f), *args])
    assert res.exit_code == 2
    assert res.output.strip() == f"iptexplain: {f}: {message}"


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def first_difference(a: str, b: str) -> tuple[int, str, str] | None:
    """(line number, line of a, line of b) where two outputs first differ; None when equal.
    (pytest's own diff of two 500 kB strings would take minutes.)"""
    la, lb = a.split("\n"), b.split("\n")
    for i, (x, y) in enumerate(zip(la, lb)):
        if x != y:
            return i + 1, x, y
    return None if len(la) == len(lb) else (min(len(la), len(lb)) + 1, "(end)" if len(la) < len(lb) else la[len(lb)],
                                            "(end)" if len(lb) < len(la) else lb[len(la)])


def render_plain(rs, width: int, **kw) -> str:
    """The fast path: no styles, written straight to the console's file."""
    console = Console(width=width, color_system=None, file=io.StringIO())
    assert plain_output(console) is console.file
    render_ruleset(rs, console=console, **kw)
    return console.file.getvalue()


def render_colour(rs, width: int, **kw) -> str:
    console = Console(width=width, force_terminal=True, color_system="truecolor", file=io.StringIO())
    assert plain_output(console) is None
    render_ruleset(rs, console=console, **kw)
    return console.file.getvalue()


@pytest.mark.parametrize("name,width,kw", [
    ("tum-chair-2016-06-27.v4.save", 160, {}),  # 100 chains: several print batches through rich
    ("tum-chair-2016-06-27.v4.save", 80, {"table": "raw"}),  # the anonymized-MAC note, folded
    ("k3s-node.v4.save-c", 80, {}),  # counters, long comments wrapped, long titles folded
    ("kube-proxy-unit-test-TestOverallIPTablesRules.v4.restore", 100, {}),
    ("shorewall-universal.v4.save", 72, {}),
    ("seed-blog-listing.txt", 90, {}),  # a listing: notes on what it hides
])
def test_plain_fast_path_gives_the_same_text_as_rich(name: str, width: int, kw: dict) -> None:
    rs = load(str(FIXTURES / name))
    plain = render_plain(rs, width, **kw)
    assert "\x1b" not in plain
    assert first_difference(plain, render(rs, width=width, **kw)) is None  # rich, recorded, exported
    coloured = render_colour(rs, width, **kw)
    assert "\x1b[" in coloured
    assert first_difference(plain, ANSI.sub("", coloured)) is None
    assert max(len(line) for line in plain.splitlines()) <= width


def test_narrow_console_crops_both_paths_alike() -> None:
    rs = parse_save(SMALL, "a-rather-long-file-name-for-a-narrow-console.save")
    plain = render_plain(rs, 24)
    assert plain == render(rs, width=24) == ANSI.sub("", render_colour(rs, 24))
    lines = plain.splitlines()
    assert max(len(line) for line in lines) <= 24
    assert lines[:2] == ["Ruleset", "a-rather-long-file-name-"]  # a word wider than the console is cut


def test_colour_highlights_modules_not_understood_and_verdicts() -> None:
    out = render_colour(parse_save(SMALL, "small.save"), 100)
    # bold magenta on the module iptexplain keeps verbatim, red on DROP, bold blue on a goto
    assert re.search(r"\x1b\[1;35m-m\x1b\[0m \x1b\[1;35mcondition", out)
    assert "\x1b[31mDROP\x1b[0m" in out
    assert "\x1b[1;34m↪ SSH\x1b[0m" in out


def test_fold_breaks_at_blanks_and_keeps_styles() -> None:
    line = [("filter", "bold"), (" ", ""), ("SSH", "bold underline"), ("  2 references  ← INPUT#1, FORWARD#1", "")]
    assert fold(line, 100) == [line]
    assert fold(line, 26) == [
        [("filter", "bold"), (" ", ""), ("SSH", "bold underline"), ("  2 references", "")],
        [("← INPUT#1, FORWARD#1", "")],
    ]
    assert fold([("abcdefgh", "x")], 3) == [[("abc", "x")], [("def", "x")], [("gh", "x")]]


@given(st.lists(st.text(alphabet="ab:/-", min_size=1, max_size=25), max_size=12), st.integers(1, 30))
def test_plain_wrap_is_the_word_wrap(words: list[str], width: int) -> None:
    """Unstyled cells are wrapped from their text with str.rfind; it must break exactly where
    the word-by-word wrap does (long words cut, a blank dropped at each break)."""
    assert _wrap_plain(" ".join(words), width) == _wrap([(w, "") for w in words], width)


SHOWN = sorted(p for p in FIXTURES.rglob("*") if p.is_file() and p.suffix not in (".md", ".json")
               and "host" not in p.parts and "src" not in p.parts)


@pytest.mark.parametrize("path", SHOWN, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_plain_lines_are_the_pieces_characters_on_every_fixture(path: Path) -> None:
    """The plain writer lays a chain out as strings (ChainRows.text_lines), the styled one as
    (text, style) pieces (ChainRows.lines): the same characters, on every fixture, at a width
    where rules wrap and targets fold and at one where most rows fit."""
    rs = load(str(path))
    for width in (44, 120):
        for part in iter_view(rs):
            assert part.text_lines(width) == ["".join(t for t, _ in line) for line in part.lines(width)]
