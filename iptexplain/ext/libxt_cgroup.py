"""cgroup: the control group of the local socket that sent the packet (libxt_cgroup)."""

from __future__ import annotations

from iptexplain.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, types


@register
class Cgroup(Match):
    name = "cgroup"
    options = (
        Opt("path", "--path", types.string),
        Opt("cgroup", "--cgroup", types.uint32),
    )

    def check(self) -> None:
        if not self.values:
            raise OptionError("cgroup: Either --path or --cgroup must be given")
