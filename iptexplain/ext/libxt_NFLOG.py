"""NFLOG: hand the packet to a userspace logger over nfnetlink (libxt_NFLOG); it continues."""

from __future__ import annotations

from iptexplain.core.context import CONTINUE, Effect
from iptexplain.core.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Opt, OptType, Target, read_save_like, save_like_listing, save_string, types

DEFAULT_THRESHOLD = 1


def _prefix(text: str) -> str:
    if not text:
        raise OptionError("NFLOG: --nflog-prefix may not be empty")
    if len(text) > 63:
        raise OptionError("Maximum prefix length 63 for --nflog-prefix")
    return text


prefix = OptType("nflogprefix", lambda a: _prefix(a[0]), lambda v: [save_string(v)])


@register
class Nflog(Target):
    name = "NFLOG"
    terminal = False
    options = (
        Opt("prefix", "--nflog-prefix", prefix, invert=False),
        Opt("group", "--nflog-group", types.uint16, invert=False),
        Opt("range", "--nflog-range", types.uint32, invert=False),
        Opt("size", "--nflog-size", types.uint32, invert=False),
        Opt("threshold", "--nflog-threshold", types.uint16, invert=False),
    )

    def check(self) -> None:
        if self.has("range") and self.has("size"):
            raise OptionError("NFLOG: --nflog-range and --nflog-size are exclusive")

    @property
    def group(self) -> int:
        return self.value("group", 0)

    @property
    def prefix(self) -> str:
        return self.value("prefix", "")

    def save_args(self) -> list[str]:
        out: list[str] = []
        if self.prefix:
            out += ["--nflog-prefix", save_string(self.prefix)]
        if self.group:
            out += ["--nflog-group", str(self.group)]
        if self.has("size"):
            out += ["--nflog-size", str(self.value("size"))]
        elif self.value("range"):
            out += ["--nflog-range", str(self.value("range"))]
        if self.value("threshold", DEFAULT_THRESHOLD) != DEFAULT_THRESHOLD:
            out += ["--nflog-threshold", str(self.value("threshold"))]
        return out

    def apply(self, pkts, ctx):
        """Hand a copy to user space (nflog group) and continue with the next rule."""
        return Effect(CONTINUE, note=f"copied to nflog group {self.group}" + (f" prefix {self.prefix!r}" if self.prefix else ""))

    # -- the -L face (nflog_print: the save options without their dashes) ----------------------
    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        return save_like_listing(self)

    @classmethod
    def from_listing(cls, tail) -> "Nflog":
        if tail.at_end():
            return cls.build([], spelled="NFLOG")  # type: ignore[return-value]
        return read_save_like(cls, tail, spelled="NFLOG")  # type: ignore[return-value]
