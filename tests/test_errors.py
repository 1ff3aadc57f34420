"""Bad input: exactly one line ``FILE:LINE: what is wrong`` on stderr and exit status 2.

The first half runs the installed ``iptexplain show`` on one broken ruleset per kind of error
iptables-restore itself refuses.  The second half is hypothesis: random text and mutated lines
of real rulesets (tokens deleted, duplicated, swapped, truncated, garbage inserted) may only give
a Ruleset or an InputError that names a line -- never any other exception.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iptexplain.errors import InputError
from iptexplain.graph import Ruleset
from iptexplain.parse import parse_text

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

HEAD = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"

# (name, text, line, message) -- the message iptexplain gives, at the line iptables would blame.
CASES = [
    ("undeclared-chain", HEAD + "-A NOPE -j ACCEPT\nCOMMIT\n", 5,
     "chain `NOPE' does not exist in table `filter' (declare it with `:NOPE - [0:0]' or `-N NOPE' first)"),
    ("jump-to-missing-chain", HEAD + "-A INPUT -j MISSING\nCOMMIT\n", 5,
     "jump to chain `MISSING' which does not exist in table `filter'"),
    ("goto-to-missing-chain", HEAD + "-A INPUT -g MISSING\nCOMMIT\n", 5,
     "jump to chain `MISSING' which does not exist in table `filter'"),
    ("missing-commit", HEAD + "-A INPUT -j ACCEPT\n", 5,
     "COMMIT expected: table `filter' opened at line 1 is never committed"),
    ("no-commit-before-next-table", HEAD + "*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n", 5,
     "table `filter' opened at line 1 has no COMMIT before the next table"),
    ("malformed-address", HEAD + "-A INPUT -s 10.0.0.300 -j ACCEPT\nCOMMIT\n", 5,
     "host/network `10.0.0.300' not found"),
    ("dns-name", HEAD + "-A INPUT -s ntp.example.net -j ACCEPT\nCOMMIT\n", 5,
     "host/network `ntp.example.net' not found"),
    ("bad-port", HEAD + "-A INPUT -p tcp -m tcp --dport 70000 -j ACCEPT\nCOMMIT\n", 5,
     "invalid port/service `70000' specified"),
    ("unknown-option", HEAD + "-A INPUT -p tcp -m tcp --frobnicate 3 -j ACCEPT\nCOMMIT\n", 5,
     "unknown option \"--frobnicate\""),
    ("unknown-match", HEAD + "-A INPUT -m nosuchmatch -j ACCEPT\nCOMMIT\n", 5,
     "Couldn't load match `nosuchmatch':No such file or directory"),
    ("bad-mac", HEAD + "-A INPUT -m mac --mac-source 00:11:22:33:44 -j DROP\nCOMMIT\n", 5,
     "Invalid MAC address specified."),
    ("old-negation", HEAD + "-A INPUT -d ! 10.0.0.0/8 -j DROP\nCOMMIT\n", 5,
     "Using intrapositioned negation (`-d ! this`) is no longer supported"),
    ("removed-option", HEAD + "-A INPUT -m time --days Mon -j DROP\nCOMMIT\n", 5,
     "unknown option \"--days\""),
    ("unterminated-quote", HEAD + "-A INPUT -m comment --comment \"oops -j ACCEPT\nCOMMIT\n", 5,
     "unterminated quoted string"),
    ("policy-on-user-chain", HEAD + ":MINE DROP [0:0]\nCOMMIT\n", 5,
     "can't set policy `DROP' on `MINE': not a built-in chain of table filter"),
    ("no-such-table", "*nonsense\nCOMMIT\n", 1,
     "table `nonsense' does not exist (expected one of raw, mangle, nat, filter, security)"),
    ("jump-to-builtin", HEAD + "-A INPUT -j FORWARD\nCOMMIT\n", 5, "cannot jump to built-in chain `FORWARD'"),
    ("target-in-wrong-table", HEAD + "-A INPUT -j DNAT --to-destination 10.0.0.1\nCOMMIT\n", 5,
     "target DNAT is only valid in the nat table"),
    ("truncated-line", HEAD + "-A INPUT -s 192.16\nCOMMIT\n", 5, "host/network `192.16' not found"),
    ("bad-counters", HEAD + "[1:x] -A INPUT -j ACCEPT\nCOMMIT\n", 5,
     "bad counters at the start of the line: `[1:x] -A INPUT -j ACCEPT'"),
    ("option-needs-argument", HEAD + "-A INPUT -p tcp -m tcp --dport\nCOMMIT\n", 5,
     "option \"--dport\" requires an argument"),
]


def _cli() -> list[str]:
    exe = shutil.which("iptexplain")
    return [exe] if exe else [sys.executable, "-m", "iptexplain"]


@pytest.mark.parametrize("name,text,line,message", CASES, ids=[c[0] for c in CASES])
def test_cli_error_is_one_line_and_status_2(name: str, text: str, line: int, message: str, tmp_path) -> None:
    f = tmp_path / f"{name}.save"
    f.write_text(text)
    proc = subprocess.run([*_cli(), "show", str(f)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "NO_COLOR": "1"})
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == f"iptexplain: {f}:{line}: {message}\n"


def test_stdin_errors_name_stdin() -> None:
    proc = subprocess.run([*_cli(), "show", "-"], input=HEAD + "-A NOPE -j ACCEPT\nCOMMIT\n",
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith("iptexplain: <stdin>:5: chain `NOPE' does not exist")
    assert proc.stderr.count("\n") == 1


def test_binary_and_missing_files(tmp_path) -> None:
    b = tmp_path / "rules.bin"
    b.write_bytes(b"\x00\x01\x02garbage")
    for path, expected in ((b, f"iptexplain: {b}: binary data, not iptables text\n"),
                           (tmp_path / "absent.save", f"iptexplain: {tmp_path / 'absent.save'}: No such file or directory\n")):
        proc = subprocess.run([*_cli(), "show", str(path)], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2
        assert proc.stderr == expected


def test_anonymized_mac_is_not_an_error() -> None:
    rs = parse_text(HEAD + "-A INPUT -m mac --mac-source XX:XX:XX:XX:XX:XX -j DROP\nCOMMIT\n", "anon")
    assert rs.rule_count() == 1 and rs.notes[0].kind == "anonymized"


# -- fuzzing ------------------------------------------------------------------------------------

# Errors about the input as a whole, which no single line is to blame for.
WHOLE_INPUT = ("no iptables rules found",)
LINE_RE = re.compile(r"^(?P<src>[^:]+):(?P<line>\d+): \S")


def _check(text: str) -> None:
    n_lines = max(len(text.splitlines()), 1)
    try:
        rs = parse_text(text, "fuzz.save")
    except InputError as e:
        if e.line is None:
            assert e.message.startswith(WHOLE_INPUT), str(e)
        else:
            assert 1 <= e.line <= n_lines + 1, (e.line, n_lines, str(e))
            assert LINE_RE.match(str(e)), str(e)
            assert "\n" not in str(e)
        return
    assert isinstance(rs, Ruleset)
    # A ruleset read is a ruleset that prints back and reads again.
    from iptexplain.render.save import save_ruleset

    for fam in rs.families():
        parse_text(save_ruleset(rs, fam) or "*filter\nCOMMIT\n", "again", family=fam)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_random_text(text: str) -> None:
    _check(text)


TOKENS = ["-A", "-N", "-P", "-j", "-g", "-m", "-p", "-s", "-d", "-i", "-o", "!", "--dport", "--sport",
          "tcp", "udp", "icmp", "ACCEPT", "DROP", "DOCKER", "COMMIT", "*nat", "*filter", ":X - [0:0]",
          '"', "'", "\\", "999999", "0x", "1.2.3.4/33", "::1", "fe80::/10", "--to-destination", "[1:2]",
          "-m comment --comment", "--mark", "0xffffffff/0x1", "-m recent", "--set", "--ctstate", "NEW",
          "-m set", "--match-set", "src,dst", "--probability", "1.5", "XX:XX:XX:XX:XX:XX", "\t", "\r", ""]

SOURCES = [FIXTURES / n for n in ("seed-docker.v4.save", "k3s-node.v4.save-c", "docker20-containers.v6.save",
                                   "kube-proxy-unit-test-TestOverallIPTablesRules.v4.restore",
                                   "home-user-net-network.v4.save", "firewalld-iptables-backend.v4.save")]
LINES = {p: p.read_text().splitlines() for p in SOURCES}


def _mutate(words: list[str], op: str, rnd: random.Random, garbage: str) -> list[str]:
    if not words:
        return [garbage]
    i = rnd.randrange(len(words))
    j = rnd.randrange(len(words))
    if op == "delete":
        return words[:i] + words[i + 1 :]
    if op == "duplicate":
        return words[: i + 1] + [words[i]] + words[i + 1 :]
    if op == "swap":
        w = list(words)
        w[i], w[j] = w[j], w[i]
        return w
    if op == "truncate":
        text = " ".join(words)
        return [text[: rnd.randrange(len(text) + 1)]]
    return words[:i] + [garbage] + words[i:]


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    source=st.sampled_from(SOURCES),
    picks=st.lists(st.tuples(st.integers(min_value=0, max_value=10_000),
                             st.sampled_from(["delete", "duplicate", "swap", "truncate", "insert"]),
                             st.one_of(st.sampled_from(TOKENS), st.text(max_size=12))),
                   min_size=1, max_size=4),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_mutated_real_rulesets(source: Path, picks: list, seed: int) -> None:
    rnd = random.Random(seed)
    lines = list(LINES[source])
    for idx, op, garbage in picks:
        k = idx % len(lines)
        lines[k] = " ".join(_mutate(lines[k].split(" "), op, rnd, garbage))
    _check("\n".join(lines) + "\n")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=14))
def test_random_rule_words(words: list[str]) -> None:
    _check(HEAD + ":X - [0:0]\n-A INPUT " + " ".join(words) + "\nCOMMIT\n")
