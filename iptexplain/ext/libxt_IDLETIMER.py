"""IDLETIMER: restart a named timer visible in sysfs each time a packet passes (libxt_IDLETIMER);
the packet continues."""

from __future__ import annotations

from iptexplain.core.context import CONTINUE, Effect
from iptexplain.core.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Opt, Target, types


@register
class IdleTimer(Target):
    name = "IDLETIMER"
    terminal = False
    options = (
        Opt("timeout", "--timeout", types.uint32, invert=False),
        Opt("label", "--label", types.word, invert=False),
        Opt("alarm", "--alarm", types.flag, invert=False),
        Opt("send_nl_msg", "--send_nl_msg", types.flag, invert=False),
    )

    def check(self) -> None:
        if not (self.has("timeout") and self.has("label")):
            raise OptionError("IDLETIMER: --timeout and --label are required")

    def apply(self, pkts, ctx):
        """Restart an idle timer and continue."""
        return Effect(CONTINUE, note=f"idle timer {self.value('label')} restarted")

    # -- the -L face (idletimer_tg_print_v1: " timeout:N label:L [alarm] [send_nl_msg]") -------
    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        out = [f"timeout:{self.value('timeout')}", f"label:{self.value('label')}"]
        out += [w for w in ("alarm", "send_nl_msg") if self.has(w)]
        return " ".join(out)

    @classmethod
    def from_listing(cls, tail) -> "IdleTimer":
        opts: list = []
        for word, flag in (("timeout:", "--timeout"), ("label:", "--label")):
            w = tail.take()
            if not w.startswith(word):
                raise OptionError(f"IDLETIMER: expected {word}")
            opts.append((flag, False, [w[len(word):]]))
        for word in ("alarm", "send_nl_msg"):
            if tail.take_if(word):
                opts.append(("--" + word, False, []))
        return cls.build(opts, spelled="IDLETIMER")  # type: ignore[return-value]
