"""TEE: send a copy of the packet to another gateway; the original continues (libxt_TEE, mangle)."""

from __future__ import annotations

from iptexplain.core.addr import check_iface
from iptexplain.core.context import CONTINUE, Effect
from iptexplain.core.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Opt, OptType, Target
from iptexplain.ext.libxt_TPROXY import host


@register
class Tee(Target):
    name = "TEE"
    terminal = False
    table_only = ("mangle",)
    options = (
        Opt("gateway", "--gateway", host, invert=False),
        Opt("oif", "--oif", OptType("iface", lambda a: check_iface(a[0]), lambda v: [v]), invert=False),
    )

    def check(self) -> None:
        if not self.has("gateway"):
            raise OptionError("TEE: --gateway is required")

    # -- the -L face (tee_tg_print: " TEE gw:ADDR [oif=IF]") ------------------------------------
    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        words = self.save_args()
        out = "TEE gw:" + words[words.index("--gateway") + 1]
        if "--oif" in words:
            out += " oif=" + words[words.index("--oif") + 1]
        return out

    @classmethod
    def from_listing(cls, tail) -> "Tee":
        tail.expect("TEE")
        w = tail.take()
        if not w.startswith("gw:"):
            raise OptionError("TEE: expected gw:ADDR")
        opts: list = [("--gateway", False, [w[3:]])]
        if tail.peek() is not None and tail.peek().startswith("oif="):
            opts.append(("--oif", False, [tail.take()[4:]]))
        return cls.build(opts, spelled="TEE")  # type: ignore[return-value]

    def apply(self, pkts, ctx):
        """Send a copy to another gateway; the original continues."""
        return Effect(CONTINUE, note=f"a copy is sent to {self.value('gateway')}")
