"""Text -> rule graph.  Every iptables text format is detected here and read into one Ruleset.

Where the text comes from (a file, standard input, a snapshot, the live host) is
:mod:`iptexplain.inputs`' business.
"""

from __future__ import annotations

from iptexplain.core.errors import InputError
import re
import sys
from typing import BinaryIO
from iptexplain.graph import Ruleset
from iptexplain.parse.detect import FORMATS, detect_format
from iptexplain.parse.partial import name_gaps
from iptexplain.parse.rough import clean, mark_elisions
from iptexplain.parse.save import parse_save

__all__ = ["FORMATS", "detect_format", "parse_text"]


def parse_text(text: str, source: str = "<input>", fmt: str = "auto", family: int | None = None,
               table: str | None = None) -> Ruleset:
    """Read any supported format; raise InputError (``FILE:LINE: message``) on bad input."""
    cleaned = clean(text)  # quoting, stray characters, elision lines (same line numbers)
    text = cleaned.text
    if fmt == "auto":
        fmt = detect_format(text)
    if fmt in ("save", "S"):
        rs = parse_save(text, source, family=family, table=table)
    elif fmt == "listing":
        # The listing reader compiles its many patterns at import (~25 ms): only for a listing.
        from iptexplain.parse.listing import parse_listing

        rs = parse_listing(text, source, family=family, table=table)
    elif fmt == "nft":
        # The nft reader (its grammar and expression modules, ~100 ms): only for an nft ruleset.
        from iptexplain.nft.reader import read_nft

        return read_nft(text, source)
    elif fmt == "nft-json":
        from iptexplain.nft.json_reader import read_nft_json  # the nft reader: see above

        return read_nft_json(text, source)
    else:
        raise InputError(f"unknown format `{fmt}' (expected one of {', '.join(FORMATS)})", source)
    cleaned.note(rs)
    if cleaned.elisions:
        mark_elisions(rs, cleaned.elisions)
    name_gaps(rs)
    return rs
