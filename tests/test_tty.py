"""Terminal manners of the installed console script: colour on a real pseudo-terminal, none
with NO_COLOR, none when piped to a file, the width of the terminal respected.

These run ``iptexplain`` (the console script pip installed next to the interpreter) in a pty
through pexpect, as a user would, on the bundled examples -- the seed's Docker flows and the
kube-proxy fork.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest

SCRIPT = str(Path(sys.executable).with_name("iptexplain"))
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def colours(text: str) -> list[str]:
    """SGR sequences that set a colour (30-49, 90-107; 38/48 extended), not bold/dim/italic:
    NO_COLOR forbids colour, and rich keeps the other attributes."""
    found = []
    for m in re.finditer(r"\x1b\[([0-9;]*)m", text):
        params = [int(p) for p in m.group(1).split(";") if p]
        if any(30 <= p <= 49 or 90 <= p <= 107 for p in params):
            found.append(m.group(0))
    return found

FLOWS = {
    "published-port": (["--example", "docker", "-p", "tcp", "-s", "203.0.113.7", "-i", "eth0",
                        "--dport", "9525"], 0),
    "closed-port": (["--example", "docker", "-p", "tcp", "-s", "203.0.113.7", "-i", "eth0",
                     "-d", "198.51.100.1", "--dport", "9522"], 0),
    "direct-to-container": (["--example", "docker", "-p", "tcp", "-s", "203.0.113.7", "-i", "eth0",
                             "-d", "172.17.0.6", "--dport", "9522"], 1),
    "container-outbound": (["--example", "docker", "-p", "tcp", "-s", "172.17.0.6", "-i", "docker0",
                            "-d", "93.184.215.14", "--dport", "443"], 0),
    "host-local-published": (["--example", "docker", "--from-host", "-p", "tcp", "-d", "198.51.100.1",
                              "--dport", "9525"], 0),
    "kube-fork": (["--example", "kube", "-p", "udp", "-s", "10.244.0.5", "-i", "cni0",
                   "-d", "10.96.0.10", "--dport", "53"], 0),
}


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("NO_COLOR", "FORCE_COLOR", "COLUMNS", "LINES", "TERM", "CLICOLOR_FORCE",
                        "TTY_COMPATIBLE", "TTY_INTERACTIVE")}
    env.update(TERM="xterm-256color", LANG="C.UTF-8", LC_ALL="C.UTF-8")
    env.update(extra)
    return env


def in_pty(args: list[str], env: dict[str, str], cols: int = 120) -> tuple[str, int]:
    child = pexpect.spawn(SCRIPT, ["trace", *args], env=env, dimensions=(50, cols), encoding="utf-8",
                          timeout=60)
    out = child.read()
    child.close()
    return out, child.exitstatus


@pytest.fixture(scope="module", autouse=True)
def _script_installed() -> None:
    assert os.access(SCRIPT, os.X_OK), f"{SCRIPT} is not installed: pip install -e '.[test]'"


@pytest.mark.parametrize("name", list(FLOWS))
def test_colour_on_a_terminal(name: str) -> None:
    args, status = FLOWS[name]
    out, code = in_pty(args, clean_env())
    assert code == status, out
    assert colours(out), "no colour on a terminal"
    plain = ANSI.sub("", out)
    assert "Traceback" not in plain
    assert re.search(r"(FORWARDED|DELIVERED|DROPPED|SENT|FORKS)", plain)


@pytest.mark.parametrize("name", ["published-port", "kube-fork"])
def test_no_colour_with_NO_COLOR(name: str) -> None:
    args, status = FLOWS[name]
    out, code = in_pty(args, clean_env(NO_COLOR="1"))
    assert code == status
    assert colours(out) == []
    assert "FORWARDED" in ANSI.sub("", out)


def test_color_never_and_always() -> None:
    args, _ = FLOWS["direct-to-container"]
    out, code = in_pty(args + ["--color", "never"], clean_env())
    assert code == 1 and not ANSI.search(out)
    piped = subprocess.run([SCRIPT, "trace", *args, "--color", "always"], env=clean_env(),
                           capture_output=True, text=True)
    assert piped.returncode == 1 and colours(piped.stdout)


@pytest.mark.parametrize("name", list(FLOWS))
def test_no_colour_piped_to_a_file(name: str, tmp_path: Path) -> None:
    args, status = FLOWS[name]
    target = tmp_path / "out.txt"
    with open(target, "w") as f:
        code = subprocess.run([SCRIPT, "trace", *args], env=clean_env(), stdout=f,
                              stderr=subprocess.PIPE).returncode
    text = target.read_text()
    assert code == status
    assert "\x1b" not in text
    assert re.search(r"(FORWARDED|DELIVERED|DROPPED|SENT|FORKS)", text)


def test_width_follows_the_terminal() -> None:
    args, _ = FLOWS["kube-fork"]
    for cols in (60, 160):
        out, _ = in_pty(args, clean_env(NO_COLOR="1"), cols=cols)
        widths = [len(ANSI.sub("", line)) for line in out.replace("\r", "").splitlines()]
        assert max(widths) <= cols
        assert max(widths) > cols - 25  # long rules fill the line, then wrap


def test_usage_error_in_a_terminal_is_one_line_without_traceback() -> None:
    out, code = in_pty(["--dport", "nope"], clean_env())
    assert code == 2
    lines = [line for line in out.replace("\r", "").splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("iptexplain trace: ")


def test_show_without_file_on_a_terminal_says_so_instead_of_waiting() -> None:
    """`iptexplain show` with no FILE reads standard input; on a terminal that would hang."""
    child = pexpect.spawn(SCRIPT, ["show"], env=clean_env(), dimensions=(50, 120), encoding="utf-8", timeout=20)
    child.expect(pexpect.EOF)
    child.close()
    out = child.before.replace("\r", "")
    assert child.exitstatus == 2, out
    assert out.strip().count("\n") == 0 and "standard input is a terminal" in out, out


@pytest.mark.parametrize("command", [["trace", "-", "--dport", "22"], ["show", "-"]])
def test_dash_on_a_terminal_says_it_waits_for_a_dump(command: list[str]) -> None:
    """`trace -` / `show -` on a terminal: the user may paste a dump; say so, then read it."""
    child = pexpect.spawn(SCRIPT, command, env=clean_env(NO_COLOR="1"), dimensions=(50, 120),
                          encoding="utf-8", timeout=20)
    child.expect("reading a dump from standard input")
    child.expect("Ctrl-D")
    child.send("*filter\r:INPUT DROP [0:0]\r:FORWARD ACCEPT [0:0]\r:OUTPUT ACCEPT [0:0]\rCOMMIT\r")
    child.sendeof()  # one Ctrl-D ends the dump
    child.expect(pexpect.EOF)
    child.close()
    out = child.before.replace("\r", "")
    assert ("DROPPED" in out) if command[0] == "trace" else ("INPUT" in out and "DROP" in out), out
    assert child.exitstatus == (1 if command[0] == "trace" else 0), out
