"""IDLETIMER: restart a named timer visible in sysfs each time a packet passes (libxt_IDLETIMER);
the packet continues."""

from __future__ import annotations

from iptexplain.errors import OptionError
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
        from iptexplain.netfilter.context import CONTINUE, Effect

        return Effect(CONTINUE, note=f"idle timer {self.value('label')} restarted")
