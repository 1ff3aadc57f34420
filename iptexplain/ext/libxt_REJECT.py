"""REJECT: drop the packet and answer with an ICMP error or a TCP reset (libipt/libip6t_REJECT)."""

from __future__ import annotations

from iptexplain.core.context import REJECT, Effect
from iptexplain.core.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Opt, OptType, Target

# alias -> canonical, for both families (the canonical name says which family it belongs to).
REJECT_TYPES: dict[str, str] = {
    "icmp-net-unreachable": "icmp-net-unreachable", "net-unreach": "icmp-net-unreachable",
    "icmp-host-unreachable": "icmp-host-unreachable", "host-unreach": "icmp-host-unreachable",
    "icmp-proto-unreachable": "icmp-proto-unreachable", "proto-unreach": "icmp-proto-unreachable",
    "icmp-port-unreachable": "icmp-port-unreachable",
    "icmp-net-prohibited": "icmp-net-prohibited", "net-prohib": "icmp-net-prohibited",
    "icmp-host-prohibited": "icmp-host-prohibited", "host-prohib": "icmp-host-prohibited",
    "icmp-admin-prohibited": "icmp-admin-prohibited", "admin-prohib": "icmp-admin-prohibited",
    "tcp-reset": "tcp-reset", "tcp-rst": "tcp-reset",
    "icmp6-no-route": "icmp6-no-route", "no-route": "icmp6-no-route",
    "icmp6-adm-prohibited": "icmp6-adm-prohibited", "adm-prohibited": "icmp6-adm-prohibited",
    "icmp6-addr-unreachable": "icmp6-addr-unreachable", "addr-unreach": "icmp6-addr-unreachable",
    "icmp6-port-unreachable": "icmp6-port-unreachable",
    "icmp6-policy-fail": "icmp6-policy-fail", "policy-fail": "icmp6-policy-fail",
    "icmp6-reject-route": "icmp6-reject-route", "reject-route": "icmp6-reject-route",
}
# "port-unreach" means the v4 or the v6 code depending on the table's family.
AMBIGUOUS = {"port-unreach", "icmp-port-unreach"}


def _reject_type(text: str) -> str:
    if text in AMBIGUOUS:
        return "port-unreach"
    if text not in REJECT_TYPES:
        raise OptionError(f"unknown reject type \"{text}\"")
    return REJECT_TYPES[text]


reject_with = OptType("rejectwith", lambda a: _reject_type(a[0]), lambda v: [v])


@register
class Reject(Target):
    name = "REJECT"
    table_only = ("filter", "mangle", "raw", "security")
    hooks = frozenset({"INPUT", "FORWARD", "OUTPUT"})
    options = (Opt("with", "--reject-with", reject_with, invert=False),)

    def reply(self, family: int) -> str:
        """The answer the kernel sends: its canonical name for this family."""
        v = self.value("with")
        if v is None or v == "port-unreach":
            return "icmp6-port-unreachable" if family == 6 else "icmp-port-unreachable"
        return v

    def save_args(self) -> list[str]:
        """REJECT_save always prints the reply, the family's default included."""
        fam = self.nfproto or (6 if str(self.value("with", "")).startswith("icmp6") else 4)
        return ["--reject-with", self.reply(fam)]

    # -- the -L face (REJECT_print: " reject-with NAME", always, with the family's default) ----
    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        return f"reject-with {self.reply(family)}"

    @classmethod
    def from_listing(cls, tail) -> "Reject":
        opts = []
        if tail.take_if("reject-with"):
            opts.append(("--reject-with", False, [tail.take()]))
        return cls.build(opts, spelled="REJECT")  # type: ignore[return-value]

    def apply(self, pkts, ctx):
        """Drop the packet and answer it; the answer is a new packet sent through OUTPUT."""
        return Effect(REJECT, reply=self.reply(pkts.family))
