"""Which text this is: iptables-save, iptables -S, an iptables -L listing, or an nft ruleset."""

from __future__ import annotations

import re

# Every input iptexplain reads, in the words of the messages that list them.
ACCEPTED = ("iptables-save / ip6tables-save output (-c or not), iptables -S, an iptables -L / -nL / -nvL "
            "listing, `nft list ruleset' output (or nft -j), or an iptexplain snapshot")
FORMATS = ("auto", "save", "S", "listing", "nft", "nft-json")
# Blanks within a line only: a `\s*` after `^` under re.M also eats the newlines that follow, so
# every line of a run of blank lines would rescan the whole run (30 KB of them: 18 s).
_B = r"[^\S\n]"
_LISTING_RE = re.compile(rf"^{_B}*(?:>{_B}?)*Chain \S+ \((?:policy \w+|[0-9]+ references?|user-defined|ERROR)", re.M)
SAVE_RE = re.compile(rf"^{_B}*\*(?:raw|mangle|nat|filter|security){_B}*$", re.M)
# `nft list ruleset`: a table block at the start of a line.
NFT_RE = re.compile(rf"^{_B}*table{_B}+(?:(?:ip|ip6|inet|arp|bridge|netdev){_B}+)?\S+{_B}*\{{", re.M)
_JSON_START = re.compile(r"\s*\{")
_S_RE = re.compile(rf"^{_B}*(?:\[[0-9]+:[0-9]+\]{_B}*)?-[APN] \S+", re.M)


def has_save_table(text: str) -> bool:
    """``SAVE_RE`` over the text, after a one-character test (a 15 MB -S text: 0.5 ms, where
    the multi-line pattern takes ~60 ms to find nothing)."""
    return "*" in text and SAVE_RE.search(text) is not None


def has_listing(text: str) -> bool:
    """``_LISTING_RE`` over the text, after a one-character test (every listing header has a
    ``(``; kube-proxy's -S text has none)."""
    return "(" in text and _LISTING_RE.search(text) is not None


def detect_format(text: str) -> str:
    """'save' (iptables-save / restore), 'S' (iptables -S), 'listing' (iptables -L family),
    'nft' (``nft list ruleset``: table blocks, no iptables-save table header) or 'nft-json'
    (``nft -j list ruleset``: a JSON object whose first key is ``nftables``)."""
    if _JSON_START.match(text):
        # nft's JSON text module (its dataclasses, json) only for text that may be JSON
        from iptexplain.nft.json_text import looks_like_json

        if looks_like_json(text):
            return "nft-json"
    save = has_save_table(text)
    if NFT_RE.search(text[:200_000]) and not save:
        return "nft"
    if save:
        return "save"
    if has_listing(text):
        return "listing"
    if _S_RE.search(text):
        return "S"
    return "save"
