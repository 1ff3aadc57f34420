"""LOG: write the packet to the kernel log and continue (libxt_LOG)."""

from __future__ import annotations

from iptexplain.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Opt, OptType, Target, types
from iptexplain.numbers import decimal, is_decimal, shown

LEVELS = {"emerg": 0, "alert": 1, "crit": 2, "error": 3, "err": 3, "warning": 4, "warn": 4,
          "notice": 5, "info": 6, "debug": 7, "panic": 0}


def _level(text: str) -> int:
    if text.lower() in LEVELS:
        return LEVELS[text.lower()]
    if is_decimal(text) and len(text) <= 3 and int(text) <= 7:
        return int(text)
    raise OptionError(f"log-level `{shown(text)}' unknown")


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

    # -- the -L face (LOG_print) ---------------------------------------------------------------
    # -n: "LOG flags N level N"; names: "LOG level warn tcp-sequence ..."; then prefix "…".
    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        level = self.value("level", 4)
        if numeric:
            flags = sum(bit for key, bit, _ in LOG_FLAGS if self.has(key))
            out = f"LOG flags {flags} level {level}"
        else:
            out = f"LOG level {LEVEL_NAMES.get(level, level)}"
            out += "".join(f" {word}" for key, _, word in LOG_FLAGS if self.has(key))
        prefix = self.value("prefix")
        if prefix:
            out += f' prefix "{prefix}"'
        return out

    @classmethod
    def from_listing(cls, tail) -> "Log":
        from iptexplain.ext.base import unquote_listing

        tail.expect("LOG")
        opts: list = []
        if tail.take_if("flags"):
            bits = decimal(tail.take(), "LOG flags", 0xFF)
            if bits & ~0x2F:
                raise OptionError(f"LOG: unknown flags 0x{bits:x}")
            opts += [(flag, False, []) for key, bit, word in LOG_FLAGS
                     if bits & bit for flag in ["--log-" + word]]
        tail.expect("level")
        opts.append(("--log-level", False, [tail.take()]))
        for key, bit, word in LOG_FLAGS:
            if tail.take_if(word):
                opts.append(("--log-" + word, False, []))
        if tail.take_if("prefix"):
            opts.append(("--log-prefix", False, [unquote_listing(tail.take())]))
        return cls.build(opts, spelled="LOG")  # type: ignore[return-value]

    def apply(self, pkts, ctx):
        """Write to the kernel log and continue with the next rule."""
        from iptexplain.netfilter.context import CONTINUE, Effect

        prefix = self.value("prefix")
        return Effect(CONTINUE, note=f"logged{' with prefix ' + repr(prefix) if prefix else ''}")


# (option key, XT_LOG_* bit, the word -L prints and --log-WORD) in LOG_print's order.
LOG_FLAGS = (("tcp_sequence", 0x01, "tcp-sequence"), ("tcp_options", 0x02, "tcp-options"),
             ("ip_options", 0x04, "ip-options"), ("uid", 0x08, "uid"), ("macdecode", 0x20, "macdecode"))
# priority2name: the first name glibc's prioritynames table has for each level.
LEVEL_NAMES = {0: "emerg", 1: "alert", 2: "crit", 3: "err", 4: "warn", 5: "notice", 6: "info", 7: "debug"}
