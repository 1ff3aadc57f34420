"""JSON read from files (snapshots, ``ip -j addr`` / ``ip -j route`` output) checked value by value.

A JSON file is somebody else's text too: a wrong type (``"prefixlen": "x"``, ``"notes": 1.5``,
a route ``"via": {}``) or a bad address must be one clear line naming where it is and what was
expected -- ``host.snap: host.interfaces[2].addrs[0].prefixlen: expected an integer 0-32, got
"x"`` -- not a TypeError from deep in the tracer.  Readers take each value through one of the
``want_*`` functions with the path of the value; the first problem is the error.
"""

from __future__ import annotations

import json
from typing import Any

from iptexplain.addr import parse_ip
from iptexplain.errors import InputError, OptionError
from iptexplain.numbers import is_decimal, shown


class Where:
    """A value's place in a document (``host.routes[3].via``), for the message, and the file."""

    __slots__ = ("source", "path")

    def __init__(self, source: str, path: str = "") -> None:
        self.source = source
        self.path = path

    def __getitem__(self, key: str | int) -> "Where":
        if isinstance(key, int):
            return Where(self.source, f"{self.path}[{key}]")
        return Where(self.source, f"{self.path}.{key}" if self.path else key)

    def error(self, message: str) -> InputError:
        return InputError(f"{self.path or 'the document'}: {message}", self.source)


def describe(value: Any) -> str:
    """A value as the message quotes it: JSON, clipped."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return shown(text)


def want_dict(value: Any, where: Where, optional: bool = False) -> dict:
    if value is None and optional:
        return {}
    if not isinstance(value, dict):
        raise where.error(f"expected an object, got {describe(value)}")
    return value


def want_list(value: Any, where: Where, optional: bool = False) -> list:
    if value is None and optional:
        return []
    if not isinstance(value, list):
        raise where.error(f"expected a list, got {describe(value)}")
    return value


def want_str(value: Any, where: Where, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise where.error(f"expected a string, got {describe(value)}")
    return value


def want_name(value: Any, where: Where) -> str:
    """A string or a number, as text (``ip -j route`` prints a table as ``"local"`` or ``254``)."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise where.error(f"expected a string, got {describe(value)}")
    return str(value)


def want_bool(value: Any, where: Where) -> bool:
    if not isinstance(value, bool):
        raise where.error(f"expected true or false, got {describe(value)}")
    return value


def want_int(value: Any, where: Where, lo: int, hi: int) -> int:
    """An integer in ``lo..hi`` (a string of ASCII digits too: older ``ip`` printed some so)."""
    if isinstance(value, str) and is_decimal(value) and len(value) <= 20:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise where.error(f"expected an integer {lo}-{hi}, got {describe(value)}")
    return value


def want_family(value: Any, where: Where) -> int:
    if value not in (4, 6) or isinstance(value, bool):
        raise where.error(f"expected 4 or 6, got {describe(value)}")
    return int(value)


def want_address(value: Any, where: Where, family: int | None = None) -> str:
    """A host address (of ``family`` when given), as text."""
    text = want_str(value, where)
    assert text is not None
    try:
        fam, _ = parse_ip(text, family)
    except OptionError:
        what = f"an IPv{family} address" if family else "an IP address"
        raise where.error(f"expected {what}, got {describe(value)}") from None
    return text


def want_prefix(value: Any, where: Where, family: int | None = None) -> str:
    """``default``, an address, or ADDRESS/LENGTH (a route's destination)."""
    text = want_str(value, where)
    assert text is not None
    if text == "default":
        return text
    addr, sep, plen = text.partition("/")
    try:
        fam, _ = parse_ip(addr, family)
    except OptionError:
        raise where.error(f"expected `default' or a prefix, got {describe(value)}") from None
    if sep and not (is_decimal(plen) and len(plen) <= 3 and int(plen) <= (32 if fam == 4 else 128)):
        raise where.error(f"bad prefix length in {describe(value)}")
    return text
