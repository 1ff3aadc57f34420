"""AUDIT: write an audit record for the packet (libxt_AUDIT); the packet continues."""

from __future__ import annotations

from iptexplain.core.context import CONTINUE, Effect
from iptexplain.core.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Opt, OptType, Target

_TYPES = {"accept": "accept", "drop": "drop", "reject": "reject"}


def _type(text: str) -> str:
    if text not in _TYPES:
        raise OptionError(f"Bad action type value \"{text}\"")
    return text


@register
class Audit(Target):
    name = "AUDIT"
    terminal = False
    options = (Opt("type", "--type", OptType("audittype", lambda a: _type(a[0]), lambda v: [v]), invert=False),)

    def check(self) -> None:
        if not self.has("type"):
            raise OptionError("AUDIT: --type is required")

    # -- the -L face (audit_print: " AUDIT accept|drop|reject") --------------------------------
    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        return "AUDIT " + " ".join(self.save_args()[1:])

    @classmethod
    def from_listing(cls, tail) -> "Audit":
        tail.expect("AUDIT")
        return cls.build([("--type", False, [tail.take()])], spelled="AUDIT")  # type: ignore[return-value]

    def apply(self, pkts, ctx):
        """Write an audit record and continue."""
        return Effect(CONTINUE, note="audit record written")
