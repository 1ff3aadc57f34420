"""devgroup: the device group of the in/out interface (libxt_devgroup)."""

from __future__ import annotations

from iptexplain.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, OptType, parse_uint


def _group(text: str) -> tuple[int, int] | str:
    value_t, sep, mask_t = text.partition("/")
    try:
        return parse_uint(value_t), (parse_uint(mask_t) if sep else 0xFFFFFFFF)
    except OptionError:
        if sep or not text:
            raise
        return text  # a name from /etc/iproute2/group, kept as written


def _fmt(v) -> str:
    if isinstance(v, str):
        return v
    value, mask = v
    return f"0x{value:x}" if mask == 0xFFFFFFFF else f"0x{value:x}/0x{mask:x}"


group = OptType("devgroup", lambda a: _group(a[0]), lambda v: [_fmt(v)])


@register
class DevGroup(Match):
    name = "devgroup"
    options = (
        Opt("src_group", "--src-group", group),
        Opt("dst_group", "--dst-group", group),
    )

    def check(self) -> None:
        if not self.values:
            raise OptionError("devgroup: --src-group or --dst-group is required")
