"""rt: the IPv6 routing header -- type, segments left, length, type-0 addresses (libip6t_rt)."""

from __future__ import annotations

import ipaddress

from iptexplain.core.errors import OptionError
from iptexplain.core.packets import Decision
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, OptType, types


def _addrs(text: str) -> tuple[str, ...]:
    out = []
    for part in text.split(","):
        try:
            out.append(str(ipaddress.IPv6Address(part)))
        except ValueError:
            raise OptionError(f"rt: bad address `{part}'") from None
    if len(out) > 16:
        raise OptionError("rt: too many addresses (at most 16)")
    return tuple(out)


addrs = OptType("addrs", lambda a: _addrs(a[0]), lambda v: [",".join(v)])


@register
class Rt(Match):
    name = "rt"
    family = 6
    options = (
        Opt("type", "--rt-type", types.uint32),
        Opt("segsleft", "--rt-segsleft", types.uintrange),
        Opt("len", "--rt-len", types.uint32),
        Opt("res", "--rt-0-res", types.flag, invert=False),
        Opt("addrs", "--rt-0-addrs", addrs, invert=False),
        Opt("not_strict", "--rt-0-not-strict", types.flag, invert=False),
    )

    def check(self) -> None:
        if (self.has("res") or self.has("addrs") or self.has("not_strict")) and (
            not self.has("type") or self.value("type") != 0 or self.get("type").invert  # type: ignore[union-attr]
        ):
            raise OptionError("rt: --rt-0-* options need `--rt-type 0'")
        if self.has("not_strict") and not self.has("addrs"):
            raise OptionError("rt: --rt-0-not-strict needs --rt-0-addrs")

    def save_args(self) -> list[str]:
        out: list[str] = []
        v = self.get("type")
        if v is not None:
            out += (["!"] if v.invert else []) + ["--rt-type", str(v.value)]
        v = self.get("segsleft")
        if v is not None and not (v.value == (0, 0xFFFFFFFF) and not v.invert):
            lo, hi = v.value
            out += (["!"] if v.invert else []) + ["--rt-segsleft", str(lo) if lo == hi else f"{lo}:{hi}"]
        v = self.get("len")
        if v is not None:
            out += (["!"] if v.invert else []) + ["--rt-len", str(v.value)]
        if self.has("res"):
            out.append("--rt-0-res")
        if self.has("addrs"):
            out += ["--rt-0-addrs", ",".join(self.value("addrs"))]
        if self.has("not_strict"):
            out.append("--rt-0-not-strict")
        return out

    def decide(self, pkts, ctx):
        """Tests on the IPv6 routing header: a described flow carries none, so no match."""
        return Decision.none(pkts, "no routing header in the flow")

    # -- the -L face (rt_print: " rt type:0 segsleft:2 length:8 reserved 0-addrs a,b 0-not-strict")
    listing_keywords = ("rt",)

    def listing(self, numeric: bool = True, *, family: int = 6, proto: str | None = None) -> str:
        out = ["rt"]
        v = self.get("type")
        if v is not None:
            out.append(f"type:{'!' if v.invert else ''}{v.value}")
        v = self.get("segsleft")
        if v is not None and not (v.value == (0, 0xFFFFFFFF) and not v.invert):
            lo, hi = v.value
            inv = "!" if v.invert else ""
            out.append(f"segsleft:{inv}{lo}" if lo == hi else f"segslefts:{inv}{lo}:{hi}")
        v = self.get("len")
        if v is not None:
            out.append(f"length:{'!' if v.invert else ''}{v.value}")
        if self.has("res"):
            out.append("reserved")
        if self.has("addrs"):
            out += ["0-addrs", ",".join(self.value("addrs"))]
        if self.has("not_strict"):
            out.append("0-not-strict")
        return " ".join(out)

    @classmethod
    def from_listing(cls, tail) -> "Rt":
        tail.expect("rt")
        opts: list = []
        for prefixes, flag in ((("type:",), "--rt-type"), (("segsleft:", "segslefts:"), "--rt-segsleft"),
                               (("length:",), "--rt-len")):
            w = tail.peek()
            for prefix in prefixes:
                if w is not None and w.startswith(prefix):
                    value = w[len(prefix):]
                    opts.append((flag, value.startswith("!"), [value.lstrip("!")]))
                    tail.pos += 1
                    break
        if tail.take_if("reserved"):
            opts.append(("--rt-0-res", False, []))
        if tail.take_if("0-addrs"):
            opts.append(("--rt-0-addrs", False, [tail.take()]))
        if tail.take_if("0-not-strict"):
            opts.append(("--rt-0-not-strict", False, []))
        return cls.build(opts, spelled="rt")  # type: ignore[return-value]
