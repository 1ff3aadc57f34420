"""Header rewrites lint follows: what a MARK / TOS / DSCP / TTL / HL rule changes, and which
rules read those fields -- shared by lint's "undone" within a chain (:mod:`.lint`) and across
tables (:mod:`.undone`)."""

from __future__ import annotations

from iptexplain.graph import Rule
from iptexplain.nft.model import NftRule

# Per field: the matches that read it, the targets that read it.  LOG and NFLOG print the mark
# (``MARK=0x…``), TOS and TTL: reading, too.
FIELD_READERS = {"mark": ({"mark", "connmark"}, {"CONNMARK", "LOG", "NFLOG", "ULOG", "AUDIT", "TRACE"}),
                 "tos": ({"tos", "dscp", "ecn"}, {"TOS", "DSCP", "ECN", "LOG", "NFLOG", "ULOG"}),
                 "ttl": ({"ttl", "hl"}, {"TTL", "HL", "LOG", "NFLOG", "ULOG"})}
# nft rules: words of their text that read the field (``meta mark``, ``ct mark set meta mark``,
# ``ip dscp``, ``log``): any of them, and the rule counts as reading it.
NFT_READERS = {"mark": ("mark", "log"), "tos": ("dscp", "tos", "ecn", "log"), "ttl": ("ttl", "hoplimit", "log")}


def rewrite_of(rule: Rule) -> tuple[str, int, int] | None:
    """(field, bits changed, bits set whatever they were) of a MARK / TOS / DSCP / TTL / HL
    target; None for any other rule."""
    t = rule.target
    if t is None or rule.jump is not None:
        return None
    name = rule.target_name
    try:
        if name == "MARK":
            value, mask = t.xmark
            return "mark", mask | value, mask
        if name == "TOS":
            value, mask = t.xtos
            return "tos", mask | value, mask
        if name == "DSCP":
            return "tos", 0xFC, 0xFC
        if name in ("TTL", "HL"):
            op, _ = t.operation
            return ("ttl", 0xFF, 0xFF) if op == "set" else ("ttl", 0xFF, 0)
    except (AttributeError, TypeError, ValueError):
        return None
    return None


def reads(rule: Rule, fld: str) -> bool:
    """Whether the rule reads the field: a match on it, a target that copies or prints it, or
    changes part of it keeping the rest (``--set-tos 0x10/0x10``, ``--ttl-inc``); a target
    that sets the bits it changes whatever they were (``--set-dscp``, ``--ttl-set``) does not."""
    if isinstance(rule, NftRule):
        return any(w in rule.text for w in NFT_READERS[fld])
    matches, targets = FIELD_READERS[fld]
    if any(getattr(m, "name", "") in matches for m in rule.matches):
        return True
    if rule.target_name not in targets:
        return False
    w = rewrite_of(rule)
    return not (w is not None and w[0] == fld and w[1] == w[2])
