"""The views of diff, reach, lint and trace --why do not pass terminal controls from the input
(chain names and comments with ESC sequences, BEL, C1 controls): each control is shown as its
picture, as the trace view and show do (iptexplain/terminal.py; tests/test_harden.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from iptexplain import cli

HOSTILE = "\x1b]0;pwned\x07 \x1b[31mred\x1b[0m \x9b2J \x7f"
CHAIN = "web\x1b]0;x"
RULES = f"""*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:{CHAIN} - [0:0]
-A INPUT -p tcp -m tcp --dport 22 -m comment --comment "{HOSTILE}" -j ACCEPT
-A INPUT -p tcp -m tcp --dport 80 -j {CHAIN}
-A {CHAIN} -m comment --comment "{HOSTILE}" -j ACCEPT
-A {CHAIN} -m comment --comment "{HOSTILE}" -j ACCEPT
COMMIT
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> tuple[str, str]:
    d = tmp_path_factory.mktemp("hostile")
    old, new = d / "old.save", d / "new.save"
    old.write_text(RULES)
    new.write_text(RULES.replace("--dport 22", "--dport 23"))
    return str(old), str(new)


def _clean(out: str, colours: bool = False) -> None:
    text = out.replace("\x1b[", "CSI") if colours else out  # rich's own colours aside
    assert "\x1b" not in text and "\x07" not in text and "\x9b" not in text and "\x7f" not in text, repr(out)


@pytest.mark.parametrize("command, shown", [
    (["diff", "{old}", "{new}", "-i", "eth0"], "␛]0;pwned␇"),
    (["lint", "{old}"], "␛]0;pwned␇"),
    (["trace", "{old}", "--dport", "80", "-s", "203.0.113.7", "--why", "8"], "␛]0;pwned␇"),
    (["reach", "{old}", "-p", "tcp"], "web␛]0;x"),
    (["reach", "{old}", "-p", "tcp", "--color", "always"], "web␛]0;x"),
    (["reach", "{old}", "-p", "tcp", "--format", "dot"], "web␛]0;x"),
])
def test_views_show_controls_as_pictures(files, command: list[str], shown: str) -> None:
    old, new = files
    args = [a.format(old=old, new=new) for a in command]
    r = CliRunner().invoke(cli.main, args, catch_exceptions=False)
    assert r.exit_code in (0, 1), r.output
    _clean(r.stdout, colours="always" in args)
    assert shown in r.stdout, r.stdout


def test_json_keeps_the_text_escaped(files) -> None:
    old, _ = files
    r = CliRunner().invoke(cli.main, ["lint", old, "--json"], catch_exceptions=False)
    assert r.exit_code == 1
    assert "\\u001b]0;pwned\\u0007" in r.stdout and "\x1b" not in r.stdout
