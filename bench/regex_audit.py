"""Find the regular expressions of iptexplain whose time grows faster than their input.

Every compiled pattern held by a module of the package (a module-level ``re.Pattern``) is run
with ``search``, ``match`` and ``finditer`` over strings made of its own pieces -- the literal
words and characters of the pattern, repeated, joined by spaces, newlines, ``@``, ``/`` ... --
at two lengths, 32 KB and 128 KB, the best of three runs each.  A linear pattern takes about 4x
longer on the longer input; a pattern that backtracks quadratically takes about 16x.  Patterns
whose ratio is above 10 and that take over 100 ms on the long input are printed with the input
that shows it (smaller figures are scheduling noise on a shared machine: the quadratic patterns
issue 14 found took seconds on 30 KB).

    python bench/regex_audit.py

Not a test: timing belongs in bench/.  Run it after adding a regex; issue 14 found three
quadratic ones (format detection over blank lines, the one-line ``ip addr`` reader, the
``iptables … -S`` heading detector).
"""

from __future__ import annotations

import importlib
import itertools
import pkgutil
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import iptexplain  # noqa: E402

SEPARATORS = [" ", "\n", "", "@", "/", ":", "\t", " \n", "\"", "'", "*", "-", "#", "!", ","]


def patterns() -> list[tuple[str, re.Pattern]]:
    out = []
    for info in pkgutil.walk_packages(iptexplain.__path__, "iptexplain."):
        if info.name.endswith("__main__"):
            continue
        try:
            mod = importlib.import_module(info.name)
        except Exception:  # noqa: BLE001 -- optional modules (python-iptables) may not import
            continue
        for name, value in vars(mod).items():
            if isinstance(value, re.Pattern):
                out.append((f"{info.name}.{name}", value))
    return out


def pieces(p: re.Pattern) -> list[str]:
    """Literal fragments of the pattern: words, digits, and single punctuation characters."""
    src = p.pattern
    words = set(re.findall(r"[A-Za-z][A-Za-z0-9_-]*", re.sub(r"\\[a-zA-Z]", " ", src)))
    chars = set(c for c in src if not c.isalnum() and c not in "()[]{}?+*|^$\\")
    return sorted(words)[:30] + sorted(chars) + ["0", "1", "10.0.0.1", "x", "::1"]


def cost(p: re.Pattern, text: str) -> float:
    """The best of three runs: on a shared machine one run may wait for a core."""
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        p.search(text)
        p.match(text)
        for _ in itertools.islice(p.finditer(text), 100000):
            pass
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    found = 0
    for name, p in patterns():
        worst = (0.0, 0.0, "")
        for a in pieces(p):
            for sep in SEPARATORS:
                for b in ("", "x", "0", " "):
                    unit = a + sep + b
                    small = unit * max(1, 32768 // len(unit))
                    big = unit * max(1, 131072 // len(unit))
                    t_small = cost(p, small)
                    if t_small < 0.001:
                        continue
                    t_big = cost(p, big)
                    if t_big > worst[1]:
                        worst = (t_small, t_big, unit)
        t_small, t_big, unit = worst
        if t_big > 0.1 and t_big / max(t_small, 1e-6) > 10:
            found += 1
            print(f"{name}: {t_small * 1000:.0f} ms -> {t_big * 1000:.0f} ms (x{t_big / t_small:.0f}) "
                  f"on {unit!r} repeated\n    {p.pattern}")
    print(f"{found} pattern(s) superlinear")


if __name__ == "__main__":
    main()
