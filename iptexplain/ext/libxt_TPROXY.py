"""TPROXY: deliver the packet to a local transparent-proxy socket without rewriting it
(libxt_TPROXY, mangle PREROUTING); it also sets a mark for policy routing."""

from __future__ import annotations

from iptexplain.core.addr import int_to_ip, parse_ip
from iptexplain.core.context import UNKNOWN, Effect
from iptexplain.core.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Opt, OptType, Target, types

host = OptType("host", lambda a: parse_ip(a[0]), lambda v: [int_to_ip(v[1], v[0])])


@register
class TProxy(Target):
    name = "TPROXY"
    hooks = frozenset({"PREROUTING"})
    family_sensitive = True
    table_only = ("mangle",)
    options = (
        Opt("on_port", "--on-port", types.port, invert=False),
        Opt("on_ip", "--on-ip", host, invert=False),
        Opt("mark", "--tproxy-mark", types.markmask, invert=False),
    )

    def check(self) -> None:
        if not self.has("on_port"):
            raise OptionError("TPROXY: --on-port is required")

    @property
    def mark(self) -> tuple[int, int]:
        return self.value("mark", (0, 0))

    def save_args(self) -> list[str]:
        ip = self.value("on_ip")
        fam = ip[0] if ip else (self.nfproto or 4)
        ip_text = int_to_ip(ip[1], ip[0]) if ip else ("::" if fam == 6 else "0.0.0.0")
        value, mask = self.mark
        return ["--on-port", str(self.value("on_port")), "--on-ip", ip_text,
                "--tproxy-mark", f"0x{value:x}/0x{mask:x}"]

    # -- the -L face (tproxy_tg_print4: " TPROXY redirect IP:PORT mark 0xV/0xM") ---------------
    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        w = self.save_args()
        return f"TPROXY redirect {w[3]}:{w[1]} mark {w[5]}"

    @classmethod
    def from_listing(cls, tail) -> "TProxy":
        tail.expect("TPROXY", "redirect")
        ip, _, port = tail.take().rpartition(":")
        tail.expect("mark")
        opts = [("--on-port", False, [port]), ("--on-ip", False, [ip]), ("--tproxy-mark", False, [tail.take()])]
        return cls.build(opts, spelled="TPROXY", family=tail.family)  # type: ignore[return-value]

    def apply(self, pkts, ctx):
        """Hand the packet to a local transparent socket: the outcome depends on that socket
        and on policy routing by the mark, which the tracer does not model."""
        return Effect(UNKNOWN, note=f"TPROXY to port {self.value('on_port')}: delivered to a transparent "
                      "socket if one listens (with policy routing on the mark), else dropped")
