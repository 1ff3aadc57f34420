"""The address/port range syntax shared by DNAT, SNAT, NETMAP… (``a.b.c.d[-e.f.g.h][:p[-q]]``).

Not an extension itself: the NAT targets import it, as libxt_NAT.c shares its range parser.
"""

from __future__ import annotations

from dataclasses import dataclass

from iptexplain.addr import int_to_ip, parse_ip
from iptexplain.errors import OptionError
from iptexplain.numbers import decimal


@dataclass(frozen=True, slots=True)
class NatRange:
    family: int | None
    addr_min: int | None  # None: keep the address, change only the port
    addr_max: int | None
    port_min: int | None
    port_max: int | None
    text: str  # as iptables-save prints it

    def __str__(self) -> str:
        return self.text


def parse_nat_range(text: str) -> NatRange:
    s = text
    family = None
    addr_part, port_part = s, ""
    if s.startswith("["):  # [v6addr]:port
        end = s.find("]")
        if end < 0:
            raise OptionError(f"Invalid address `{text}'")
        addr_part, rest = s[1:end], s[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise OptionError(f"Invalid port in `{text}'")
            port_part = rest[1:]
    elif s.count(":") == 1 or (s.startswith(":")):
        addr_part, _, port_part = s.partition(":")
    elif s.count(":") > 1:
        addr_part = s  # bare IPv6 address
    amin = amax = None
    if addr_part:
        lo, sep, hi = addr_part.partition("-")
        family, amin = parse_ip(lo)
        amax = parse_ip(hi, family)[1] if sep else amin
        if amax < amin:
            raise OptionError(f"Invalid address range `{addr_part}'")
    pmin = pmax = None
    if port_part:
        lo, sep, hi = port_part.partition("-")
        try:
            pmin = decimal(lo, "port", 65535)
            pmax = decimal(hi, "port", 65535) if sep else pmin
        except OptionError:
            raise OptionError(f"Port `{port_part}' not valid") from None
        if not (0 < pmin <= 65535 and 0 < pmax <= 65535) or pmax < pmin:
            raise OptionError(f"Port `{port_part}' not valid")
    if amin is None and pmin is None:
        raise OptionError(f"Invalid address or port `{text}'")
    return NatRange(family, amin, amax, pmin, pmax, _fmt(family, amin, amax, pmin, pmax))


def _fmt(family, amin, amax, pmin, pmax) -> str:
    out = ""
    if amin is not None:
        a = int_to_ip(amin, family)
        b = int_to_ip(amax, family)
        out = a if amin == amax else f"{a}-{b}"
        if family == 6 and pmin is not None:
            out = f"[{out}]"
    if pmin is not None:
        out += f":{pmin}" if pmin == pmax else f":{pmin}-{pmax}"
    return out


def parse_port_range(text: str) -> tuple[int, int]:
    """``--to-ports 8080`` / ``1024-65535`` (REDIRECT, MASQUERADE)."""
    lo, sep, hi = text.partition("-")
    try:
        a = decimal(lo, "port", 65535)
        b = decimal(hi, "port", 65535) if sep else a
    except OptionError:
        raise OptionError(f"Port `{text}' not valid") from None
    if not (0 < a <= 65535 and 0 < b <= 65535) or b < a:
        raise OptionError(f"Port `{text}' not valid")
    return (a, b)


def fmt_port_range(v: tuple[int, int]) -> str:
    return str(v[0]) if v[0] == v[1] else f"{v[0]}-{v[1]}"


# -- the -L face shared by the NAT targets (libxt_NAT's __NAT_print) ------------------------------

NAT_FLAGS = (("random", "--random"), ("random_fully", "--random-fully"), ("persistent", "--persistent"))


def nat_listing(target, head: str, ranges: list[str]) -> str:
    """``to:1.2.3.4:80 random`` / ``masq ports: 1024-65535`` / ``redir ports 8080``."""
    out = [f"{head}{r}" for r in ranges]
    out += [word for key, word in (("random", "random"), ("random_fully", "random-fully"),
                                    ("persistent", "persistent")) if target.has(key)]
    return " ".join(out)


def read_nat_listing(tail, range_flag: str, head: tuple[str, ...], known: set[str]) -> list:
    """Option triples from a NAT target's -L words; ``head`` = the words before the range."""
    opts: list = []
    if head == ("to:",):
        while tail.peek() is not None and tail.peek().startswith("to:"):
            opts.append((range_flag, False, [tail.take()[3:]]))
    elif tail.peek() == head[0]:
        tail.expect(*head)
        opts.append((range_flag, False, [tail.take()]))
    for key, flag in NAT_FLAGS:
        word = flag[2:]
        if flag in known and tail.take_if(word):
            opts.append((flag, False, []))
    return opts
