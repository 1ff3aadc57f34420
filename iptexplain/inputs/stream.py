"""Large inputs are parsed while they are read, with a progress bar on a terminal.

A kube-proxy node's ``iptables-save`` is 20 MB for 10,000 services and 60 MB for 30,000.  Reading
it whole, then splitting it into a list of lines, then parsing, holds the text, the lines and the
graph at once; streaming holds only the graph.  Streaming is used where it cannot change the
result: the input is iptables-save/restore text (a ``*table`` line in its first 64 KiB), so no
``-S`` table inference that needs every line first, and no snapshot.  Anything else is handed
back as text for the usual path (:func:`iptexplain.parse.parse_text`).

The line split is the one ``str.splitlines()`` makes on the whole text: a piece that holds any
other line boundary than ``\\n`` (``\\r``, form feed…) is split by ``splitlines`` itself, and a
CR before LF is reported as the same "CRLF line endings" repair.

For ``trace`` (``lazy``), the pieces of text go first to :mod:`iptexplain.parse.deferred`, which
keeps each chain's lines as text until the trace reaches the chain; when the text is not in
iptables-save's own layout, the chunks read so far and the rest go to the line reader instead.

The progress bar is not the parser's business: :class:`ProgressLines` wraps the line iterator
and draws a transient rich bar on standard error only when standard error is a terminal and the
reading has already taken more than half a second.
"""

from __future__ import annotations

import os
import stat
import sys
import time
from itertools import chain
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

from iptexplain.core.errors import InputError
from iptexplain.graph import Ruleset
from iptexplain.parse.deferred import GiveUp, read_deferred
from iptexplain.parse.detect import SAVE_RE
from iptexplain.parse.save import parse_save_lines

HEAD = 1 << 16
CHUNK = 1 << 20
STREAM_MIN = 1 << 20  # smaller inputs are read whole: nothing to gain
_OTHER_BREAKS = ("\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")


def _chunks(f: BinaryIO, first: bytes) -> Iterator[bytes]:
    yield first
    while True:
        data = f.read(CHUNK)
        if not data:
            return
        yield data


def split_stream(chunks: Iterable[bytes], repaired: set[str]) -> Iterator[str]:
    """Lines of the concatenated chunks, exactly as ``text.splitlines()`` would give them.

    CR LF endings are passed on with their CR, which the reader strips and reports; any other
    line boundary (a lone CR, a form feed…) is split by ``splitlines`` itself, and a CR among
    them is put in ``repaired`` as the reader would have."""
    carry = b""
    for chunk in chunks:
        data = carry + chunk if carry else chunk
        end = data.rfind(b"\n")
        if end < 0:
            carry = data
            continue
        carry = data[end + 1:]
        yield from _lines(data[: end + 1].decode("utf-8", errors="replace"), repaired)
    if carry:
        yield from _lines(carry.decode("utf-8", errors="replace"), repaired)


def _lines(text: str, repaired: set[str]) -> Iterable[str]:
    if not any(b in text for b in _OTHER_BREAKS):
        return text[:-1].split("\n") if text.endswith("\n") else text.split("\n")
    if "\r" in text:
        if text.count("\r") == text.count("\r\n") and not any(b in text for b in _OTHER_BREAKS[1:]):
            body = text[:-1] if text.endswith("\n") else text
            return body.split("\n")  # each line keeps its CR: the reader strips and notes it
        repaired.add("CRLF line endings")
    return text.splitlines()


class ProgressLines:
    """Iterate ``lines``; after ``delay`` seconds on a terminal, show how far the reading got.

    ``position()`` gives the bytes read so far (of ``total``), so the bar moves with the input,
    not with a line count nobody knows in advance.
    """

    def __init__(self, lines: Iterable[str], total: int | None, position, label: str,
                 delay: float = 0.5, stream=None, mask: int = 4095) -> None:
        self.lines = lines
        self.mask = mask  # look at the clock every mask+1 items (lines; 0: every piece of text)
        self.total = total
        self.position = position
        self.label = label
        self.delay = delay
        self.stream = stream if stream is not None else sys.stderr
        self.progress = None
        self.task = None

    def _wanted(self) -> bool:
        if os.environ.get("IPTEXPLAIN_NO_PROGRESS") or os.environ.get("TERM") == "dumb":
            return False
        try:
            return self.stream.isatty()
        except (AttributeError, ValueError):
            return False

    def __iter__(self) -> Iterator[str]:
        start = time.monotonic()
        wanted: bool | None = None
        try:
            mask = self.mask
            for n, line in enumerate(self.lines):
                if n & mask == 0 and n:
                    if self.progress is not None:
                        self.progress.update(self.task, completed=self.position())
                    elif wanted is not False and time.monotonic() - start > self.delay:
                        wanted = self._wanted()
                        if wanted:
                            self._start()
                yield line
        finally:
            self.close()

    def _start(self) -> None:
        # rich only once a bar is drawn: a piped or quick read never pays for it.
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

        console = Console(file=self.stream)
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                 TimeRemainingColumn(), console=console, transient=True)
        self.progress.start()
        self.task = self.progress.add_task(f"reading {self.label}", total=self.total,
                                           completed=self.position())

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


# The most text any input may hold: ~4x the iptables-save dump of a 30,000-service kube-proxy
# node (60 MB).  `trace /dev/zero`, `yes | iptexplain show -` or a wrong file are refused with one
# line instead of filling memory.
MAX_INPUT = 256 << 20
READ_CHUNK = 1 << 20


def too_large(name: str, limit: int = MAX_INPUT) -> InputError:
    return InputError(f"input larger than {limit >> 20} MiB: not an iptables ruleset iptexplain can read",
                      name, None)


def read_bounded(f: BinaryIO, name: str, head: bytes = b"", limit: int = MAX_INPUT) -> bytes:
    """The rest of ``f`` after ``head`` (bytes already read from it), refused past ``limit``
    bytes, and refused at once when the first 4 KiB hold a NUL byte (binary data)."""
    parts = [head]
    n = len(head)
    checked = False
    while True:
        if not checked and n >= 4096:
            checked = True
            if b"\0" in b"".join(parts)[:4096]:
                raise InputError("binary data, not iptables text", name, None)
        chunk = f.read(READ_CHUNK if n >= 4096 else 4096 - n)
        if not chunk:
            break
        n += len(chunk)
        if n > limit:
            raise too_large(name, limit)
        parts.append(chunk)
    data = b"".join(parts)
    if b"\0" in data[:4096]:
        raise InputError("binary data, not iptables text", name, None)
    return data


def read_input(path: str) -> tuple[str, str]:
    """(text, display name) of a file, or of standard input for ``-``; at most MAX_INPUT bytes."""
    if path == "-":
        data = read_bounded(sys.stdin.buffer, "<stdin>")
        name = "<stdin>"
    else:
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                if stat.S_ISREG(st.st_mode) and st.st_size <= MAX_INPUT:
                    # A regular file in one read: no list of 1 MiB pieces joined (20 MB of an
                    # -nvL listing at 10,000 services: one copy less, and its time).
                    data = f.read(MAX_INPUT + 1)
                    if len(data) > MAX_INPUT:
                        raise too_large(path)
                    if b"\0" in data[:4096]:
                        raise InputError("binary data, not iptables text", path, None)
                else:
                    data = read_bounded(f, path)
        except OSError as e:
            raise InputError(e.strerror or str(e), path) from None
        name = path
    return data.decode("utf-8", errors="replace"), name


def read_ruleset_or_text(path: str, fmt: str = "auto", family: int | None = None,
                         table: str | None = None, progress: bool = True,
                         lazy: bool = False) -> tuple[Ruleset | None, str | None, str]:
    """``(ruleset, None, name)`` when the input was large iptables-save text, parsed as it was
    read; else ``(None, text, name)`` for the caller to parse as usual.  ``path`` ``-`` is
    standard input.  Raises InputError (unreadable file, binary data, bad rules).  ``lazy``: a
    streamed ruleset's rules are read on first access (:mod:`iptexplain.parse.lazy`), and the
    ruleset says so in a note."""
    if fmt not in ("auto", "save"):
        text, name = read_input(path)
        return None, text, name
    if path == "-":
        f: BinaryIO = sys.stdin.buffer
        name = "<stdin>"
        total = None
        close = False
    else:
        name = path
        try:
            st = os.stat(path)
        except OSError as e:
            raise InputError(e.strerror or str(e), path) from None
        if st.st_size > MAX_INPUT:
            raise too_large(path)
        if not os.path.isfile(path) or st.st_size < STREAM_MIN:
            text, name = read_input(path)
            return None, text, name
        total = st.st_size
        try:
            f = open(path, "rb")
        except OSError as e:
            raise InputError(e.strerror or str(e), path) from None
        close = True
    try:
        head = f.read(HEAD)
        if b"\0" in head[:4096]:
            raise InputError("binary data, not iptables text", name, None)
        head_text = head.decode("utf-8", errors="replace")
        streamable = SAVE_RE.search(head_text) is not None and not head_text.lstrip().startswith("{")
        if not streamable or (total is None and len(head) < HEAD):
            # a short head is the end of the input: asking again would wait for a second
            # Ctrl-D on a terminal
            data = read_bounded(f, name, head) if len(head) == HEAD else head
            return None, data.decode("utf-8", errors="replace"), name

        done = [len(head)]

        def counted() -> Iterator[bytes]:
            for chunk in _chunks(f, head):
                if chunk is not head:
                    done[0] += len(chunk)
                    if done[0] > MAX_INPUT:
                        raise too_large(name)
                yield chunk

        chunks: Iterable[bytes] = counted()
        if lazy:
            rs, chunks = _read_deferred(chunks, name, family, total, lambda: done[0], progress)
            if rs is not None:
                _note_lazy(rs, path)
                return rs, None, name
        repaired: set[str] = set()
        lines: Iterable[str] = split_stream(chunks, repaired)
        if progress:
            lines = ProgressLines(lines, total, lambda: done[0], name)
        rs = parse_save_lines(lines, name, family=family, table=table, repaired=repaired, lazy=lazy)
        if lazy:
            _note_lazy(rs, path)
        return rs, None, name
    finally:
        if close:
            f.close()


def _note_lazy(rs: Ruleset, path: str) -> None:
    show = f"`iptexplain show {path}'" if path != "-" else "`iptexplain show -' on the same input"
    rs.note("lazy", f"large input: rules were checked only in the chains this run looked at; {show} "
                    f"checks every line, as iptables-restore would")


def _read_deferred(chunks: Iterable[bytes], name: str, family: int | None, total: int | None,
                   position, progress: bool) -> tuple[Ruleset | None, Iterable[bytes]]:  # noqa: ANN001
    """Read with :mod:`iptexplain.parse.deferred` (chains kept as text until looked at).  When
    the text is not in iptables-save's own layout: ``(None, all the chunks)``, for the general
    reader to start again from the first byte."""
    seen: list[bytes] = []
    it = iter(chunks)

    def pieces() -> Iterator[str]:
        carry = b""
        for data in it:
            seen.append(data)
            if carry:
                data = carry + data
            end = data.rfind(b"\n")
            if end < 0:
                carry = data
                continue
            carry = data[end + 1:]
            yield data[: end + 1].decode("utf-8", errors="replace")
        if carry:
            yield carry.decode("utf-8", errors="replace")

    text: Iterable[str] = pieces()
    bar = None
    if progress:
        text = bar = ProgressLines(text, total, position, name, mask=0)
    try:
        return read_deferred(text, name, family), ()
    except GiveUp:
        return None, chain(seen, it)
    finally:
        if bar is not None:
            bar.close()
