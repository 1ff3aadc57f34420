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
from iptexplain.core.errors import InputError, OptionError
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
    "-p " + "6" * 5000, "-m u32 --u32 " + "1" * 5000 + "=0x1", "-j LOG --log-level ²",
    "-m tcp -p tcp --tcp-flags 0x²/0x2", "-m mac --mac-source ²²:00:00:00:00:00",
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


LISTING = ("Chain INPUT (policy ACCEPT 0 packets, 0 bytes)\n"
           " pkts bytes target     prot opt in     out     source               destination\n")


def test_odd_digits_in_listings(tmp_path: Path) -> None:
    row = "    1     0 DROP       tcp  --  *      *       10.0.0.0/²           0.0.0.0/0"
    path = rules(tmp_path, LISTING + row + "\n" + row.replace("DROP", "ACCEPT") + "\n", "r.nvL")
    for args in (["show", path], ["trace", path, "--dport", "80"]):
        r = invoke(args)
        assert r.exit_code == 2
        assert error_line(r) == f"iptexplain: {path}:3: invalid mask `²' specified"
    # a match the listing reader cannot read back is kept, not understood (no int() of 5,000 digits)
    row = "    1     0 DROP       tcp  --  *      *       0.0.0.0/0            0.0.0.0/0   tcp dpt:" + "9" * 5000
    path = rules(tmp_path, LISTING + row + "\n", "huge.nvL")
    r = invoke(["show", path])
    assert r.exit_code == 0 and "could not read back" in r.stdout
    assert invoke(["trace", path, "--dport", "80"]).exit_code in (0, 1, 3)


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
    """`-A ' alone was an IndexError (exit 4, a traceback in show).  Followed by more rules it is
    the line's error; as the last line it is a paste cut off there, read with a note."""
    path = rules(tmp_path, "-P INPUT ACCEPT\n-A \n-A INPUT -j DROP\n", "r.S")
    for command in (["show", path], ["trace", path, "--dport", "80"]):
        r = invoke(command)
        assert r.exit_code == 2
        assert error_line(r) == f"iptexplain: {path}:2: option \"-A\" requires an argument"
    path = rules(tmp_path, "-P INPUT ACCEPT\n-A \n", "cut.S")
    r = invoke(["show", path])
    assert r.exit_code == 0 and "cut off mid-rule" in " ".join(r.stdout.split())
    r = invoke(["trace", path, "--dport", "80"])
    assert r.exit_code in (0, 3) and not r.stderr  # 3: what follows the cut is unknown


@pytest.mark.parametrize("text, line", [
    ("-A INPUT -j DROP\n" + HEAD + "COMMIT\n", 1),
    (HEAD + "COMMIT\n-A INPUT -j DROP\n-A INPUT -j ACCEPT\n", 6),  # not last: a last line may be cut off
])
def test_a_rule_outside_a_table_of_a_restore_file_is_refused(tmp_path: Path, text: str, line: int) -> None:
    """iptables-restore (legacy and nft) answers `line 1 failed' to the first file."""
    path = rules(tmp_path, text)
    r = invoke(["show", path])
    assert r.exit_code == 2
    assert error_line(r).startswith(f"iptexplain: {path}:{line}: rule outside a table")


def test_s_text_alone_still_reads(tmp_path: Path) -> None:
    path = rules(tmp_path, "-P INPUT ACCEPT\n-A INPUT -p tcp --dport 22 -j DROP\n", "r.S")
    r = invoke(["trace", path, "--dport", "22"])
    assert r.exit_code in (1, 3) and "DROPPED by filter INPUT #1" in r.stdout  # 3: other tables unknown


def test_format_detection_over_a_run_of_blank_lines_is_linear() -> None:
    from iptexplain.parse import detect_format

    with deadline(20):  # quadratic: 30 KB took 18 s; this is 2 MB
        assert detect_format("\n" * 1_000_000 + " \n" * 500_000 + "x") == "save"


def test_one_line_ip_addr_reader_on_a_long_line_is_linear() -> None:
    from iptexplain.host import readers as hostio

    with deadline(20):  # quadratic: 40 KB took 30 s; this is 4 MB
        line = "1: " + "x@" * 2_000_000 + " inet 10.0.0.1/24 \n"
        long = hostio._ONELINE_RE.match(line)  # `x@…': interface x, its link name after the @
        assert long is not None and long.group(2, 4, 5) == ("x", "10.0.0.1", "24")
        assert hostio._ADDR_RE.match("    inet " + "a/" * 2_000_000) is None
    m = hostio._ONELINE_RE.match("2: eth0    inet 10.0.0.1/24 brd 10.0.0.255 scope global eth0\n")
    assert m is not None and m.group(2, 4, 5) == ("eth0", "10.0.0.1", "24")


# -- size bounds, the guard, memory --------------------------------------------------------------

def test_dev_zero_is_binary_data() -> None:
    r = invoke(["show", "/dev/zero"])
    assert r.exit_code == 2
    assert error_line(r) == "iptexplain: /dev/zero: binary data, not iptables text"


def test_endless_text_is_refused_past_the_bound(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import iptexplain.inputs.stream as parse

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


def test_unicode_line_breaks_do_not_split_the_one_line_error(tmp_path: Path) -> None:
    r = invoke(["trace", rules(tmp_path, HEAD + "COMMIT\n"), "--sport", "\u2028"])
    assert r.exit_code == 2
    assert "\\u2028" in error_line(r)


# -- the chain graph: goto loops, long goto paths, forks -----------------------------------------

GOTO_LOOP = ("*mangle\n:PREROUTING ACCEPT [0:0]\n:A - [0:0]\n:B - [0:0]\n"
             "-A PREROUTING -j A\n-A A -g B\n-A B -g A\nCOMMIT\n")


def test_a_goto_loop_is_a_loop_of_the_chain_graph(tmp_path: Path) -> None:
    """The frame stack never holds A and B at once (each -g replaces the frame): before the fix
    the walk went round for ever, memory growing to gigabytes."""
    from iptexplain.netfilter.trace import UNDECIDED, Flow
    from iptexplain.netfilter.tracer import trace_flow
    from iptexplain.parse import parse_text
    from iptexplain.inputs.sources import resolve

    rs = parse_text(GOTO_LOOP, "loop.save")
    given = resolve(None, "docker", 4, "auto")
    with deadline(60):
        result = trace_flow(rs, Flow(family=4, proto="tcp", dport=80), given.host)
    leaves = list(result.leaves())
    assert len(leaves) == 1 and leaves[0].outcome.kind == UNDECIDED
    assert "chain loop through A" in leaves[0].outcome.summary
    assert any("PREROUTING → A → B → A" in (s.reason or "") for s in leaves[0].steps)
    with deadline(60):
        r = invoke(["trace", rules(tmp_path, GOTO_LOOP), "--dport", "80"])
    assert r.exit_code == 3 and "chain loop through A" in r.stdout


def goto_path(n: int, jump: str = "-g") -> str:
    decl = "".join(f":C{i} - [0:0]\n" for i in range(n))
    body = "-A INPUT -j C0\n" + "".join(f"-A C{i} -p tcp {jump} C{i + 1}\n" for i in range(n - 1))
    return f"*filter\n:INPUT ACCEPT [0:0]\n{decl}{body}-A C{n - 1} -j DROP\nCOMMIT\n"


def test_a_path_of_a_thousand_gotos_is_followed_and_drawn(tmp_path: Path) -> None:
    """The kernel has no depth limit for -g (it does not nest); the view nested one tree level
    per goto and overflowed Python's recursion (exit 4): now it shows the deep part flat."""
    path = rules(tmp_path, goto_path(1000))
    r = invoke(["trace", path, "--dport", "80", "--width", "200"])
    assert r.exit_code == 1, r.stderr
    assert "nested deeper than 14 levels: the rest is shown flat" in r.stdout
    assert "C998 #1" in r.stdout and "DROPPED by filter C999" in r.stdout
    assert max(len(line) for line in r.stdout.splitlines()) <= 200
    for fmt in ("--json", "--format=dot"):
        assert invoke(["trace", path, "--dport", "80", fmt]).exit_code == 1


def test_a_path_longer_than_the_walk_follows_ends_undecided(tmp_path: Path) -> None:
    from iptexplain.netfilter.chainwalk import MAX_PATH

    r = invoke(["trace", rules(tmp_path, goto_path(MAX_PATH + 10)), "--dport", "80"])
    assert r.exit_code == 3
    assert f"a path of more than {MAX_PATH} chains" in r.stdout


def test_nine_statistic_forks_in_json(tmp_path: Path) -> None:
    body = "".join(f"-A INPUT -m statistic --mode random --probability 0.5 -j MARK --set-xmark {i}/{i}\n"
                   for i in range(1, 10))
    path = rules(tmp_path, f"*mangle\n:INPUT ACCEPT [0:0]\n{body}COMMIT\n")
    for fmt in ("--json", "--format=dot", "-v"):
        r = invoke(["trace", path, "--dport", "80", fmt])
        assert r.exit_code == 0, r.stderr
    data = __import__("json").loads(invoke(["trace", path, "--dport", "80", "--json"]).stdout)
    assert data["outcome"] if "outcome" in data else data


# -- --reply through lo --------------------------------------------------------------------------

def test_reply_to_a_flow_arriving_on_lo() -> None:
    """A packet arriving on lo was sent by the host: its sources are the host's addresses (the
    reverse-path set through lo is empty, and the reply had no destination: IndexError)."""
    r = invoke(["trace", "--example", "docker", "--dport", "80", "-i", "lo"])
    assert r.exit_code == 0 and "source: an address of this host" in r.stdout
    r = invoke(["trace", "--example", "docker", "--dport", "80", "-i", "lo", "--reply"])
    assert r.exit_code == 0, r.stderr
    assert "DELIVERED to a local socket on 127." in r.stdout


# -- snapshots and --host files against their schema ---------------------------------------------

def snapshot_text(mutate) -> str:  # type: ignore[no-untyped-def]
    import json

    from iptexplain.inputs.examples import load_example
    from iptexplain.host.readers import host_to_dict

    _, host = load_example("docker")
    doc = {"schema": "iptexplain-snapshot", "version": 1, "created": "2026-01-01T00:00:00Z",
           "hostname": "h", "tool": "t", "backend": {"4": "nft"},
           "rulesets": {"4": {"source": "iptables-nft-save", "how": "x", "text": HEAD + "COMMIT\n"}},
           "notes": [], "host": host_to_dict(host)}
    mutate(doc)
    return json.dumps(doc)


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(notes=1.5), "notes: expected a list, got 1.5"),
    (lambda d: d.update(notes=[{"kind": "x"}]), "notes[0].message: expected a string, got null"),
    (lambda d: d["host"]["routes"][0].update(via={}), "host.routes[0].via: expected a string, got {}"),
    (lambda d: d["host"]["routes"][0].update(dst="10.0.0.0/²"), "host.routes[0].dst: bad prefix length"),
    (lambda d: d["host"]["interfaces"][1]["addrs"][0].update(prefixlen="x"),
     "host.interfaces[1].addrs[0].prefixlen: expected an integer 0-32, got \"x\""),
    (lambda d: d["host"]["interfaces"][1]["addrs"][0].update(address="300.1.1.1"),
     "host.interfaces[1].addrs[0].address: expected an IPv4 address, got \"300.1.1.1\""),
    (lambda d: d["host"].update(containers={"x": {}}), "host.containers.x: expected an IP address"),
    (lambda d: d["host"].update(sysctls={"a": []}), "host.sysctls.a: expected a string, got []"),
    (lambda d: d.update(ipsets={"text": 3}), "ipsets.text: expected a string, got 3"),
    (lambda d: d.update(hostname=["h"]), "hostname: expected a string"),
])
@pytest.mark.parametrize("command", ["show", "trace"])
def test_snapshot_values_are_checked(tmp_path: Path, mutate, message: str, command: str) -> None:  # type: ignore[no-untyped-def]
    path = rules(tmp_path, snapshot_text(mutate), "h.snap")
    r = invoke([command, path] + (["--dport", "80"] if command == "trace" else []))
    assert r.exit_code == 2, r.stdout
    assert error_line(r).startswith(f"iptexplain: {path}: {message}")


@pytest.mark.parametrize("addr_info, message", [
    (["x"], "[0].addr_info[0]: expected an object, got \"x\""),
    ([{"family": "inet", "local": "10.0.0.1", "prefixlen": "x"}], "[0].addr_info[0].prefixlen: expected an integer 0-32"),
    ([{"family": "inet", "local": "10.0.0.1", "prefixlen": 33}], "[0].addr_info[0].prefixlen: expected an integer 0-32"),
    ([{"family": "inet", "local": "fe80::1", "prefixlen": 8}], "[0].addr_info[0].local: expected an IPv4 address"),
    ([{"family": {}, "local": "10.0.0.1"}], None),  # not an address family ip prints: skipped
])
def test_host_json_values_are_checked(tmp_path: Path, addr_info, message: str | None) -> None:  # type: ignore[no-untyped-def]
    import json

    host = rules(tmp_path, json.dumps([{"ifname": "eth0", "flags": ["UP"], "addr_info": addr_info}]), "addr.json")
    r = invoke(["trace", rules(tmp_path, HEAD + "COMMIT\n"), "--host", host, "--dport", "80", "-d", "192.0.2.1"])
    if message is None:
        assert r.exit_code in (0, 1, 3) and not r.stderr, r.stderr
    else:
        assert r.exit_code == 2
        assert error_line(r).startswith(f"iptexplain: {host}: {message}")


@pytest.mark.parametrize("route, message", [
    ({"dst": 1.5, "dev": "eth0"}, "[0].dst: expected a string, got 1.5"),
    ({"dst": "300.1.1.1", "dev": "eth0"}, "[0].dst: expected `default' or a prefix"),
    ({"dst": "default", "gateway": "x", "dev": "eth0"}, "[0].gateway: expected an IP address"),
    ({"dst": "default", "via": [], "dev": "eth0"}, "[0].via: expected an object"),
    ({"dst": "default", "dev": {"a": 1}}, "[0].dev: expected a string"),
])
def test_route_json_values_are_checked(tmp_path: Path, route: dict, message: str) -> None:
    import json

    host = rules(tmp_path, json.dumps([route]), "route.json")
    r = invoke(["trace", rules(tmp_path, HEAD + "COMMIT\n"), "--host", host, "--dport", "80"])
    assert r.exit_code == 2
    assert error_line(r).startswith(f"iptexplain: {host}: {message}")


@pytest.mark.parametrize("text, message", [
    ("1: lo: <UP> mtu 1\n    inet 127.0.0.x/8 scope host lo\n", ":2: bad inet address `127.0.0.x/8'"),
    ("1: lo: <UP> mtu 1\n    inet 127.0.0.1/99 scope host lo\n", ":2: bad inet address `127.0.0.1/99'"),
    ("default via 10.0.0.x dev eth0\n", ":1: bad `via' address `10.0.0.x'"),
])
def test_host_text_values_are_checked(tmp_path: Path, text: str, message: str) -> None:
    host = rules(tmp_path, text, "ip.txt")
    r = invoke(["trace", rules(tmp_path, HEAD + "COMMIT\n"), "--host", host, "--dport", "80"])
    assert r.exit_code == 2
    assert error_line(r).startswith(f"iptexplain: {host}{message}")


# -- snapshot -o ---------------------------------------------------------------------------------

def test_snapshot_file_is_written_atomically_0600_and_never_through_a_link(tmp_path: Path) -> None:
    from iptexplain.core.errors import InputError
    from iptexplain.inputs.snapshot import write_file

    out = tmp_path / "host.snap"
    write_file(str(out), "one")
    assert out.read_text() == "one" and out.stat().st_mode & 0o777 == 0o600
    out.chmod(0o644)  # an existing file is replaced by a new one: 0600 again
    write_file(str(out), "two")
    assert out.read_text() == "two" and out.stat().st_mode & 0o777 == 0o600
    target = tmp_path / "elsewhere"
    target.write_text("keep")
    target.chmod(0o644)
    link = tmp_path / "link.snap"
    link.symlink_to(target)
    with pytest.raises(InputError, match="is a symbolic link: not written"):
        write_file(str(link), "secret")
    assert target.read_text() == "keep" and link.is_symlink()
    with pytest.raises(InputError, match="not a regular file"):
        write_file(str(tmp_path), "x")
    with pytest.raises(InputError):
        write_file(str(tmp_path / "no" / "dir.snap"), "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "host.snap", "link.snap"]
    r, w = os.pipe()  # -o /dev/stdout, /proc/self/fd/N: a pipe is written to, through its link
    write_file(f"/proc/self/fd/{w}", "through a pipe")
    os.close(w)
    assert os.read(r, 100) == b"through a pipe"
    os.close(r)


def test_the_s_command_heading_detector_is_linear(tmp_path: Path) -> None:
    """`iptables … -S` headings were found by a regex that rescanned the rest of the line from
    every `iptables` in it: a 90 KB line of them took 26 s."""
    from iptexplain.parse.s_tables import _s_command

    with deadline(20):
        assert not _s_command("iptables " * 200_000)
        assert _s_command("iptables x " * 100_000 + "iptables -t nat -S")
    assert _s_command("# iptables -t nat -S")
    assert _s_command("$ sudo ip6tables-legacy --list-rules INPUT")
    assert not _s_command("iptables -L | grep -S")
    assert not _s_command("iptables -nvL; echo -S")
    r = invoke(["trace", rules(tmp_path, "iptables " * 10_000 + "\n"), "--dport", "80"])
    assert r.exit_code == 2
    error_line(r)


def test_many_commands_of_s_output_read_in_linear_time_with_their_line_numbers() -> None:
    """Each command's ``-S`` output was read from a copy of the text padded to its start, and the
    joined table re-sorted after each: 5,000 two-line commands took 30 s.  Now each section is
    read from its own lines, numbered where it starts."""
    from iptexplain.parse import parse_text

    n = 20_000
    text = "".join(f"# iptables -t nat -S\n-N C{i}\n" for i in range(n))
    with deadline(20):
        rs = parse_text(text, "many.txt")
    nat = rs.tables[(4, "nat")]
    assert len([c for c in nat.chains.values() if not c.builtin]) == n
    assert nat.chains["C7"].line == 16  # the 8th command's `-N C7' is line 16
    assert list(nat.chains)[:4] == ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"]
    bad = ("# iptables -t nat -S\n-N A\n# iptables -t filter -S\n-P INPUT ACCEPT\n"
           "-A INPUT -p tcp --dport x -j ACCEPT\n-A INPUT -j DROP\n")
    with pytest.raises(InputError, match=r"many.txt:5: "):
        parse_text(bad, "many.txt")
