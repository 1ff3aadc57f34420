"""Several inputs read as the one ruleset of one host.

People have the pieces of a ruleset, not the whole: ``iptables -S`` in one file and ``iptables
-t nat -nvL`` in another, a paste holding several ``-t`` listings, an excerpt of one chain and
another of the chain it jumps to.  Each piece is read on its own (any format, its rules keeping
their ``FILE:LINE``) and :func:`combine` joins them.  It only deals in rule graphs, so a reader of
another kind (an nft ruleset of the same host) can join in by handing over its
:class:`~iptexplain.graph.Ruleset`: its nft tables join the iptables ones, and iptables-nft's
tables, which ``nft list ruleset`` prints too, are read once, from the iptables dump
(:func:`iptexplain.nft.mixed.join`).

A table given twice is one table to iptables, seen twice: the pieces are views of it, and are
joined chain by chain --

* a chain shown by one piece only is taken from it (a piece's placeholder for a chain it did not
  show -- a built-in chain absent from an excerpt, a chain only jumped to -- gives way to a piece
  that shows it);
* a chain shown by both with the same rules is read once (a policy shown by either is kept);
* a chain shown by both with different rules is taken from the later piece, as iptables-restore
  lets a later table replace an earlier one, and the difference is noted.

The joined ruleset is whole (:attr:`Ruleset.whole`) only when every piece is, and what it still
lacks is named again for the joined whole (:func:`iptexplain.parse.partial.name_gaps`).
"""

from __future__ import annotations

from typing import Sequence

from iptexplain.graph import BUILTIN_CHAINS, Chain, Note, Ruleset, Table
from iptexplain.parse.partial import name_gaps


def _same(a: Chain, b: Chain) -> bool:
    return len(a.rules) == len(b.rules) and all(
        x.save_args() == y.save_args() for x, y in zip(a.rules, b.rules))


def _merge_chain(old: Chain, new: Chain) -> tuple[Chain, str]:
    """The chain the joined table keeps, and how: "new" (only ``new`` shows it, or it replaces
    ``old``), "old", "same" or "differ"."""
    if not new.listed:
        return old, "old"
    if not old.listed:
        return new, "new"
    if _same(old, new):
        keep = old if old.complete or not new.complete else new
        other = new if keep is old else old
        if not keep.policy_known and other.policy_known:
            keep.policy, keep.policy_known = other.policy, True
        return keep, "same"
    return new, "differ"


def _merge_table(into: Table, table: Table, where: str, notes: list[Note]) -> None:
    same: list[str] = []
    differ: list[str] = []
    for name, chain in table.chains.items():
        old = into.chains.get(name)
        if old is None:
            into.chains[name] = chain
            continue
        keep, how = _merge_chain(old, chain)
        into.chains[name] = keep
        if how == "same":
            same.append(name)
        elif how == "differ":
            differ.append(name)
    if same or differ:
        msg = (f"table {into.name} (IPv{into.family}) is given again by {where}: iptables has one "
               f"{into.name} table, so the inputs are read as views of it")
        if same:
            msg += f"; {', '.join(same)} shown the same by both (read once)"
        if differ:
            msg += f"; {', '.join(differ)} differ: the later input's rules are used"
        notes.append(Note("duplicate", msg))


def combine(parts: Sequence[Ruleset], source: str | None = None) -> Ruleset:
    """Join rulesets read from several inputs of one host into one (see the module's doc).

    Rules keep their own ``source`` and line, so a trace points into the file each came from;
    each piece's notes are kept, prefixed with its source.  ``parts`` are consumed: their tables
    and chains move into the result.
    """
    if len(parts) == 1:
        return parts[0]
    formats = {p.format for p in parts}
    out = Ruleset(source=source or " + ".join(p.source for p in parts),
                  format=formats.pop() if len(formats) == 1 else "mixed",
                  whole=all(p.whole for p in parts))
    merged: set[tuple[int, str]] = set()  # the tables given by several pieces: their chains sorted at the end
    for p in parts:
        p.parse_all()  # a deferred or lazy piece is read now: its chains move
        for n in p.notes:
            if n.kind == "partial":
                continue  # said again below, of the joined whole
            at = f"{p.source}:{n.line}" if n.line else p.source
            out.notes.append(Note(n.kind, f"{at}: {n.message}"))
        out.hidden |= p.hidden
        for key, table in p.tables.items():
            for chain in table.chains.values():
                chain.source = chain.source or p.source
            into = out.tables.get(key)
            if into is None:
                out.tables[key] = table
            else:
                _merge_table(into, table, p.source, out.notes)
                merged.add(key)
    for key in merged:  # once, at the end: a sort per piece made 5,000 pastes quadratic
        into = out.tables[key]
        order = {c: i for i, c in enumerate(BUILTIN_CHAINS[into.name])}
        into.chains = dict(sorted(into.chains.items(),
                                  key=lambda kv: (0, order[kv[0]]) if kv[0] in order else (1, 0)))
    if len({frozenset(p.hidden) for p in parts}) > 1:
        for p in parts:
            out.hidden_in[p.source] = set(p.hidden) | set(p.hidden_in.get(p.source, ()))
    if any(p.nft_tables for p in parts):
        # the nft model (~10 ms of imports) only when an nft ruleset is among the pieces
        from iptexplain.nft.mixed import join

        for p in parts:  # nft rulesets of the same host: their tables, iptables-nft's read once
            join(out, p.nft_tables, source=p.source)
    out.link()
    name_gaps(out)
    return out
