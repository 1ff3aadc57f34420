"""LOG: write the packet to the kernel log and continue (libxt_LOG)."""

from __future__ import annotations

from iptexplain.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Opt, OptType, Target, types

LEVELS = {"emerg": 0, "alert": 1, "crit": 2, "error": 3, "err": 3, "warning": 4, "warn": 4,
          "notice": 5, "info": 6, "debug": 7, "panic": 0}


def _level(text: str) -> int:
    if text.lower() in LEVELS:
        return LEVELS[text.lower()]
    if text.isdigit() and int(text) <= 7:
        return int(text)
    raise OptionError(f"log-level `{text}' unknown")


def _prefix(text: str) -> str:
    if len(text) > 29:
        raise OptionError("Maximum prefix length 29 for --log-prefix")
    return text


level = OptType("loglevel", lambda a: _level(a[0]), lambda v: [str(v)])
prefix = OptType("logprefix", lambda a: _prefix(a[0]), types.string.fmt)


@register
class Log(Target):
    name = "LOG"
    terminal = False
    options = (
        Opt("prefix", "--log-prefix", prefix, invert=False),
        Opt("level", "--log-level", level, invert=False),
        Opt("tcp_sequence", "--log-tcp-sequence", types.flag, invert=False),
        Opt("tcp_options", "--log-tcp-options", types.flag, invert=False),
        Opt("ip_options", "--log-ip-options", types.flag, invert=False),
        Opt("uid", "--log-uid", types.flag, invert=False),
        Opt("macdecode", "--log-macdecode", types.flag, invert=False),
    )

    def save_args(self) -> list[str]:
        out = super().save_args()
        if self.value("level") == 4:  # the default level is not printed
            i = out.index("--log-level")
            del out[i : i + 2]
        return out
