"""u32: tests on 32-bit words read at computed offsets of the packet (libxt_u32).

Docker's encrypted overlay networks use it (``-m u32 --u32 "0>>22&0x3C@12&0xFFFFFF00=..."``).
The expression is parsed into its tests -- locations (number, then ``&``/``<<``/``>>``/``@`` and a
number, ...) and value ranges -- and printed back as iptables-save normalizes it, in hex.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from iptexplain.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, OptType

MAXSIZE = 10
_NUMBER = re.compile(r"\s*(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")
OPS = {"&": "&", "<<": "<<", ">>": ">>", "@": "@"}


@dataclass(frozen=True, slots=True)
class U32Test:
    """``location = values``: the first number, then (operator, number) steps; value ranges."""

    location: tuple[tuple[str, int], ...]  # first element's operator is ""
    values: tuple[tuple[int, int], ...]

    def __str__(self) -> str:
        loc = "".join(f"{op}0x{n:x}" for op, n in self.location)
        vals = ",".join(f"0x{a:x}" if a == b else f"0x{a:x}:0x{b:x}" for a, b in self.values)
        return f"{loc}={vals}"


def _number(s: str, i: int, start: int) -> tuple[int, int]:
    m = _NUMBER.match(s, i)
    if not m:
        raise OptionError(f"u32: at char {i - start}: not a number or out of range")
    text = m.group(1)
    if len(text) > 12:
        raise OptionError(f"u32: at char {i - start}: not a number or out of range")
    value = int(text, 16) if text[:2].lower() == "0x" else int(text, 8) if text.startswith("0") else int(text)
    if value > 0xFFFFFFFF:
        raise OptionError(f"u32: at char {i - start}: not a number or out of range")
    return value, m.end()


def parse_u32(s: str) -> tuple[U32Test, ...]:
    """The state machine of u32_parse: locations until ``=``, values until ``&&`` or the end."""
    tests: list[U32Test] = []
    loc: list[tuple[str, int]] = []
    vals: list[tuple[int, int]] = []
    state, i, n = 0, 0, len(s)
    while True:
        while i < n and s[i].isspace():
            i += 1
        if i >= n:
            if state == 0:
                raise OptionError("u32: abrupt end of input after location specifier")
            if not vals:
                raise OptionError("u32: test ended with no value specified")
            tests.append(U32Test(tuple(loc), tuple(vals)))
            if len(tests) > MAXSIZE + 1:
                raise OptionError(f"u32: at char {i}: too many \"&&\"s")
            return tuple(tests)
        if state == 0:
            if s[i] == "=":
                if not loc:
                    raise OptionError(f"u32: at char {i}: location spec missing")
                i += 1
                state = 1
                continue
            op = ""
            if loc:
                if s[i] == "&":
                    op = "&"
                elif s.startswith("<<", i):
                    op = "<<"
                elif s.startswith(">>", i):
                    op = ">>"
                elif s[i] == "@":
                    op = "@"
                elif s[i] in "<>":
                    raise OptionError(f"u32: at char {i + 1}: a second '{s[i]}' was expected")
                else:
                    raise OptionError(f"u32: at char {i}: operator expected")
                i += len(op)
            value, i = _number(s, i, 0)
            loc.append((op, value))
            if len(loc) > MAXSIZE + 1:
                raise OptionError(f"u32: at char {i}: too many operators")
        else:
            if s[i] == "&":
                if not s.startswith("&&", i):
                    raise OptionError(f"u32: at char {i + 1}: a second '&' was expected")
                if not vals:
                    raise OptionError(f"u32: at char {i}: value spec missing")
                tests.append(U32Test(tuple(loc), tuple(vals)))
                if len(tests) > MAXSIZE:
                    raise OptionError(f"u32: at char {i}: too many \"&&\"s")
                loc, vals, state = [], [], 0
                i += 2
                continue
            if vals:
                if s[i] != ",":
                    raise OptionError(f"u32: at char {i}: expected \",\" or \"&&\"")
                i += 1
            lo, i = _number(s, i, 0)
            while i < n and s[i].isspace():
                i += 1
            hi = lo
            if i < n and s[i] == ":":
                hi, i = _number(s, i + 1, 0)
            vals.append((lo, hi))
            if len(vals) > MAXSIZE + 1:
                raise OptionError(f"u32: at char {i}: too many \",\"s")


u32expr = OptType("u32", lambda a: parse_u32(a[0]), lambda v: ['"' + "&&".join(str(t) for t in v) + '"'])


@register
class U32(Match):
    name = "u32"
    options = (Opt("u32", "--u32", u32expr),)

    def check(self) -> None:
        if not self.has("u32"):
            raise OptionError("u32: --u32 is required")

    @property
    def tests(self) -> tuple[U32Test, ...]:
        return self.value("u32")

    def decide(self, pkts, ctx):
        """Tests on raw bytes of the packet, which a described flow does not have: a fork."""
        from iptexplain.netfilter.packets import Decision

        what = self.describe()
        return Decision.fork(pkts, what, f"packet bytes satisfy {what}", f"packet bytes do not satisfy {what}")

    # -- the -L face (u32_print: ' u32 [!] "EXPR"', the expression as u32_dump rebuilds it)
    listing_keywords = ("u32",)

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        v = self.get("u32")
        return " ".join(["u32"] + (["!"] if v.invert else []) + u32expr.fmt(v.value))

    @classmethod
    def from_listing(cls, tail) -> "U32":
        tail.expect("u32")
        inv = tail.invert()
        w = tail.take()
        if len(w) < 2 or w[0] != '"' or w[-1] != '"':
            raise OptionError("u32: expected a quoted expression")
        return cls.build([("--u32", inv, [w[1:-1]])], spelled="u32")  # type: ignore[return-value]
