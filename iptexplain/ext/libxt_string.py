"""string: a byte pattern in the packet (libxt_string).  iptables-save always quotes it, and
writes it as ``"|hex|"`` when it holds an unprintable byte or ends in a backslash."""

from __future__ import annotations

from iptexplain.core.errors import OptionError
from iptexplain.core.packets import Decision
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, OptType, types

MAX_PATTERN = 128
_HEXDIGITS = set("0123456789abcdefABCDEF")


def parse_hex_string(s: str) -> bytes:
    """``|0d0a|GET`` mixes hex blocks and literal text (parse_hex_string)."""
    if not s:
        raise OptionError("STRING must contain at least one char")
    out = bytearray()
    i, n, hex_f = 0, len(s), False
    while i < n:
        if len(out) >= MAX_PATTERN:
            raise OptionError(f"STRING too long \"{s}\"")
        literal = False
        if s[i] == "\\" and not hex_f:
            literal = True
        elif s[i] == "\\":
            raise OptionError("Cannot include literals in hex data")
        elif s[i] == "|":
            if hex_f:
                hex_f = False
            else:
                hex_f = True
                while i + 1 < n and s[i + 1] == " ":
                    i += 1
            if i + 1 >= n:
                break
            i += 1
        if literal:
            if i + 1 >= n:
                raise OptionError("Bad literal placement at end of string")
            out.append(ord(s[i + 1]) & 0xFF)
            i += 2
        elif hex_f:
            if i + 1 >= n:
                raise OptionError("Odd number of hex digits")
            if i + 2 >= n:
                raise OptionError("Invalid hex block")
            if s[i] not in _HEXDIGITS or s[i + 1] not in _HEXDIGITS:
                raise OptionError(f"Invalid hex char '{s[i] if s[i] not in _HEXDIGITS else s[i + 1]}'")
            out.append(int(s[i : i + 2], 16))
            i += 3 if i + 2 < n and s[i + 2] == " " else 2
        else:
            out.append(ord(s[i]) & 0xFF)
            i += 1
    return bytes(out)


def _pattern(text: str) -> bytes:
    data = text.encode("utf-8", "surrogateescape")
    if not data:
        raise OptionError("STRING must contain at least one char")
    if len(data) > MAX_PATTERN:
        raise OptionError(f"STRING too long \"{text}\"")
    return data


def _printable(data: bytes) -> bool:
    return all(0x20 <= b < 0x7F for b in data) and not data.endswith(b"\\")


def fmt_pattern(data: bytes) -> tuple[str, str]:
    """(option, quoted pattern) as string_save prints them."""
    if not _printable(data):
        return "--hex-string", '"|' + data.hex() + '|"'
    text = data.decode("ascii")
    return "--string", '"' + "".join("\\" + c if c in '"\\' else c for c in text) + '"'


pattern = OptType("pattern", lambda a: _pattern(a[0]), lambda v: [fmt_pattern(v)[1]])
hexpattern = OptType("hexpattern", lambda a: parse_hex_string(a[0]), lambda v: [fmt_pattern(v)[1]])


@register
class String(Match):
    name = "string"
    options = (
        Opt("from", "--from", types.uint16, invert=False),
        Opt("to", "--to", types.uint16, invert=False),
        Opt("algo", "--algo", types.choice("bm", "kmp"), invert=False),
        Opt("string", "--string", pattern),
        Opt("hex_string", "--hex-string", hexpattern),
        Opt("icase", "--icase", types.flag, invert=False),
    )

    def check(self) -> None:
        if not self.has("algo"):
            raise OptionError("STRING match: You must specify `--algo'")
        if self.has("string") == self.has("hex_string"):
            raise OptionError("STRING match: You must specify `--string' or `--hex-string'")

    @property
    def pattern(self) -> bytes:
        return self.value("string") or self.value("hex_string")

    @property
    def inverted(self) -> bool:
        return (self.get("string") or self.get("hex_string")).invert  # type: ignore[union-attr]

    def save_args(self) -> list[str]:
        flag, quoted = fmt_pattern(self.pattern)
        out = (["!"] if self.inverted else []) + [flag, quoted, "--algo", self.value("algo")]
        if self.value("from", 0):
            out += ["--from", str(self.value("from"))]
        if self.value("to", 0xFFFF) != 0xFFFF:
            out += ["--to", str(self.value("to"))]
        if self.has("icase"):
            out.append("--icase")
        return out

    def decide(self, pkts, ctx):
        """The payload is not part of the described flow: a fork."""
        what = self.describe()
        return Decision.fork(pkts, what, f"payload matches {what}", f"payload does not match {what}")

    # -- the -L face (string_print: ' STRING match [!] "PATTERN" ALGO name bm FROM n TO n ICASE')
    listing_keywords = ("STRING",)

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        _, quoted = fmt_pattern(self.pattern)
        out = ["STRING", "match"] + (["!"] if self.inverted else []) + [quoted, "ALGO", "name", self.value("algo")]
        if self.value("from", 0):
            out += ["FROM", str(self.value("from"))]
        if self.value("to", 0xFFFF) != 0xFFFF:
            out += ["TO", str(self.value("to"))]
        if self.has("icase"):
            out.append("ICASE")
        return " ".join(out)

    @classmethod
    def from_listing(cls, tail) -> "String":
        tail.expect("STRING", "match")
        inv = tail.invert()
        w = tail.take()
        if len(w) < 2 or w[0] != '"' or w[-1] != '"':
            raise OptionError("string: expected a quoted pattern")
        body = w[1:-1]
        if body.startswith("|") and body.endswith("|") and len(body) >= 2:
            opts: list = [("--hex-string", inv, [body])]
        else:
            text, i = "", 0
            while i < len(body):  # print_string escapes " and \ with a backslash
                if body[i] == "\\" and i + 1 < len(body):
                    i += 1
                text += body[i]
                i += 1
            opts = [("--string", inv, [text])]
        tail.expect("ALGO", "name")
        opts.append(("--algo", False, [tail.take()]))
        for word, flag in (("FROM", "--from"), ("TO", "--to")):
            if tail.take_if(word):
                opts.append((flag, False, [tail.take()]))
        if tail.take_if("ICASE"):
            opts.append(("--icase", False, []))
        return cls.build(opts, spelled="string")  # type: ignore[return-value]
