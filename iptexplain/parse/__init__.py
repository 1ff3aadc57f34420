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
from iptexplain.parse.combine import combine
from iptexplain.parse.deferred import GiveUp
from iptexplain.parse.deferred_s import DEFER_MIN, read_deferred_s
from iptexplain.parse.detect import _LISTING_RE, ACCEPTED, FORMATS, detect_format, has_listing, has_save_table
from iptexplain.parse.partial import name_gaps
from iptexplain.parse.rough import clean, mark_elisions
from iptexplain.parse.save import parse_save

__all__ = ["ACCEPTED", "FORMATS", "detect_format", "parse_text"]


_S_LINE_RE = re.compile(r"^\s*(?:\[\d+:\d+\]\s*)?-[APN] \S+")
_S_PROMPT_RE = re.compile(r"ip6?tables(?:-legacy|-nft)?\s(?:[^|;]*\s)?(?:-S|--list-rules)(?:\s|$)")


def split_mixed(text: str) -> tuple[str, str] | None:
    """A paste of ``iptables -S`` output and ``iptables -L`` listings together (a terminal
    session): ``(the -S text, the listing text)``, each with the other's lines blanked so that
    line numbers stay; None when the text is of one format.  The -S text keeps the prompts that
    name its tables (``iptables -t nat -S``)."""
    if not has_listing(text) or has_save_table(text):
        return None
    lines = text.split("\n")
    s_lines = [bool(_S_LINE_RE.match(ln)) for ln in lines]
    if not any(s_lines):
        return None
    s_text = "\n".join(ln if s or _S_PROMPT_RE.search(ln) else "" for ln, s in zip(lines, s_lines))
    l_text = "\n".join("" if s else ln for ln, s in zip(lines, s_lines))
    return s_text, l_text

def parse_text(text: str, source: str = "<input>", fmt: str = "auto", family: int | None = None,
               table: str | None = None, lazy: bool = False) -> Ruleset:
    """Read any supported format; raise InputError (``FILE:LINE: message``) on bad input.

    ``lazy`` (a trace): text in the layout iptables prints keeps each chain's rules as text until
    the trace reaches the chain -- an ``iptables -L`` listing's rows
    (:mod:`iptexplain.parse.listing_deferred`), large ``-S`` text's rule lines
    (:mod:`iptexplain.parse.deferred_s`), an nft ruleset's chains (:mod:`iptexplain.nft.deferred`)
    -- and the ruleset says so in a note.  Any other text is read whole."""
    if lazy and fmt in ("auto", "listing") and _LISTING_RE.search(text, 0, 1 << 16):
        # The listing modules (~25 ms of patterns at import): only for a listing.
        from iptexplain.parse.listing_deferred import read_listing_deferred

        try:
            rs = read_listing_deferred(text, source, family, table)
        except GiveUp:
            pass
        else:
            name_gaps(rs)
            rs.note("lazy", "rows were read into rules only in the chains this run looked at; `iptexplain "
                            "show' of the same input reads and checks every row")
            return rs
    if lazy and len(text) >= DEFER_MIN and fmt in ("auto", "S") and not has_listing(text) \
            and (fmt == "S" or detect_format(text) == "S"):
        # Large -S text: the scan gives up on anything clean() would change, so the text is what
        # the general reader would read.
        try:
            rs = read_deferred_s(text, source, family, table)
        except GiveUp:
            pass  # not in the layout iptables prints: the general reader reads it
        else:
            name_gaps(rs)
            show = f"`iptexplain show {source}'" if source != "<stdin>" else "`iptexplain show -' on the same input"
            rs.note("lazy", f"large input: rules were checked only in the chains this run looked at; {show} "
                            f"checks every line, as iptables-restore would")
            return rs
    cleaned = clean(text)  # quoting, stray characters, elision lines (same line numbers)
    text = cleaned.text
    mixed = split_mixed(text) if fmt == "auto" else None
    if fmt == "auto" and mixed is None:
        fmt = detect_format(text)
    if mixed is not None:
        # A terminal session with `iptables -S' and `iptables -L' output: one ruleset.

        rs = combine([parse_text(mixed[0], source, "S", family, table),
                      parse_text(mixed[1], source, "listing", family, table)], source)
    elif fmt in ("save", "S"):
        rs = parse_save(text, source, family=family, table=table)
    elif fmt == "listing":
        # The listing reader compiles its many patterns at import (~25 ms): only for a listing.
        from iptexplain.parse.listing import parse_listing

        rs = parse_listing(text, source, family=family, table=table)
    elif fmt == "nft":
        # The nft reader (its grammar and expression modules, ~100 ms): only for an nft ruleset.
        from iptexplain.nft.deferred import read_nft_lazy  # the nft reader: see above

        return read_nft_lazy(text, source, lazy=lazy)
    elif fmt == "nft-json":
        from iptexplain.nft.json_reader import read_nft_json  # the nft reader: see above

        return read_nft_json(text, source, lazy=lazy)
    else:
        raise InputError(f"unknown format `{fmt}' (expected one of {', '.join(FORMATS)})", source)
    cleaned.note(rs)
    if cleaned.elisions:
        mark_elisions(rs, cleaned.elisions)
    name_gaps(rs)
    return rs
