"""ipset contents from an ``ipset save`` dump (``create``/``add`` lines), as data.

The tracer decides ``-m set`` from these (:mod:`iptexplain.core.ipsets`); the CLI reads them
with ``--ipset FILE``.  Bad lines are ``FILE:LINE: what is wrong``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from iptexplain.core.addr import parse_address
from iptexplain.core.errors import InputError, OptionError
from iptexplain.core.packets import masked_set, point, span
from iptexplain.core.protocols import PROTO_NUMBERS
from iptexplain.numbers import decimal


@dataclass(slots=True)
class IpSet:
    """One set: its type (``hash:ip,port``), family and members, each a tuple of element sets
    (addresses as interval sets, ports as (proto, port interval set))."""

    name: str
    type: str
    family: int = 4
    members: list[tuple] = field(default_factory=list)
    line: int = 0

    @property
    def dims(self) -> list[str]:
        """The kinds of the dimensions: ip/net -> "addr", port -> "port", iface, mark, mac."""
        kinds = self.type.split(":", 1)[1].split(",") if ":" in self.type else []
        return ["addr" if k in ("ip", "net") else k for k in kinds]

    def __str__(self) -> str:
        return f"{self.name} ({self.type}, {len(self.members)} members)"


def parse_ipset_save(text: str, source: str = "<ipset>") -> dict[str, IpSet]:
    """Read ``ipset save`` output (``create NAME TYPE …`` and ``add NAME ELEM …`` lines)."""
    sets: dict[str, IpSet] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        words = raw.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] in ("create", "-N", "-exist") and len(words) >= 3:
            fam = 6 if "inet6" in words[3:] else 4
            sets[words[1]] = IpSet(words[1], words[2], fam, line=n)
        elif words[0] in ("add", "-A") and len(words) >= 3:
            s = sets.get(words[1])
            if s is None:
                raise InputError(f"add to set {words[1]} before its create line", source, n)
            try:
                s.members.append(_element(s, words[2]))
            except (OptionError, ValueError) as e:
                raise InputError(f"bad element {words[2]!r} of set {s.name}: {e}", source, n) from None
    return sets


def _element(s: IpSet, text: str) -> tuple:
    parts = text.split(",")
    out = []
    for kind, part in zip(s.dims, parts):
        if kind == "addr":
            if "-" in part and "/" not in part:
                lo, hi = part.split("-")
                out.append(span(parse_address(lo, s.family).value, parse_address(hi, s.family).value))
            else:
                a = parse_address(part, s.family)
                out.append(masked_set(a.value, a.mask, 32 if s.family == 4 else 128))
        elif kind == "port":
            proto, sep, port = part.rpartition(":")
            pnum = PROTO_NUMBERS.get(proto.lower() if sep else "tcp", 6)
            if "-" in port:
                lo, _, hi = port.partition("-")
                out.append((pnum, span(decimal(lo, "port", 65535), decimal(hi, "port", 65535))))
            else:
                out.append((pnum, point(decimal(port, "port", 65535))))
        else:
            out.append(part)
    return tuple(out)
