"""SET: add the packet's tuple to an ipset, or delete it (libxt_SET, revision 3); continues."""

from __future__ import annotations

from iptexplain.core.context import CONTINUE, Effect
from iptexplain.core.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Opt, Target, read_save_like, save_like_listing, types
from iptexplain.ext.libxt_set import SetRef, setref


@register
class SetTarget(Target):
    name = "SET"
    terminal = False
    options = (
        Opt("add_set", "--add-set", setref, invert=False),
        Opt("del_set", "--del-set", setref, invert=False),
        Opt("exist", "--exist", types.flag, invert=False),
        Opt("timeout", "--timeout", types.uint32, invert=False),
        Opt("map_set", "--map-set", setref, invert=False),
        Opt("map_mark", "--map-mark", types.flag, invert=False),
        Opt("map_prio", "--map-prio", types.flag, invert=False),
        Opt("map_queue", "--map-queue", types.flag, invert=False),
    )

    def check(self) -> None:
        if not (self.has("add_set") or self.has("del_set") or self.has("map_set")):
            raise OptionError("You must specify either `--add-set' or `--del-set'")
        if self.has("map_set") and (self.has("add_set") or self.has("del_set")):
            raise OptionError("SET target: --map-set cannot be combined with --add-set/--del-set")

    @property
    def add_set(self) -> SetRef | None:
        return self.value("add_set")

    @property
    def del_set(self) -> SetRef | None:
        return self.value("del_set")

    def set_refs(self) -> list[tuple[str, int]]:
        return [(r.name, len(r.flags)) for r in (self.value(k) for k in ("add_set", "del_set", "map_set")) if r]

    def save_args(self) -> list[str]:
        out: list[str] = []
        if self.add_set:
            out += ["--add-set"] + setref.fmt(self.add_set)
        if self.has("exist"):
            out.append("--exist")
        if self.has("timeout"):
            out += ["--timeout", str(self.value("timeout"))]
        if self.del_set:
            out += ["--del-set"] + setref.fmt(self.del_set)
        if self.has("map_set"):
            out += ["--map-set"] + setref.fmt(self.value("map_set"))
        for k in ("map_mark", "map_prio", "map_queue"):
            if self.has(k):
                out.append("--" + k.replace("_", "-"))
        return out

    def apply(self, pkts, ctx):
        """Add the packet's tuple to (or delete it from) an ipset and continue."""
        parts = []
        if self.add_set:
            parts.append(f"added to set {self.add_set.name}")
        if self.del_set:
            parts.append(f"deleted from set {self.del_set.name}")
        if self.has("map_set"):
            parts.append(f"properties mapped from set {self.value('map_set').name}")
        return Effect(CONTINUE, note=", ".join(parts))

    # -- the -L face (set_target_print_v3: the save options without their dashes) --------------
    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        return save_like_listing(self)

    @classmethod
    def from_listing(cls, tail) -> "SetTarget":
        return read_save_like(cls, tail, spelled="SET")  # type: ignore[return-value]
