"""Numbers as iptables reads them: ASCII digits only, of a bounded length.

Python's ``str.isdigit()`` is true of ``²`` (which ``int()`` then refuses) and ``int()`` takes
``٣`` (Arabic-Indic three), ``1_000``, `` 7 `` and ``+7``, none of which iptables' strtoul
reads as a number; past 4,300 digits ``int()`` raises instead of converting.  Every number read
from input — rules, listings, ``-S`` text, snapshots, host files, flow options — goes through the
functions here, so one rule decides what a number is and a bad one is always an ``OptionError``
(a one-line input error), never a ``ValueError`` from deep inside a parser.
"""

from __future__ import annotations

from iptexplain.errors import OptionError

DIGITS = frozenset("0123456789")
HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
# No value iptables reads has more than 20 decimal digits (2**64); leading zeros aside, a longer
# word is out of range whatever the field, and int() never sees thousands of digits.
MAX_DIGITS = 40
SHOWN = 40


def shown(text: str) -> str:
    """The input word as an error message quotes it: clipped, so a 50 KB word stays one line."""
    return text if len(text) <= SHOWN else text[:SHOWN] + "…"


def is_decimal(text: str) -> bool:
    """True for a non-empty run of ASCII digits ``0-9`` (not ``²``, ``٣``, ``1_0`` or `` 1``)."""
    return bool(text) and DIGITS.issuperset(text)


def is_hex(text: str) -> bool:
    """True for a non-empty run of ASCII hexadecimal digits (no ``0x`` prefix)."""
    return bool(text) and HEX_DIGITS.issuperset(text)


def _bounded(digits: str, text: str, what: str) -> str:
    core = digits.lstrip("0")
    if len(core) > MAX_DIGITS:
        raise OptionError(f"{what} `{shown(text)}' out of range")
    return core or "0"


def decimal(text: str, what: str = "number", maximum: int | None = None, minimum: int = 0) -> int:
    """A decimal number of ASCII digits, within ``minimum..maximum``; else ``OptionError``."""
    if not is_decimal(text):
        raise OptionError(f"invalid {what} `{shown(text)}'")
    v = int(_bounded(text, text, what))
    if v < minimum or (maximum is not None and v > maximum):
        hi = "" if maximum is None else maximum
        raise OptionError(f"{what} `{shown(text)}' out of range ({minimum}-{hi})")
    return v


def hexadecimal(text: str, what: str = "number", maximum: int | None = None) -> int:
    """ASCII hex digits, with or without ``0x``, up to ``maximum``; else ``OptionError``."""
    digits = text[2:] if text[:2].lower() == "0x" else text
    if not is_hex(digits):
        raise OptionError(f"invalid {what} `{shown(text)}'")
    v = int(_bounded(digits, text, what), 16)
    if maximum is not None and v > maximum:
        raise OptionError(f"{what} `{shown(text)}' out of range (0-{maximum:#x})")
    return v


def strtoul(text: str, what: str = "number", maximum: int | None = None) -> int:
    """A number as C's ``strtoul(…, 0)`` reads it: ``0x`` hex, leading-``0`` octal, else decimal."""
    if text[:2].lower() == "0x":
        return hexadecimal(text, what, maximum)
    if len(text) > 1 and text[0] == "0" and is_decimal(text):
        if not set(text) <= set("01234567"):
            raise OptionError(f"invalid {what} `{shown(text)}'")
        v = int(_bounded(text, text, what), 8)
        if maximum is not None and v > maximum:
            raise OptionError(f"{what} `{shown(text)}' out of range (0-{maximum})")
        return v
    return decimal(text, what, maximum)
