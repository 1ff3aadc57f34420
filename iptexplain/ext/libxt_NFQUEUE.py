"""NFQUEUE: hand the packet to a userspace program over nfnetlink_queue (libxt_NFQUEUE).

The verdict comes from that program; with ``--queue-bypass`` the packet is accepted when no
program listens, otherwise it is dropped.
"""

from __future__ import annotations

from iptexplain.core.context import QUEUE, Effect
from iptexplain.core.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Opt, OptType, Target, parse_uintrange, types

balance = OptType("balance", lambda a: parse_uintrange(a[0], 16), lambda v: [f"{v[0]}:{v[1]}"])


@register
class NfQueue(Target):
    name = "NFQUEUE"
    options = (
        Opt("queue_num", "--queue-num", types.uint16, invert=False),
        Opt("queue_balance", "--queue-balance", balance, invert=False),
        Opt("bypass", "--queue-bypass", types.flag, invert=False),
        Opt("cpu_fanout", "--queue-cpu-fanout", types.flag, invert=False),
    )

    def check(self) -> None:
        if self.has("queue_num") and self.has("queue_balance"):
            raise OptionError("NFQUEUE: --queue-num and --queue-balance are exclusive")
        if self.has("queue_balance"):
            lo, hi = self.value("queue_balance")
            if lo > hi:
                raise OptionError("NFQUEUE: bad range for --queue-balance")
        if self.has("cpu_fanout") and not self.has("queue_balance"):
            raise OptionError("NFQUEUE: --queue-cpu-fanout requires --queue-balance")

    @property
    def queues(self) -> tuple[int, int]:
        if self.has("queue_balance"):
            return self.value("queue_balance")
        n = self.value("queue_num", 0)
        return (n, n)

    @property
    def bypass(self) -> bool:
        return self.has("bypass")

    def save_args(self) -> list[str]:
        lo, hi = self.queues
        out = ["--queue-balance", f"{lo}:{hi}"] if hi > lo else ["--queue-num", str(lo)]
        if self.bypass:
            out.append("--queue-bypass")
        if self.has("cpu_fanout"):
            out.append("--queue-cpu-fanout")
        return out

    # -- the -L face (NFQUEUE_print_v3: " NFQUEUE num N|balance A:B [bypass] [cpu-fanout]") -----
    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        words = self.save_args()
        out = ["NFQUEUE"]
        if "--queue-balance" in words:
            out += ["balance", words[words.index("--queue-balance") + 1]]
        else:
            num = words[words.index("--queue-num") + 1] if "--queue-num" in words else "0"
            out += ["num", num]
        if "--queue-bypass" in words:
            out.append("bypass")
        if "--queue-cpu-fanout" in words:
            out.append("cpu-fanout")
        return " ".join(out)

    @classmethod
    def from_listing(cls, tail) -> "NfQueue":
        tail.expect("NFQUEUE")
        opts: list = []
        if tail.take_if("balance"):
            opts.append(("--queue-balance", False, [tail.take()]))
        else:
            tail.expect("num")
            opts.append(("--queue-num", False, [tail.take()]))
        if tail.take_if("bypass"):
            opts.append(("--queue-bypass", False, []))
        if tail.take_if("cpu-fanout"):
            opts.append(("--queue-cpu-fanout", False, []))
        return cls.build(opts, spelled="NFQUEUE")  # type: ignore[return-value]

    def apply(self, pkts, ctx):
        """Hand the packet to a program in user space, which gives the verdict: a fork.
        With ``--queue-bypass`` and no program listening the packet is accepted."""
        lo, hi = self.queues
        q = str(lo) if lo == hi else f"{lo}:{hi}"
        return Effect(QUEUE, queue=q, note="no program listening: accepted (--queue-bypass)" if self.bypass
                      else "no program listening: dropped")
