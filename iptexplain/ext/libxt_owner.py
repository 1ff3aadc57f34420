"""owner: the local socket that created a packet (libxt_owner, OUTPUT and POSTROUTING only).

iptables resolves user and group names to numbers and saves numbers (``--uid-owner 1000`` or a
range ``1000-1005``); a name that could not be resolved here is kept as written.
"""

from __future__ import annotations

from dataclasses import dataclass

from iptexplain.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, OptType, types
from iptexplain.numbers import decimal, is_decimal, shown


@dataclass(frozen=True, slots=True)
class IdRange:
    """A uid/gid or an inclusive range of them; ``name`` when given by name."""

    low: int | None
    high: int | None
    name: str | None = None

    def __str__(self) -> str:
        if self.name is not None:
            return self.name
        return str(self.low) if self.low == self.high else f"{self.low}-{self.high}"


def parse_id_range(text: str) -> IdRange:
    lo, sep, hi = text.partition("-")
    if is_decimal(lo) and (not sep or is_decimal(hi)):
        try:
            a = decimal(lo, "id", 0xFFFFFFFE)
            b = decimal(hi, "id", 0xFFFFFFFE) if sep else a
        except OptionError:
            raise OptionError(f"owner: bad id range `{shown(text)}'") from None
        if b < a:
            raise OptionError(f"owner: bad id range `{shown(text)}'")
        return IdRange(a, b)
    if not text or sep and is_decimal(lo):
        raise OptionError(f"owner: bad id `{shown(text)}'")
    return IdRange(None, None, text)


idrange = OptType("idrange", lambda a: parse_id_range(a[0]), lambda v: [str(v)])


@register
class Owner(Match):
    name = "owner"
    hooks = frozenset({"OUTPUT", "POSTROUTING"})
    options = (
        Opt("socket_exists", "--socket-exists", types.flag),
        Opt("uid", "--uid-owner", idrange),
        Opt("gid", "--gid-owner", idrange),
        Opt("suppl_groups", "--suppl-groups", types.flag, invert=False),
    )

    def check(self) -> None:
        if self.has("suppl_groups") and not self.has("gid"):
            raise OptionError("owner: --suppl-groups requires --gid-owner")

    @property
    def uid(self) -> IdRange | None:
        return self.value("uid")

    @property
    def gid(self) -> IdRange | None:
        return self.value("gid")

    def decide(self, pkts, ctx):
        """The local socket's owner: only locally generated packets have one (OUTPUT,
        POSTROUTING); the flow does not say which user sends, so uid/gid tests fork."""
        from iptexplain.netfilter.packets import Decision

        if not pkts.from_host:
            return Decision.none(pkts, "no local socket: the packet was not generated here")
        tests = []
        for key, what in (("socket_exists", "a socket"), ("uid", "uid"), ("gid", "gid")):
            v = self.get(key)
            if v is None:
                continue
            if key == "socket_exists":
                tests.append(lambda p, v=v: Decision.none(p, "the sender's socket exists") if v.invert
                             else Decision.all(p, "the sender's socket exists"))
                continue
            want = f"{what} {v.value}"
            tests.append(lambda p, v=v, want=want: Decision.fork(
                p, f"owner {want}", f"sent by {'another than ' if v.invert else ''}{want}",
                f"sent by {'' if v.invert else 'another than '}{want}"))
        return Decision.conjunction(pkts, tests)

    # -- the -L face (owner_mt_print: one "[!] owner UID match N" item per option) -------------
    listing_keywords = ("owner", "incl.")
    _ITEMS = (("socket_exists", "--socket-exists", ("owner", "socket", "exists")),
              ("uid", "--uid-owner", ("owner", "UID", "match")),
              ("gid", "--gid-owner", ("owner", "GID", "match")),
              ("suppl_groups", "--suppl-groups", ("incl.", "suppl.", "groups")))

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        out: list[str] = []
        for key, _, words in self._ITEMS:
            v = self.get(key)
            if v is None:
                continue
            out += (["!"] if v.invert else []) + list(words)
            if key in ("uid", "gid"):
                out.append(str(v.value))
        return " ".join(out)

    @classmethod
    def from_listing(cls, tail) -> "Owner":
        opts: list = []
        for key, flag, words in cls._ITEMS:
            start = tail.pos
            inv = tail.invert()
            if tuple(tail.words[tail.pos : tail.pos + 3]) != words:
                tail.pos = start
                continue
            tail.pos += 3
            opts.append((flag, inv, [_listed_id(tail.take(), key)] if key in ("uid", "gid") else []))
        if not opts:
            raise OptionError("not an owner match")
        return cls.build(opts, spelled="owner")  # type: ignore[return-value]


def _listed_id(text: str, key: str) -> str:
    """-L without -n prints user and group names of the machine that printed it: back to the
    number where this machine knows the name (root is 0 everywhere)."""
    if is_decimal(text.replace("-", "")):
        return text
    try:
        if key == "uid":
            import pwd

            return str(pwd.getpwnam(text).pw_uid)
        import grp

        return str(grp.getgrnam(text).gr_gid)
    except (KeyError, ImportError):
        return text
