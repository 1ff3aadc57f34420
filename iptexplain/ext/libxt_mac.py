"""mac: the Ethernet source address of a packet arriving on an Ethernet device (libxt_mac).

Real rulesets published for research anonymize MAC addresses as ``XX:XX:XX:XX:XX:XX``; iptables
refuses them ("Invalid MAC address specified").  They are read here as :data:`ANONYMIZED` -- a MAC
that is some definite address nobody knows -- so such dumps can still be shown and traced (the
tracer cannot decide the match and forks on it); the ruleset carries a note saying so.
"""

from __future__ import annotations

from dataclasses import dataclass

from iptexplain.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, OptType
from iptexplain.numbers import hexadecimal


@dataclass(frozen=True, slots=True)
class MacAddress:
    """Six octets; ``octets is None`` for an anonymized (unknown) address, kept as written."""

    octets: tuple[int, ...] | None
    text: str = ""

    @property
    def anonymized(self) -> bool:
        return self.octets is None

    def __str__(self) -> str:
        if self.octets is None:
            return self.text
        return ":".join(f"{o:02x}" for o in self.octets)


def parse_mac(text: str) -> MacAddress:
    """``aa:bb:cc:dd:ee:ff`` as xtables_parse_mac reads it (exactly 17 characters)."""
    if len(text) == 17 and text.upper() == "XX:XX:XX:XX:XX:XX":
        return MacAddress(None, text)
    parts = text.split(":")
    if len(text) != 17 or len(parts) != 6:
        raise OptionError("Invalid MAC address specified.")
    try:
        octets = tuple(hexadecimal(p, maximum=0xFF) for p in parts)
    except OptionError:
        raise OptionError("Invalid MAC address specified.") from None
    if any(len(p) != 2 for p in parts):
        raise OptionError("Invalid MAC address specified.")
    return MacAddress(octets)


ANONYMIZED_NOTE = (
    "anonymized",
    "MAC addresses anonymized as XX:XX:XX:XX:XX:XX (iptables itself refuses them) are read as "
    "unknown addresses: a trace cannot decide those matches and forks on them",
)

macaddr = OptType("mac", lambda a: parse_mac(a[0]), lambda v: [str(v)])


@register
class Mac(Match):
    name = "mac"
    may_note = True
    hooks = frozenset({"PREROUTING", "INPUT", "FORWARD"})
    options = (Opt("source", "--mac-source", macaddr),)

    def check(self) -> None:
        if not self.has("source"):
            raise OptionError("mac: --mac-source is required")

    @property
    def source(self) -> MacAddress:
        return self.value("source")

    @property
    def anonymized(self) -> bool:
        return self.source.anonymized

    def notes(self) -> tuple[tuple[str, str], ...]:
        return (ANONYMIZED_NOTE,) if self.anonymized else ()

    def decide(self, pkts, ctx):
        """The sender's Ethernet address is not part of a described flow: a fork (and an
        anonymized address is unknown to everyone)."""
        from iptexplain.netfilter.packets import Decision

        v = self.get("source")
        neg = "not " if v.invert else ""
        return Decision.fork(pkts, f"mac source {v.value}", f"sender MAC {neg}{v.value}",
                             f"sender MAC {'' if v.invert else 'not '}{v.value}")

    # -- the -L face (mac_print: " MAC [! ]xx:xx:xx:xx:xx:xx") ---------------------------------
    listing_keywords = ("MAC",)

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        v = self.get("source")
        return f"MAC {'! ' if v.invert else ''}{str(v.value).lower()}"

    @classmethod
    def from_listing(cls, tail) -> "Mac":
        tail.expect("MAC")
        inv = tail.invert()
        return cls.build([("--mac-source", inv, [tail.take()])], spelled="mac")  # type: ignore[return-value]
