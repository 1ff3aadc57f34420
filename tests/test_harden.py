"""Regression tests of issue 14: each input a fuzzing campaign found escaping the promise of one
line ``FILE:LINE: what is wrong`` and exit 2 (a traceback, exit 4, a hang, raw terminal
controls).  Each test feeds the input that failed and asserts the answer now given."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from iptexplain import cli
from iptexplain.errors import OptionError
from iptexplain.numbers import decimal, hexadecimal, is_decimal, strtoul
from iptexplain.terminal import one_line, printable

HEAD = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"


def invoke(args: list[str], stdin: str | bytes | None = None):
    return CliRunner().invoke(cli.main, args, input=stdin, catch_exceptions=False)


def error_line(r) -> str:  # type: ignore[no-untyped-def]
    lines = r.stderr.strip("\n").splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    return lines[0]


def rules(tmp_path: Path, text: str, name: str = "r.save") -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


@contextmanager
def deadline(seconds: int):
    """Fail instead of hanging: the inputs here took minutes or never ended before the fix."""
    def expired(signum, frame):  # type: ignore[no-untyped-def]
        raise AssertionError(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# -- one strict number helper --------------------------------------------------------------------

@pytest.mark.parametrize("text", ["²", "٣", "1_000", " 7", "+7", "-1", "", "0x", "1e3", "７"])
def test_decimal_takes_ascii_digits_only(text: str) -> None:
    assert not is_decimal(text)
    with pytest.raises(OptionError):
        decimal(text)


def test_numbers_past_pythons_digit_limit_are_out_of_range_not_a_valueerror() -> None:
    huge = "9" * 5000
    for fn in (decimal, hexadecimal, strtoul):
        with pytest.raises(OptionError, match="out of range"):
            fn(huge)
    assert decimal("0" * 5000 + "7") == 7  # leading zeros are not digits of the value
    assert strtoul("0x1F") == 31 and strtoul("010") == 8 and strtoul("10") == 10
    with pytest.raises(OptionError):
        strtoul("09")


@pytest.mark.parametrize("rule", [
    "-p ²", "-p tcp --dport ²", "-s 10.0.0.0/²", "-m limit --limit ²/sec",
    "-m owner --uid-owner ²", "-m time --timestart ²:00", "-m time --monthdays ²",
    "-m hashlimit --hashlimit-upto ²/sec --hashlimit-name x", "-p tcp --dport " + "9" * 5000,
    "-p " + "6" * 5000, "-m u32 --u32 " + "1" * 5000 + "=0x1",
])
@pytest.mark.parametrize("command", ["show", "trace"])
def test_odd_digits_in_rules_are_input_errors(tmp_path: Path, rule: str, command: str) -> None:
    path = rules(tmp_path, HEAD + f"-A INPUT {rule} -j DROP\nCOMMIT\n")
    extra = ["--dport", "80"] if command == "trace" else []
    r = invoke([command, path, *extra])
    assert r.exit_code == 2, r.stderr
    assert error_line(r).startswith(f"iptexplain: {path}:5: ")


@pytest.mark.parametrize("args", [["-p", "²"], ["--dport", "²"], ["--sport", "1" * 5000],
                                  ["--mark", "²"], ["-s", "10.0.0.0/²"]])
def test_odd_digits_in_flow_options(tmp_path: Path, args: list[str]) -> None:
    r = invoke(["trace", rules(tmp_path, HEAD + "COMMIT\n"), *args])
    assert r.exit_code == 2
    assert "Invalid value" in error_line(r)


# -- --icmp-type, conflicting flow options -------------------------------------------------------

@pytest.mark.parametrize("value", ["packet-too-big", "256", "3/256", "²"])
def test_icmp_type_is_checked_against_the_family(tmp_path: Path, value: str) -> None:
    r = invoke(["trace", rules(tmp_path, HEAD + "COMMIT\n"), "-p", "icmp", "--icmp-type", value])
    assert r.exit_code == 2
    assert error_line(r).startswith(f"iptexplain: <options>: --icmp-type `{value}': not an ICMP type")


def test_icmp_type_without_a_protocol_means_icmp(tmp_path: Path) -> None:
    path = rules(tmp_path, HEAD + "-A INPUT -p icmp --icmp-type echo-request -j DROP\nCOMMIT\n")
    assert invoke(["trace", path, "--icmp-type", "echo-request"]).exit_code == 1
    assert invoke(["trace", path, "--icmp-type", "echo-reply"]).exit_code == 0


@pytest.mark.parametrize("args, words", [
    (["--from-host", "-i", "eth0"], "--from-host and -i contradict"),
    (["-p", "tcp", "--icmp-type", "8"], "--icmp-type needs -p icmp"),
    (["-p", "udp", "--icmp-type", "8"], "--icmp-type needs -p icmp"),
    (["--json", "--format", "dot"], "--json and --format dot contradict"),
    (["--json", "--format", "rich"], "--json and --format rich contradict"),
    (["--from-container", "web", "-i", "eth0"], "--from-container and -i contradict"),
])
def test_conflicting_flow_options_are_refused(tmp_path: Path, args: list[str], words: str) -> None:
    r = invoke(["trace", rules(tmp_path, HEAD + "COMMIT\n"), *args])
    assert r.exit_code == 2
    assert words in error_line(r)


def test_json_with_format_json_agrees(tmp_path: Path) -> None:
    r = invoke(["trace", rules(tmp_path, HEAD + "COMMIT\n"), "--json", "--format", "json", "--dport", "1"])
    assert r.exit_code == 0 and r.stdout.startswith("{")


# -- the text readers ----------------------------------------------------------------------------

def test_s_text_with_an_empty_append(tmp_path: Path) -> None:
    path = rules(tmp_path, "-P INPUT ACCEPT\n-A \n", "r.S")
    for command in (["show", path], ["trace", path, "--dport", "80"]):
        r = invoke(command)
        assert r.exit_code == 2
        assert error_line(r) == f"iptexplain: {path}:2: option \"-A\" requires an argument"


@pytest.mark.parametrize("text, line", [
    ("-A INPUT -j DROP\n" + HEAD + "COMMIT\n", 1),
    (HEAD + "COMMIT\n-A INPUT -j DROP\n", 6),
])
def test_a_rule_outside_a_table_of_a_restore_file_is_refused(tmp_path: Path, text: str, line: int) -> None:
    """iptables-restore (legacy and nft) answers `line 1 failed' to the first file."""
    path = rules(tmp_path, text)
    r = invoke(["show", path])
    assert r.exit_code == 2
    assert error_line(r).startswith(f"iptexplain: {path}:{line}: rule outside a table")


def test_s_text_alone_still_reads(tmp_path: Path) -> None:
    path = rules(tmp_path, "-P INPUT ACCEPT\n-A INPUT -p tcp --dport 22 -j DROP\n", "r.S")
    assert invoke(["trace", path, "--dport", "22"]).exit_code == 1


def test_format_detection_over_a_run_of_blank_lines_is_linear() -> None:
    from iptexplain.parse import detect_format

    with deadline(20):  # quadratic: 30 KB took 18 s; this is 2 MB
        assert detect_format("\n" * 1_000_000 + " \n" * 500_000 + "x") == "save"


def test_one_line_ip_addr_reader_on_a_long_line_is_linear() -> None:
    from iptexplain import hostio

    with deadline(20):  # quadratic: 40 KB took 30 s; this is 4 MB
        line = "1: " + "x@" * 2_000_000 + " inet 10.0.0.1/24 \n"
        assert hostio._ONELINE_RE.match(line) is None or True
        assert hostio._ADDR_RE.match("    inet " + "a/" * 2_000_000) is None
    m = hostio._ONELINE_RE.match("2: eth0    inet 10.0.0.1/24 brd 10.0.0.255 scope global eth0\n")
    assert m is not None and m.group(2, 4, 5) == ("eth0", "10.0.0.1", "24")


# -- size bounds, the guard, memory --------------------------------------------------------------

def test_dev_zero_is_binary_data() -> None:
    r = invoke(["show", "/dev/zero"])
    assert r.exit_code == 2
    assert error_line(r) == "iptexplain: /dev/zero: binary data, not iptables text"


def test_endless_text_is_refused_past_the_bound(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import iptexplain.parse as parse

    monkeypatch.setattr(parse, "MAX_INPUT", 1 << 20)
    path = rules(tmp_path, "y\n" * (1 << 20))
    with open(path, "rb") as f, pytest.raises(parse.InputError, match="input larger than 1 MiB"):
        parse.read_bounded(f, path, limit=parse.MAX_INPUT)
    with open(path, "rb") as f:
        assert len(parse.read_bounded(f, path, limit=2 << 20)) == 2 << 20


def test_endless_stdin_is_refused(tmp_path: Path) -> None:
    """The real bound on a real endless pipe: `yes | iptexplain show -`."""
    script = Path(sys.executable).with_name("iptexplain")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    yes = subprocess.Popen(["yes"], stdout=subprocess.PIPE)
    try:
        r = subprocess.run([str(script) if script.exists() else "iptexplain", "show", "-"], stdin=yes.stdout,
                           capture_output=True, text=True, env=env, timeout=300)
    finally:
        yes.kill()
        yes.wait()
    assert r.returncode == 2
    assert r.stderr.strip() == "iptexplain: <stdin>: input larger than 256 MiB: not an iptables ruleset iptexplain can read"


def test_out_of_memory_is_its_own_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import iptexplain.parse as parse

    def exhausted(*a, **k):  # type: ignore[no-untyped-def]
        raise MemoryError

    monkeypatch.setattr(parse, "parse_text", exhausted)
    r = invoke(["show", rules(tmp_path, "-A INPUT -j DROP\n", "r.S"), "--format", "S"])
    assert r.exit_code == cli.EXIT_MEMORY == 5
    assert error_line(r).startswith("iptexplain: out of memory")


def test_show_has_the_internal_error_guard(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import iptexplain.parse as parse

    def bug(*a, **k):  # type: ignore[no-untyped-def]
        raise KeyError("boom")

    monkeypatch.setattr(parse, "parse_text", bug)
    monkeypatch.delenv("IPTEXPLAIN_DEBUG", raising=False)
    r = invoke(["show", rules(tmp_path, "-A INPUT -j DROP\n", "r.S"), "--format", "S"])
    assert r.exit_code == 4
    assert error_line(r).startswith("iptexplain: internal error: KeyError: 'boom'")


# -- terminal controls ---------------------------------------------------------------------------

HOSTILE = "\x1b]0;pwned\x07 \x1b[31mred\x1b[0m \x9b2J \x7f"


def test_printable_and_one_line() -> None:
    assert printable("plain ünïcode") == "plain ünïcode"
    shown = printable(HOSTILE)
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in shown)
    assert len(shown) == len(HOSTILE)  # one picture per control: columns stay put
    assert one_line("a\nb\x1b[0m") == "a\\nb\\x1b[0m"


def test_show_and_trace_view_do_not_pass_controls(tmp_path: Path) -> None:
    path = rules(tmp_path, HEAD + f'-A INPUT -p tcp -m comment --comment "{HOSTILE}" -j DROP\nCOMMIT\n')
    for args in (["show", path], ["trace", path, "--dport", "80", "-v"],
                 ["trace", path, "--dport", "80", "-v", "--color", "always"]):
        r = invoke(args)
        assert r.exit_code in (0, 1), r.stderr
        out = r.stdout.replace("\x1b[", "CSI")  # rich's own colours (--color always) aside
        assert "pwned" in r.stdout and "\x1b]" not in out and "\x07" not in out and "\x9b" not in out
        if "--color" not in args:
            assert "\x1b" not in r.stdout
    r = invoke(["trace", path, "--dport", "80", "--json"])
    assert "\\u001b]0;pwned\\u0007" in r.stdout  # JSON escapes it itself


def test_the_one_line_error_does_not_pass_controls(tmp_path: Path) -> None:
    path = rules(tmp_path, HEAD + f"-A INPUT -m nosuch{HOSTILE} -j DROP\nCOMMIT\n")
    r = invoke(["show", path])
    assert r.exit_code == 2
    line = error_line(r)
    assert "\x1b" not in line and "\x07" not in line and "\x9b" not in line and "\\x1b]0;pwned" in line
