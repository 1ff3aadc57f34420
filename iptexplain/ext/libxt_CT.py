"""CT: set up the connection tracking of a packet before it is tracked (libxt_CT, raw table).

``-j CT --notrack`` (and its old name ``-j NOTRACK``) leaves the packet untracked (state
UNTRACKED, no NAT); ``--helper ftp`` attaches a helper; ``--zone`` puts it in a conntrack zone.
The packet continues to the next rule (XT_CONTINUE).
"""

from __future__ import annotations

from iptexplain.core.context import CONTINUE, Effect
from iptexplain.core.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Opt, OptType, Target, parse_uint, types
from iptexplain.ext.libxt_NOTRACK import NoTrack

CT_EVENTS = ("new", "related", "destroy", "reply", "assured", "protoinfo", "helper", "mark",
             "natseqinfo", "secmark")
EXP_EVENTS = ("new",)


def _events(text: str, table: tuple[str, ...]) -> frozenset[str]:
    out = set()
    for w in text.split(","):
        if w not in table:
            raise OptionError(f"CT: unknown event type \"{w}\"")
        out.add(w)
    return frozenset(out)


def _zone(text: str) -> int | str:
    if text.lower() == "mark":
        return "mark"
    return parse_uint(text, 16)


ctevents = OptType("ctevents", lambda a: _events(a[0], CT_EVENTS), lambda v: [",".join(e for e in CT_EVENTS if e in v)])
expevents = OptType("expevents", lambda a: _events(a[0], EXP_EVENTS), lambda v: [",".join(e for e in EXP_EVENTS if e in v)])
zone = OptType("zone", lambda a: _zone(a[0]), lambda v: [str(v)])


@register
class CT(Target):
    name = "CT"
    terminal = False
    table_only = ("raw",)
    options = (
        Opt("notrack", "--notrack", types.flag, invert=False),
        Opt("helper", "--helper", types.word, invert=False),
        Opt("timeout", "--timeout", types.word, invert=False),
        Opt("ctevents", "--ctevents", ctevents, invert=False),
        Opt("expevents", "--expevents", expevents, invert=False),
        Opt("zone_orig", "--zone-orig", zone, invert=False),
        Opt("zone_reply", "--zone-reply", zone, invert=False),
        Opt("zone", "--zone", zone, invert=False),
    )

    def check(self) -> None:
        if sum(self.has(k) for k in ("zone", "zone_orig", "zone_reply")) > 1:
            raise OptionError("CT: only one of --zone, --zone-orig, --zone-reply")
        if len(self.value("helper", "")) > 15:
            raise OptionError("CT: --helper name too long")

    @property
    def notrack(self) -> bool:
        return self.has("notrack")

    @property
    def helper(self) -> str | None:
        return self.value("helper")

    @property
    def zone(self) -> tuple[int | str, str] | None:
        """(zone id or 'mark', direction 'both'|'orig'|'reply') when a zone is set."""
        for key, direction in (("zone", "both"), ("zone_orig", "orig"), ("zone_reply", "reply")):
            if self.has(key):
                return self.value(key), direction
        return None

    def save_args(self) -> list[str]:
        out: list[str] = []
        if self.notrack:
            out.append("--notrack")
        if self.helper:
            out += ["--helper", self.helper]
        if self.has("timeout"):
            out += ["--timeout", self.value("timeout")]
        if self.value("ctevents"):
            out += ["--ctevents"] + ctevents.fmt(self.value("ctevents"))
        if self.value("expevents"):
            out += ["--expevents"] + expevents.fmt(self.value("expevents"))
        z = self.zone
        if z is not None and (z[0] == "mark" or z[0] != 0):
            flag = {"both": "--zone", "orig": "--zone-orig", "reply": "--zone-reply"}[z[1]]
            out += [flag, str(z[0])]
        return out

    def apply(self, pkts, ctx):
        """Set up the packet's conntrack before it is tracked: ``--notrack`` leaves it
        UNTRACKED (no conntrack, no NAT); a helper or zone is attached; the packet continues."""
        if self.notrack:
            return Effect(CONTINUE, notrack=True, note="the packet will not be tracked (UNTRACKED, no NAT)")
        changes = {}
        if self.helper:
            changes["helper"] = self.helper
        if self.zone is not None:
            changes["zone"] = self.zone
        return Effect(CONTINUE, ct_changes=changes,
                      note=", ".join(f"{k} {v}" for k, v in changes.items()) or "conntrack template set")


    # -- the -L face (ct_print_v1: " CT notrack helper X timeout X ctevents a,b zone N") --------
    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        out = ["CT"]
        words = self.save_args()
        i = 0
        while i < len(words):
            w = words[i][2:]
            if w in ("zone", "zone-orig", "zone-reply", "helper", "timeout", "ctevents", "expevents"):
                out += [w, words[i + 1]]
                i += 2
            else:
                out.append(w)
                i += 1
        return " ".join(out)

    @classmethod
    def from_listing(cls, tail) -> "CT":
        if tail.take_if("NOTRACK"):  # -j NOTRACK is CT's alias: target column CT, text NOTRACK

            return NoTrack.build([], spelled="NOTRACK")  # type: ignore[return-value]
        tail.expect("CT")
        opts: list = []
        if tail.take_if("notrack"):
            opts.append(("--notrack", False, []))
        for word in ("helper", "timeout", "ctevents", "expevents", "zone", "zone-orig", "zone-reply"):
            if tail.take_if(word):
                opts.append(("--" + word, False, [tail.take()]))
        return cls.build(opts, spelled="CT")  # type: ignore[return-value]
