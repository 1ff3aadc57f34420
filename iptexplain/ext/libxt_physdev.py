"""physdev: the bridge ports a bridged packet came in on / goes out of (libxt_physdev).

Only bridged traffic seen by iptables (``br_netfilter``) has physical devices; libvirt and
Docker-in-bridge setups use ``--physdev-is-bridged``.
"""

from __future__ import annotations

from iptexplain.addr import check_iface
from iptexplain.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, OptType, types

iface = OptType("iface", lambda a: check_iface(a[0]), lambda v: [v])


@register
class Physdev(Match):
    name = "physdev"
    options = (
        Opt("physdev_is_in", "--physdev-is-in", types.flag),
        Opt("physdev_in", "--physdev-in", iface),
        Opt("physdev_is_out", "--physdev-is-out", types.flag),
        Opt("physdev_out", "--physdev-out", iface),
        Opt("physdev_is_bridged", "--physdev-is-bridged", types.flag),
    )

    def check(self) -> None:
        if not self.values:
            raise OptionError("PHYSDEV: no physdev option specified")

    @property
    def physdev_in(self) -> tuple[str, bool] | None:
        v = self.get("physdev_in")
        return None if v is None else (v.value, v.invert)

    @property
    def physdev_out(self) -> tuple[str, bool] | None:
        v = self.get("physdev_out")
        return None if v is None else (v.value, v.invert)

    @property
    def is_bridged(self) -> bool | None:
        """True: must be bridged; False: must not be (``!``); None: not tested."""
        v = self.get("physdev_is_bridged")
        return None if v is None else not v.invert
