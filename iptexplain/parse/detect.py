"""Which iptables text this is: iptables-save, iptables -S, or an iptables -L listing."""

from __future__ import annotations

import re

FORMATS = ("auto", "save", "S", "listing")
_LISTING_RE = re.compile(r"^\s*(?:>\s?)*Chain \S+ \((?:policy \w+|\d+ references?|user-defined|ERROR)", re.M)
SAVE_RE = re.compile(r"^\s*\*(?:raw|mangle|nat|filter|security)\s*$", re.M)
_S_RE = re.compile(r"^\s*(?:\[\d+:\d+\]\s*)?-[APN] \S+", re.M)


def detect_format(text: str) -> str:
    """'save' (iptables-save / restore), 'S' (iptables -S) or 'listing' (iptables -L family)."""
    if SAVE_RE.search(text):
        return "save"
    if _LISTING_RE.search(text):
        return "listing"
    if _S_RE.search(text):
        return "S"
    return "save"
