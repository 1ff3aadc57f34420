"""recent: a list of recently seen addresses, set, checked, updated or removed (libxt_recent).

ufw and many hand-written firewalls rate-limit SSH with ``--set`` / ``--update --seconds 60
--hitcount 4``.  The list lives in the kernel and depends on past packets: a trace cannot know
it, so the tracer forks on the check operations.
"""

from __future__ import annotations

from iptexplain.core.addr import Address, int_to_ip, parse_ip
from iptexplain.core.errors import OptionError
from iptexplain.core.packets import Decision
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, OptType, parse_uint, types

OPERATIONS = ("set", "rcheck", "update", "remove")


def _mask(text: str) -> tuple[int, int]:
    family, value = parse_ip(text)
    return family, value


mask = OptType("mask", lambda a: _mask(a[0]), lambda v: [int_to_ip(v[1], v[0])])


def _seconds(text: str) -> int:
    v = parse_uint(text)
    if v < 1:
        raise OptionError("recent: --seconds must be at least 1")
    return v


@register
class Recent(Match):
    name = "recent"
    family_sensitive = True
    options = (
        Opt("set", "--set", types.flag),
        Opt("rcheck", "--rcheck", types.flag),
        Opt("update", "--update", types.flag),
        Opt("remove", "--remove", types.flag),
        Opt("seconds", "--seconds", OptType("seconds", lambda a: _seconds(a[0]), lambda v: [str(v)]), invert=False),
        Opt("reap", "--reap", types.flag, invert=False),
        Opt("hitcount", "--hitcount", types.uint32, invert=False),
        Opt("rttl", "--rttl", types.flag, invert=False),
        Opt("name", "--name", types.word, invert=False),
        Opt("rsource", "--rsource", types.flag, invert=False),
        Opt("rdest", "--rdest", types.flag, invert=False),
        Opt("mask", "--mask", mask, invert=False),
    )

    def check(self) -> None:
        ops = [o for o in OPERATIONS if self.has(o)]
        if len(ops) != 1:
            raise OptionError("recent: you must specify one of `--set', `--rcheck' `--update' or `--remove'")
        if self.has("reap") and not self.has("seconds"):
            raise OptionError("recent: --reap requires --seconds")
        if self.has("rttl") and ops[0] in ("set", "remove"):
            raise OptionError("recent: --rttl may only be used with --rcheck or --update")
        if (self.has("seconds") or self.has("hitcount")) and ops[0] in ("set", "remove"):
            raise OptionError("recent: --seconds and --hitcount only go with --rcheck or --update")
        if self.has("rsource") and self.has("rdest"):
            raise OptionError("recent: --rsource and --rdest are mutually exclusive")
        if len(self.list_name) > 199:
            raise OptionError("recent: --name too long")

    @property
    def operation(self) -> str:
        """set, rcheck, update or remove."""
        return next(o for o in OPERATIONS if self.has(o))

    @property
    def inverted(self) -> bool:
        return self.get(self.operation).invert  # type: ignore[union-attr]

    @property
    def list_name(self) -> str:
        return self.value("name", "DEFAULT")

    @property
    def side(self) -> str:
        """Which address is recorded/checked: 'source' (default) or 'dest'."""
        return "dest" if self.has("rdest") else "source"

    @property
    def seconds(self) -> int | None:
        return self.value("seconds")

    @property
    def hitcount(self) -> int | None:
        return self.value("hitcount")

    def mask_address(self, family: int) -> Address:
        m = self.value("mask")
        bits = 32 if family == 4 else 128
        value = m[1] if m is not None else (1 << bits) - 1
        return Address(family, value, value)

    def save_args(self) -> list[str]:
        out = ["!"] if self.inverted else []
        out.append("--" + self.operation)
        if self.has("seconds"):
            out += ["--seconds", str(self.seconds)]
        if self.has("reap"):
            out.append("--reap")
        if self.hitcount:
            out += ["--hitcount", str(self.hitcount)]
        if self.has("rttl"):
            out.append("--rttl")
        out += ["--name", self.list_name]
        m = self.value("mask")
        if m is not None:
            out += ["--mask", int_to_ip(m[1], m[0])]
        else:  # the family's full mask; a rule of unknown family is IPv4, as its table will be
            out += ["--mask", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff" if self.nfproto == 6 else "255.255.255.255"]
        out.append("--rdest" if self.side == "dest" else "--rsource")
        return out

    def decide(self, pkts, ctx):
        """``--set`` always matches (it records the address); ``--rcheck``/``--update``/
        ``--remove`` depend on the kernel's list, which a trace cannot see: a fork."""
        op = self.operation
        side = "source" if self.side == "source" else "destination"
        if op == "set":
            if self.inverted:
                return Decision.none(pkts, f"! --set never matches (list {self.list_name})")
            return Decision.all(pkts, f"{side} added to list {self.list_name}")
        window = f" within {self.seconds}s" if self.seconds else ""
        hits = f" at least {self.hitcount} times" if self.hitcount else ""
        seen = f"{side} seen in list {self.list_name}{hits}{window}"
        yes, no = seen, f"{side} not seen in list {self.list_name}{hits}{window}"
        if self.inverted:
            yes, no = no, yes
        return Decision.fork(pkts, f"recent --{op} --name {self.list_name}", yes, no)

    # -- the -L face (recent_print) ------------------------------------------------------------
    # " [!] recent: SET|CHECK|UPDATE|REMOVE [seconds: N] [reap] [hit_count: N] [TTL-Match]
    #   name: NAME side: source|dest [mask: M]" (iptables 1.4 printed no mask).
    listing_keywords = ("recent:",)
    _OPS = {"set": "SET", "rcheck": "CHECK", "update": "UPDATE", "remove": "REMOVE"}

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        out = ["!"] if self.inverted else []
        out += ["recent:", self._OPS[self.operation]]
        if self.has("seconds"):
            out += ["seconds:", str(self.seconds)]
        if self.has("reap"):
            out.append("reap")
        if self.hitcount:
            out += ["hit_count:", str(self.hitcount)]
        if self.has("rttl"):
            out.append("TTL-Match")
        out += ["name:", self.list_name, "side:", "dest" if self.side == "dest" else "source"]
        m = self.value("mask")
        if m is not None:
            out += ["mask:", int_to_ip(m[1], m[0])]
        else:
            out += ["mask:", "255.255.255.255" if family == 4 else "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"]
        return " ".join(out)

    @classmethod
    def from_listing(cls, tail) -> "Recent":
        inv = tail.invert()
        tail.expect("recent:")
        ops = {v: k for k, v in cls._OPS.items()}
        op = ops.get(tail.take())
        if op is None:
            raise OptionError("recent: unknown operation")
        opts: list = [("--" + op, inv, [])]
        if tail.take_if("seconds:"):
            opts.append(("--seconds", False, [tail.take()]))
        if tail.take_if("reap"):
            opts.append(("--reap", False, []))
        if tail.take_if("hit_count:"):
            opts.append(("--hitcount", False, [tail.take()]))
        if tail.take_if("TTL-Match"):
            opts.append(("--rttl", False, []))
        tail.expect("name:")
        opts.append(("--name", False, [tail.take()]))
        if tail.take_if("side:"):
            opts.append(("--rdest" if tail.take() == "dest" else "--rsource", False, []))
        if tail.take_if("mask:"):
            opts.append(("--mask", False, [tail.take()]))
        return cls.build(opts, spelled="recent", family=tail.family)  # type: ignore[return-value]
