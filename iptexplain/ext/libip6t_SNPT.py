"""SNPT: stateless IPv6 source prefix translation, RFC 6296 (libip6t_SNPT, mangle)."""

from __future__ import annotations

from iptexplain.ext import register
from iptexplain.ext.libip6t_DNPT import Dnpt


@register
class Snpt(Dnpt):
    name = "SNPT"

    def apply(self, pkts, ctx):
        """Stateless IPv6 prefix translation (RFC 6296): ``--src-pfx`` becomes ``--dst-pfx``;
        the kernel also adjusts one 16-bit word of the interface identifier to keep checksums
        neutral, which this trace does not compute.  The packet continues."""
        from iptexplain.addr import int_to_ip
        from iptexplain.netfilter.context import CONTINUE, Effect
        from iptexplain.netfilter.packets import fmt_set, intersect, masked_set, normalize

        src, dst = self.value("src_pfx"), self.value("dst_pfx")
        field = "src"
        have = getattr(pkts, field)
        if not intersect(have, masked_set(src.value, src.mask, 128)):
            return Effect(CONTINUE, note=f"not in {src}: unchanged")
        host = ((1 << 128) - 1) ^ dst.mask
        new = normalize((dst.value | (lo & host), dst.value | (hi & host)) if (lo ^ hi) <= host
                        else (dst.value, dst.value | host) for lo, hi in have)
        text = lambda s: fmt_set(s, lambda v: int_to_ip(v, 6), 2)
        return Effect(CONTINUE, pkts.copy(**{field: new}), [(field, text(have), text(new))],
                      note="prefix translated (the checksum-neutral word is not shown)")
