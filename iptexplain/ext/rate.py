"""The token-bucket rate syntax of ``limit`` (``3/hour``, ``10/s``), shared with ``hashlimit``.

Not an extension itself.  iptables stores a rate as the average interval between packets in
units of 1/scale seconds (``XT_LIMIT_SCALE`` = 10000 for limit); printing turns it back into the
largest unit that keeps it exact, so ``60/min`` is saved as ``1/sec``.
"""

from __future__ import annotations

from iptexplain.errors import OptionError
from iptexplain.numbers import DIGITS, MAX_DIGITS

UNITS = (("second", 1), ("minute", 60), ("hour", 3600), ("day", 86400))
PRINT_UNITS = (("day", 86400), ("hour", 3600), ("min", 60), ("sec", 1))


def _atoi(text: str) -> int:
    """C's atoi/atoll: leading digits, 0 when there are none."""
    digits = ""
    for ch in text.lstrip():
        if ch not in DIGITS:
            break
        digits += ch
    return int(digits.lstrip("0")[:MAX_DIGITS] or "0") if digits else 0


def rate_unit(text: str) -> int:
    """Seconds per unit of ``N/unit`` (any prefix of second/minute/hour/day); 1 without one."""
    _, sep, unit = text.partition("/")
    if not sep:
        return 1
    if not unit:
        raise OptionError(f"bad rate \"{text}\"")
    for name, mult in UNITS:
        if name.startswith(unit.lower()):
            return mult
    raise OptionError(f"bad rate \"{text}\"")


def parse_rate(text: str, scale: int) -> int:
    """``N/unit`` -> the interval between packets in 1/scale seconds (kernel ``avg``)."""
    mult = rate_unit(text)
    r = _atoi(text.partition("/")[0])
    if not r:
        raise OptionError(f"bad rate \"{text}\"")
    period = scale * mult // r
    if period == 0:
        raise OptionError(f"Rate too fast \"{text}\"")
    return period


def print_rate(period: int, scale: int) -> tuple[str, int]:
    """The kernel interval as iptables prints it, and the unit chosen (seconds per unit)."""
    if period == 0:
        return "inf", 1
    rates = [(name, scale * secs) for name, secs in PRINT_UNITS]
    i = 1
    while i < len(rates):
        mult = rates[i][1]
        if period > mult or mult // period < mult % period:
            break
        i += 1
    name, mult = rates[i - 1]
    return f"{mult // period}/{name}", mult // scale


def per_second(period: int, scale: int) -> float:
    """Packets per second the bucket refills at."""
    return float("inf") if period == 0 else scale / period
