"""Streamed reading of large dumps (iptexplain.inputs.stream) gives what reading them whole gives,
and the progress bar shows only on a terminal."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iptexplain.core.errors import InputError
from iptexplain.inputs.files import load
from iptexplain.inputs.stream import read_input
import iptexplain.inputs.stream as stream
from iptexplain.parse import parse_text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import gen_kube  # noqa: E402

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def _graph(rs) -> tuple:
    chains = tuple(
        (key, c.name, c.policy, c.counters, tuple((r.line, r.spec(), r.counters) for r in c.rules),
         tuple(r.line for r in c.references))
        for key, t in rs.tables.items() for c in t.chains.values()
    )
    return chains, tuple((n.kind, n.message, n.line) for n in rs.notes), rs.format


@given(st.lists(st.sampled_from(["a", "b", "\n", "\r\n", "\r", "\x0c", "é", " ", "-A X"]), max_size=30),
       st.lists(st.integers(min_value=0, max_value=200), max_size=5))
@settings(max_examples=300, deadline=None)
def test_split_stream_splits_as_splitlines_whatever_the_chunks(pieces: list[str], cuts: list[int]) -> None:
    data = "".join(pieces).encode()
    bounds = sorted({min(c, len(data)) for c in cuts})
    chunks = [data[i:j] for i, j in zip([0, *bounds], [*bounds, len(data)])]
    repaired: set[str] = set()
    got = list(stream.split_stream(iter(chunks), repaired))
    # The reader strips the CR a CR LF line keeps (and notes it); do the same here.
    got = [line[:-1] if line.endswith("\r") else line for line in got]
    assert got == data.decode().splitlines()
    if "\r" in data.decode() and not repaired:
        assert any(line.endswith("\r") for line in stream.split_stream(iter(chunks), set()))


@pytest.mark.parametrize("crlf", [False, True])
def test_streamed_load_equals_whole_text_parse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crlf: bool) -> None:
    text = gen_kube.render(gen_kube.make_services(300, seed=5))
    if crlf:
        text = text.replace("\n", "\r\n")
    path = tmp_path / "kube.save"
    path.write_bytes(text.encode())
    monkeypatch.setattr(stream, "STREAM_MIN", 0)
    monkeypatch.setattr(stream, "HEAD", 4096)
    monkeypatch.setattr(stream, "CHUNK", 777)  # many chunk boundaries, mid-line
    streamed, rest, _ = stream.read_ruleset_or_text(str(path), progress=False)
    assert streamed is not None and rest is None
    whole = parse_text(*read_input(str(path)))
    assert _graph(streamed) == _graph(whole)
    assert any("CRLF" in n.message for n in streamed.notes) == crlf


def test_small_or_other_inputs_are_handed_back_as_text(tmp_path: Path) -> None:
    seed = FIXTURES / "seed-docker.v4.save"
    rs, text, name = stream.read_ruleset_or_text(str(seed))
    assert rs is None and text == seed.read_text() and name == str(seed)
    listing = FIXTURES / "seed-blog-listing.txt"
    assert stream.read_ruleset_or_text(str(listing))[0] is None


def test_streamed_errors_point_at_the_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = gen_kube.render(gen_kube.make_services(200, seed=2))
    lines = text.splitlines()
    bad = next(i for i, l in enumerate(lines) if "--mode random" in l)
    lines[bad] = lines[bad].replace("--mode random", "--mode randomly")
    path = tmp_path / "bad.save"
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(stream, "STREAM_MIN", 0)
    with pytest.raises(InputError) as e:
        load(str(path), progress=False)
    assert e.value.line == bad + 1 and e.value.source == str(path)
    path.write_bytes(b"*filter\n\0\0\0")
    with pytest.raises(InputError, match="binary"):
        load(str(path))


class _Term(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize("tty", [True, False])
def test_progress_bar_only_on_a_terminal(tty: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IPTEXPLAIN_NO_PROGRESS", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    out = _Term(tty)
    lines = [f"line {i}" for i in range(50_000)]
    wrapped = stream.ProgressLines(iter(lines), total=50_000, position=lambda: 25_000, label="big.save",
                                   delay=0.0, stream=out)
    assert list(wrapped) == lines
    assert ("reading big.save" in out.getvalue()) == tty


def test_no_progress_bar_for_a_quick_read(monkeypatch: pytest.MonkeyPatch) -> None:
    out = _Term(True)
    lines = [f"line {i}" for i in range(50_000)]
    wrapped = stream.ProgressLines(iter(lines), total=1, position=lambda: 1, label="x", delay=3600, stream=out)
    assert list(wrapped) == lines and out.getvalue() == ""


@pytest.mark.parametrize("tty", [True, False])
def test_trace_read_of_a_large_dump_shows_progress_on_a_terminal(tty: bool, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The read trace makes of a large dump (iptexplain.parse.deferred, fed piece by piece)
    moves the bar too: the clock is looked at every piece, not every 4096."""
    monkeypatch.delenv("IPTEXPLAIN_NO_PROGRESS", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setattr(stream, "CHUNK", 1 << 14)
    monkeypatch.setattr(stream, "STREAM_MIN", 1)
    real = stream.ProgressLines
    monkeypatch.setattr(stream, "ProgressLines", lambda *a, **k: real(*a, **{**k, "delay": 0.0, "stream": out}))
    out = _Term(tty)
    path = tmp_path / "kube.save"
    path.write_text(gen_kube.render(gen_kube.make_services(300, seed=1)))
    rs, _, _ = stream.read_ruleset_or_text(str(path), lazy=True)
    assert rs is not None and rs.deferred is not None
    assert ("reading /tmp" in out.getvalue()) == tty
