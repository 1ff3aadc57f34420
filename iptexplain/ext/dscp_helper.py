"""DSCP class names (``dscp_helper.c``), shared by the ``dscp`` match and the ``DSCP`` target."""

from __future__ import annotations

from iptexplain.core.errors import OptionError
from iptexplain.ext.base import OptType, parse_uint

DSCP_CLASSES = {f"CS{n}": n * 8 for n in range(8)}
DSCP_CLASSES.update({f"AF{x}{y}": x * 8 + y * 2 for x in range(1, 5) for y in range(1, 4)})
DSCP_CLASSES.update({"EF": 0x2E, "BE": 0})


def parse_dscp(text: str) -> int:
    v = parse_uint(text, 8)
    if v > 0x3F:
        raise OptionError(f"DSCP `{text}' out of range (0-63)")
    return v


def parse_dscp_class(text: str) -> int:
    if text.upper() not in DSCP_CLASSES:
        raise OptionError(f"Invalid DSCP value `{text}'")
    return DSCP_CLASSES[text.upper()]


dscp = OptType("dscp", lambda a: parse_dscp(a[0]), lambda v: [f"0x{v:02x}"])
dscp_class = OptType("dscpclass", lambda a: parse_dscp_class(a[0]), lambda v: [f"0x{v:02x}"])
