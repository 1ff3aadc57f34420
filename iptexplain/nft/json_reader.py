"""Read ``nft -j list ruleset`` into the rule graph: the JSON written as nft's text
(:mod:`iptexplain.nft.json_text`), read by the one nft reader (:mod:`iptexplain.nft.reader`).

The format is detected on its own (:func:`iptexplain.parse.detect_format`): ``nft -j list
ruleset | iptexplain trace - --dport 8080`` works as the text does.
"""

from __future__ import annotations

import json

from iptexplain.core.errors import InputError
from iptexplain.graph import Ruleset
from iptexplain.nft.json_text import JsonRulesetError, to_text
from iptexplain.nft.deferred import GiveUp, read_nft_deferred
from iptexplain.nft.reader import read_nft


def read_nft_json(text: str, source: str = "<input>", lazy: bool = False) -> Ruleset:
    """``nft -j list ruleset`` -> a :class:`~iptexplain.graph.Ruleset` (``format`` ``nft-json``).

    The rules' ``line`` is 0 (the JSON has no lines worth pointing at; the handle says which
    rule); an error names the JSON object (``nftables[12]``), or the rule as nft prints it."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"not valid JSON: {e.msg} (column {e.colno})", source, e.lineno) from None
    try:
        nft_text = to_text(doc)
    except JsonRulesetError as e:
        raise InputError(f"{e.where}: {e}" if e.where else str(e), source, None) from None
    del doc  # the objects of the document are most of the memory: gone before the text is read
    if not nft_text:  # an empty ruleset (`{"nftables": [{"metainfo": …}]}`): no table
        return Ruleset(source=source, format="nft-json")
    if lazy:  # a trace: chains read when reached (iptexplain.nft.deferred)
        try:
            return read_nft_deferred(nft_text, source, json=True)
        except GiveUp:
            pass
    try:
        rs = read_nft(nft_text, source)
    except InputError as e:
        lines = nft_text.splitlines()
        at = lines[e.line - 1].strip() if e.line and 0 < e.line <= len(lines) else ""
        raise InputError(f"{e.message}" + (f" (in `{at}')" if at else ""), source, None) from None
    rs.format = "nft-json"
    for table in rs.nft_tables:
        table.line = 0
        for chain in table.chains.values():
            chain.line = 0
            for r in list(chain.rules) + list(getattr(chain, "written", [])):
                r.line = 0
        for s in table.sets.values():
            s.line = 0
    for n in rs.notes:
        n.line = None
    return rs


__all__ = ["read_nft_json"]
