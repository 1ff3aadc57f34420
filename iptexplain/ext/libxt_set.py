"""set: is the packet's address/port tuple in an ipset? (libxt_set, revision 4).

``--match-set NAME src,dst`` looks up a tuple built from the packet (source address, destination
port…, one direction per set dimension).  The set's content lives in the kernel, not in the
ruleset: a trace cannot decide it and forks, labelled with the set and the tuple.
"""

from __future__ import annotations

from dataclasses import dataclass

from iptexplain.core.errors import OptionError
from iptexplain.core.ipsets import decide_set
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, OptType, parse_uint, read_save_like, save_like_listing, types

IPSET_DIM_MAX = 6
IPSET_MAXNAMELEN = 32


@dataclass(frozen=True, slots=True)
class SetRef:
    """A set name and the direction of each dimension ("src"/"dst")."""

    name: str
    flags: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.name} {','.join(self.flags)}"


def parse_dirs(text: str) -> tuple[str, ...]:
    parts = text.split(",")
    if len(parts) > IPSET_DIM_MAX:
        raise OptionError(f"Can't be more src/dst options than {IPSET_DIM_MAX}.")
    out = []
    for p in parts:
        if p.startswith("src"):
            out.append("src")
        elif p.startswith("dst"):
            out.append("dst")
        else:
            raise OptionError("You must specify (the comma separated list of) 'src' or 'dst'.")
    return tuple(out)


def parse_setref(args: list[str]) -> SetRef:
    name, dirs = args
    if not dirs or dirs[0] in "-!":
        raise OptionError("--match-set requires two args.")
    if len(name) > IPSET_MAXNAMELEN - 1:
        raise OptionError(f"setname `{name}' too long, max {IPSET_MAXNAMELEN - 1} characters.")
    return SetRef(name, parse_dirs(dirs))


setref = OptType("setref", parse_setref, lambda v: [v.name, ",".join(v.flags)], nargs=2)
counter = OptType("counter", lambda a: parse_uint(a[0], 64), lambda v: [str(v)])


@register
class SetMatch(Match):
    name = "set"
    options = (
        Opt("match_set", "--match-set", setref, aliases=("--set",)),
        Opt("return_nomatch", "--return-nomatch", types.flag, invert=False),
        Opt("update_counters", "--update-counters", types.flag),
        Opt("update_subcounters", "--update-subcounters", types.flag),
        Opt("packets_eq", "--packets-eq", counter),
        Opt("packets_lt", "--packets-lt", counter, invert=False),
        Opt("packets_gt", "--packets-gt", counter, invert=False),
        Opt("bytes_eq", "--bytes-eq", counter),
        Opt("bytes_lt", "--bytes-lt", counter, invert=False),
        Opt("bytes_gt", "--bytes-gt", counter, invert=False),
    )

    def check(self) -> None:
        if not self.has("match_set"):
            raise OptionError("You must specify `--match-set' with proper arguments")
        for what in ("packets", "bytes"):
            if sum(self.has(f"{what}_{op}") for op in ("eq", "lt", "gt")) > 1:
                raise OptionError(f"only one of the --{what}-[eq|lt|gt] is allowed")

    @property
    def set_name(self) -> str:
        return self.value("match_set").name

    @property
    def flags(self) -> tuple[str, ...]:
        """Direction of each dimension, e.g. ("dst", "dst") for kube-proxy's ip,port sets."""
        return self.value("match_set").flags

    @property
    def inverted(self) -> bool:
        return self.get("match_set").invert  # type: ignore[union-attr]

    @property
    def return_nomatch(self) -> bool:
        return self.has("return_nomatch")

    def set_refs(self) -> list[tuple[str, int]]:
        """(set name, dimension) of every set the rule needs to exist in the kernel."""
        return [(self.set_name, len(self.flags))]

    def save_args(self) -> list[str]:
        out = (["!"] if self.inverted else []) + ["--match-set", self.set_name, ",".join(self.flags)]
        if self.return_nomatch:
            out.append("--return-nomatch")
        for key, flag in (("update_counters", "--update-counters"), ("update_subcounters", "--update-subcounters")):
            v = self.get(key)
            if v is not None and v.invert:
                out += ["!", flag]
        for what in ("packets", "bytes"):
            for op in ("eq", "lt", "gt"):
                v = self.get(f"{what}_{op}")
                if v is not None:
                    out += (["!"] if v.invert else []) + [f"--{what}-{op}", str(v.value)]
        return out

    def decide(self, pkts, ctx):
        """Is the packet's tuple in the set?  Decided from an ``ipset save`` dump when the
        trace has one, else a fork labelled with the set and the tuple."""
        return decide_set(self, pkts, ctx)

    # -- the -L face (set_print_v4: the save options without their dashes) ---------------------
    listing_keywords = ("match-set",)

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        return save_like_listing(self)

    @classmethod
    def from_listing(cls, tail) -> "SetMatch":
        return read_save_like(cls, tail, spelled="set")  # type: ignore[return-value]
