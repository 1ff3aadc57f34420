"""icmp: ICMP type and code (libipt_icmp).  iptables-save prints numbers: ``--icmp-type 3/3``."""

from __future__ import annotations

from iptexplain.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, OptType
from iptexplain.numbers import decimal, is_decimal, shown

# name -> (type, code_min, code_max), from iptables' icmp_codes table.
ICMP_TYPES: dict[str, tuple[int, int, int]] = {
    "any": (0xFF, 0, 0xFF),
    "echo-reply": (0, 0, 0xFF), "pong": (0, 0, 0xFF),
    "destination-unreachable": (3, 0, 0xFF),
    "network-unreachable": (3, 0, 0), "host-unreachable": (3, 1, 1),
    "protocol-unreachable": (3, 2, 2), "port-unreachable": (3, 3, 3),
    "fragmentation-needed": (3, 4, 4), "source-route-failed": (3, 5, 5),
    "network-unknown": (3, 6, 6), "host-unknown": (3, 7, 7),
    "network-prohibited": (3, 9, 9), "host-prohibited": (3, 10, 10),
    "TOS-network-unreachable": (3, 11, 11), "TOS-host-unreachable": (3, 12, 12),
    "communication-prohibited": (3, 13, 13), "host-precedence-violation": (3, 14, 14),
    "precedence-cutoff": (3, 15, 15),
    "source-quench": (4, 0, 0xFF),
    "redirect": (5, 0, 0xFF), "network-redirect": (5, 0, 0), "host-redirect": (5, 1, 1),
    "TOS-network-redirect": (5, 2, 2), "TOS-host-redirect": (5, 3, 3),
    "echo-request": (8, 0, 0xFF), "ping": (8, 0, 0xFF),
    "router-advertisement": (9, 0, 0xFF), "router-solicitation": (10, 0, 0xFF),
    "time-exceeded": (11, 0, 0xFF), "ttl-exceeded": (11, 0, 0xFF),
    "ttl-zero-during-transit": (11, 0, 0), "ttl-zero-during-reassembly": (11, 1, 1),
    "parameter-problem": (12, 0, 0xFF), "ip-header-bad": (12, 0, 0),
    "required-option-missing": (12, 1, 1),
    "timestamp-request": (13, 0, 0xFF), "timestamp-reply": (14, 0, 0xFF),
    "address-mask-request": (17, 0, 0xFF), "address-mask-reply": (18, 0, 0xFF),
}


def parse_icmp_type(text: str, table: dict[str, tuple[int, int, int]] = ICMP_TYPES) -> tuple[int, int, int]:
    """``echo-request`` / ``8`` / ``3/4`` -> (type, code_min, code_max)."""
    if text in table:
        return table[text]
    low = {k.lower(): v for k, v in table.items()}
    if text.lower() in low:
        return low[text.lower()]
    t, sep, c = text.partition("/")
    try:
        typ = decimal(t, maximum=255)
        if sep:
            code = decimal(c, maximum=255)
            return (typ, code, code)
        return (typ, 0, 0xFF)
    except OptionError:
        raise OptionError(f"Invalid ICMP type `{shown(text)}'") from None


def fmt_icmp_type(v: tuple[int, int, int]) -> str:
    typ, lo, hi = v
    if typ == 0xFF:
        return "any"
    return str(typ) if (lo, hi) == (0, 0xFF) else f"{typ}/{lo}"


icmptype = OptType("icmptype", lambda a: parse_icmp_type(a[0]), lambda v: [fmt_icmp_type(v)])


@register
class Icmp(Match):
    name = "icmp"
    family = 4
    options = (Opt("type", "--icmp-type", icmptype),)

    # -- the -L face (icmp_print) --------------------------------------------------------------
    # "icmptype 8" is iptables' own spelling: print writes " icmp" then "type %u" with no blank.
    listing_keywords = ("icmp", "icmptype")

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        v = self.get("type")
        if v is None:
            return "icmp"
        return "icmp" + listing_icmp_type(v.value, v.invert, numeric, ICMP_TYPES)

    @classmethod
    def from_listing(cls, tail) -> "Icmp":
        spec, inv = read_listing_icmp_type(tail, "icmp", ICMP_TYPES)
        return cls.build([("--icmp-type", inv, [spec])], spelled="icmp")  # type: ignore[return-value]

    def decide(self, pkts, ctx):
        """Type and code as icmp_type_code_match tests them (type 255: any ICMP packet)."""
        from iptexplain.netfilter.packets import U16, Decision, fmt_icmp, span

        v = self.get("type")
        if v is None:
            return Decision.all(pkts, "icmp")
        typ, lo, hi = v.value
        accept = U16 if typ == 0xFF else span(typ << 8 | lo, typ << 8 | hi)
        return Decision.split(pkts, "icmp", accept, v.invert, "icmp type",
                              show=lambda s: fmt_icmp_type(v.value) if s is accept else fmt_icmp(s))


def listing_icmp_type(v: tuple[int, int, int], invert: bool, numeric: bool,
                      table: dict[str, tuple[int, int, int]]) -> str:
    """print_icmptype: ``␠echo-request`` / ``␠!echo-request`` by name, else ``type 3 code 1``
    (the caller prefixes the module word, so ``icmp`` + ``type 8`` reads ``icmptype 8``)."""
    typ, lo, hi = v
    if not numeric:
        for name, t in table.items():
            if t == v:
                return f" {'!' if invert else ''}{name}"
    out = " !" if invert else ""
    out += f"type {typ}"
    if lo == hi:
        out += f" code {lo}"
    elif lo != 0 or hi != 0xFF:
        out += f" codes {lo}-{hi}"
    return out


def read_listing_icmp_type(tail, word: str, table: dict[str, tuple[int, int, int]]) -> tuple[str, bool]:
    """Inverse of :func:`listing_icmp_type`: the ``--icmp-type`` argument and its ``!``."""
    w = tail.take()
    inv = False
    if w == word + "type":
        typ = tail.take()
    elif w == word:
        nxt = tail.take()
        if nxt == "!":
            inv = True
            nxt = tail.take()
        elif nxt.startswith("!"):
            inv, nxt = True, nxt[1:]
        if nxt == "type":  # older iptables: "icmp type 8"
            typ = tail.take()
        elif nxt.startswith("type") and is_decimal(nxt[4:]):
            typ = nxt[4:]
        else:
            if nxt not in table:
                raise OptionError(f"unknown ICMP type name `{nxt}'")
            return nxt, inv
    else:
        raise OptionError(f"not an {word} match")
    if not is_decimal(typ):
        raise OptionError(f"bad ICMP type `{shown(typ)}'")
    if tail.peek() == "code":
        tail.pos += 1
        return f"{typ}/{tail.take()}", inv
    if tail.peek() == "codes":
        tail.pos += 1
        lo, _, hi = tail.take().partition("-")
        if lo == hi:
            return f"{typ}/{lo}", inv
        raise OptionError("an ICMP code range cannot be written in iptables-save syntax")
    return typ, inv
