"""DNPT: stateless IPv6 destination prefix translation, RFC 6296 (libip6t_DNPT, mangle)."""

from __future__ import annotations

from iptexplain.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Opt, OptType, Target
from iptexplain.addr import parse_address


def fmt_pfx(a) -> str:
    return f"{a.host_str()}/{a.prefixlen}"


pfx = OptType("pfx", lambda a: parse_address(a[0], 6), lambda v: [fmt_pfx(v)])


@register
class Dnpt(Target):
    name = "DNPT"
    family = 6
    terminal = False
    table_only = ("mangle",)
    options = (
        Opt("src_pfx", "--src-pfx", pfx, invert=False),
        Opt("dst_pfx", "--dst-pfx", pfx, invert=False),
    )

    def check(self) -> None:
        if not (self.has("src_pfx") and self.has("dst_pfx")):
            raise OptionError(f"{self.name}: --src-pfx and --dst-pfx are required")
