"""REDIRECT: DNAT to the host itself, the incoming interface's primary address (libxt_REDIRECT)."""

from __future__ import annotations

from iptexplain.ext import register
from iptexplain.ext.base import Opt, Target, types
from iptexplain.ext.libxt_MASQUERADE import portrange
from iptexplain.ext.nat_range import fmt_port_range, nat_listing, read_nat_listing
from iptexplain.core.nat import redirect


@register
class Redirect(Target):
    name = "REDIRECT"
    hooks = frozenset({"PREROUTING", "OUTPUT"})
    table_only = ("nat",)
    options = (
        Opt("to_ports", "--to-ports", portrange, invert=False),
        Opt("random", "--random", types.flag, invert=False),
    )

    # -- the -L face (REDIRECT_print: " redir ports LO-HI", then the flags) --------------------
    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        v = self.value("to_ports")
        return nat_listing(self, "redir ports ", [fmt_port_range(v)] if v else [])

    @classmethod
    def from_listing(cls, tail) -> "Redirect":
        opts = read_nat_listing(tail, "--to-ports", ("redir", "ports"), set(cls.option_map()))
        return cls.build(opts, spelled="REDIRECT")  # type: ignore[return-value]

    def apply(self, pkts, ctx):
        """DNAT to the host itself (nf_nat_redirect_ipv4/6)."""
        return redirect(pkts, ctx, self.value("to_ports"))
