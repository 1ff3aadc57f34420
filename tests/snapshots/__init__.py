"""Snapshot files for the trace views, and the helper that compares against them.

``assert_snapshot("name.txt", text)`` compares ``text`` with ``tests/snapshots/name.txt``.  Run
with ``UPDATE_SNAPSHOTS=1`` to (re)write the files -- then read every changed file by eye
(``git diff tests/snapshots``) before committing: a snapshot must show the correct behaviour,
not merely the current one.  A missing snapshot fails (it is never written silently).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

DIR = Path(__file__).resolve().parent


def updating() -> bool:
    return os.environ.get("UPDATE_SNAPSHOTS", "") not in ("", "0")


def assert_snapshot(name: str, text: str) -> None:
    path = DIR / name
    if updating():
        path.write_text(text, encoding="utf-8")
        return
    if not path.exists():
        raise AssertionError(f"snapshot {path} is missing: run with UPDATE_SNAPSHOTS=1, then review it")
    want = path.read_text(encoding="utf-8")
    if text != want:
        diff = "".join(difflib.unified_diff(want.splitlines(True), text.splitlines(True),
                                            f"{name} (snapshot)", f"{name} (now)"))
        raise AssertionError(f"{name} differs from its snapshot (UPDATE_SNAPSHOTS=1 rewrites it):\n{diff}")
