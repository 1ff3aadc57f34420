"""The TOS value syntax shared by the ``tos`` match and the ``TOS`` target (``tos_values.c``).

``0x10``, ``0x10/0x3f`` or a symbolic name; a name implies the mask 0x3f (revision 1), a bare
number the mask 0xff.  Not an extension itself.
"""

from __future__ import annotations

from iptexplain.errors import OptionError
from iptexplain.ext.base import OptType, parse_uint
from iptexplain.numbers import is_decimal

TOS_NAMES = {"minimize-delay": 0x10, "maximize-throughput": 0x08, "maximize-reliability": 0x04,
             "minimize-cost": 0x02, "normal-service": 0x00}


def parse_tosmask(text: str) -> tuple[int, int]:
    value_t, sep, mask_t = text.partition("/")
    if is_decimal(value_t[:1]):
        value = parse_uint(value_t, 8)
        mask = parse_uint(mask_t, 8) if sep else 0xFF
        return value, mask
    if text.lower() in TOS_NAMES:
        return TOS_NAMES[text.lower()], 0x3F
    raise OptionError(f"Symbolic name \"{text}\" is unknown")


tosmask = OptType("tosmask", lambda a: parse_tosmask(a[0]), lambda v: [f"0x{v[0]:02x}/0x{v[1]:02x}"])
