"""DNPT: stateless IPv6 destination prefix translation, RFC 6296 (libip6t_DNPT, mangle)."""

from __future__ import annotations

from iptexplain.core.addr import int_to_ip, parse_address
from iptexplain.core.context import CONTINUE, Effect
from iptexplain.core.errors import OptionError
from iptexplain.core.packets import fmt_set, intersect, masked_set, normalize
from iptexplain.ext import register
from iptexplain.ext.base import Opt, OptType, Target, read_save_like, save_like_listing


def fmt_pfx(a) -> str:
    return f"{a.host_str()}/{a.prefixlen}"


pfx = OptType("pfx", lambda a: parse_address(a[0], 6), lambda v: [fmt_pfx(v)])


@register
class Dnpt(Target):
    name = "DNPT"
    family = 6
    terminal = False
    table_only = ("mangle",)
    address = "dst"  # the address it translates (SNPT: the source)
    options = (
        Opt("src_pfx", "--src-pfx", pfx, invert=False),
        Opt("dst_pfx", "--dst-pfx", pfx, invert=False),
    )

    def check(self) -> None:
        if not (self.has("src_pfx") and self.has("dst_pfx")):
            raise OptionError(f"{self.name}: --src-pfx and --dst-pfx are required")

    def apply(self, pkts, ctx):
        """Stateless IPv6 prefix translation (RFC 6296): ``--src-pfx`` becomes ``--dst-pfx``;
        the kernel also adjusts one 16-bit word of the interface identifier to keep checksums
        neutral, which this trace does not compute.  The packet continues."""
        src, dst = self.value("src_pfx"), self.value("dst_pfx")
        field = self.address
        have = getattr(pkts, field)
        if not intersect(have, masked_set(src.value, src.mask, 128)):
            return Effect(CONTINUE, note=f"not in {src}: unchanged")
        host = ((1 << 128) - 1) ^ dst.mask
        new = normalize((dst.value | (lo & host), dst.value | (hi & host)) if (lo ^ hi) <= host
                        else (dst.value, dst.value | host) for lo, hi in have)
        text = lambda s: fmt_set(s, lambda v: int_to_ip(v, 6), 2)
        return Effect(CONTINUE, pkts.copy(**{field: new}), [(field, text(have), text(new))],
                      note="prefix translated (the checksum-neutral word is not shown)")

    # -- the -L face (DNPT_print / SNPT_print: " DNPT src-pfx A/L dst-pfx B/L") -----------------
    def listing(self, numeric: bool = True, *, family: int = 6, proto: str | None = None) -> str:
        return save_like_listing(self, self.name)

    @classmethod
    def from_listing(cls, tail) -> "Dnpt":
        return read_save_like(cls, tail, (cls.name,), spelled=cls.name)  # type: ignore[return-value]
