"""What a partial input leaves out, named once the input is read.

iptables-save and a live host show a whole ruleset.  ``iptables -S`` and ``iptables -L`` show one
table per command -- filter, unless ``-t`` names another -- and what people paste of them is often
less: one chain, an excerpt with elisions, a listing cut off mid-chain.  The readers record what
they did not see on the rule graph (:attr:`Ruleset.whole <iptexplain.graph.Ruleset.whole>`,
:attr:`Chain.listed <iptexplain.graph.Chain.listed>`, ``policy_known``, ``gaps``); this module turns
those marks into the notes a user reads, in one place for every text format and for several
inputs read together (:mod:`iptexplain.parse.combine`), so that the wording does not depend on
which reader saw the gap.
"""

from __future__ import annotations

from iptexplain.core.errors import InputError
from iptexplain.ext.base import ChainJump
from iptexplain.graph import BUILTIN_CHAINS, EMPTY_HEADER, Chain, Rule, Ruleset

# The command that prints a table a user did not give, as iptables spells it.
_LIST_CMD = {"S": "-S", "listing": "-nvL"}


def _and(names: list[str] | tuple[str, ...]) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def name_gaps(rs: Ruleset) -> None:
    """Name, in notes of kind "partial", what the marks on ``rs`` say the input did not show:
    the tables it lacks, the chains it never showed, the policies it did not print.  The notes
    are made again from the marks each time (earlier "partial" notes are dropped), so that
    inputs read together (:mod:`iptexplain.parse.combine`) are described as the one ruleset
    they make, not as the parts each lacked."""
    rs.notes = [n for n in rs.notes if n.kind != "partial"]
    missing_tables_note(rs)
    for t in rs.tables.values():
        where = f"table {t.name} (IPv{t.family})"
        unlisted = [c for c in t.chains.values() if not c.listed]
        builtins = [c.name for c in unlisted if c.builtin]
        jumped = [c.name for c in unlisted if not c.builtin]
        policies = [c.name for c in t.chains.values() if c.listed and c.builtin and not c.policy_known]
        if unlisted:
            rs.hidden.add("chains")
        if builtins:
            rs.note("partial", f"{where}: built-in chain{'s' if len(builtins) > 1 else ''} {_and(builtins)} "
                               f"not shown: {'their' if len(builtins) > 1 else 'its'} rules and policy are unknown")
        if jumped:
            rs.note("partial", f"{where}: rules jump to {_and(jumped)}, which the input does not show: "
                               f"{'their' if len(jumped) > 1 else 'its'} rules are unknown "
                               f"(`iptables -t {t.name} -S' shows every chain of the table)")
        if policies:
            rs.note("partial", f"{where}: the policy of {_and(policies)} is not shown (no `-P' line): "
                               f"unknown")
    starts = entry_chains(rs)
    if starts:
        names = [c.name for c in starts]
        one = len(names) == 1
        rs.note("partial", f"{'chain ' if one else 'chains '}{_and(names[:6])}{' ...' if len(names) > 6 else ''} "
                           f"{'is' if one else 'are'} shown without {'its' if one else 'their'} callers "
                           f"(nothing in the input jumps to {'it' if one else 'them'}): "
                           f"`iptexplain trace --chain {names[0]} ...' starts the trace there")


def entry_chains(rs: Ruleset) -> list[Chain]:
    """User chains a partial input shows whose callers it does not: nothing in it jumps to them,
    or fewer rules than the listing's ``(N references)`` header counts.  Where a trace of the
    input may have to start (``trace --chain``).  None for a whole ruleset, where a chain nothing
    jumps to is one no packet reaches."""
    if rs.whole:
        return []
    # Chains still text (iptexplain.parse.deferred) have no references yet: their reader counted
    # which chains the table's rules jump to.
    called = getattr(rs.deferred, "called", None)
    out = []
    for t in rs.tables.values():
        jumped = called.get(t.name) if called is not None else None
        for c in t.chains.values():
            if c.builtin or not c.listed or c.kernel_references == 0:
                continue
            if jumped is not None and not c.references:  # -S text kept as text (deferred_s)
                if c.name not in jumped:
                    out.append(c)
                continue
            # A listing still kept as text (iptexplain.parse.listing_deferred) counted the rows
            # that jump to each chain from the target column: references are made by parse_all.
            n = c.jumps_in if rs.deferred is not None and hasattr(c, "jumps_in") else len(c.references)
            if not n or (c.kernel_references or 0) > n:
                out.append(c)
    return out


def missing_tables_note(rs: Ruleset) -> None:
    """Add one note per family naming the tables the input lacks (:meth:`Ruleset.missing_tables`),
    with the commands that would print them.  Nothing for a whole ruleset."""
    if rs.whole:
        return
    for fam in rs.families():
        missing = rs.missing_tables(fam)
        if not missing:
            continue
        shown = rs.tables_shown(fam)
        prog = "ip6tables" if fam == 6 else "iptables"
        flag = _LIST_CMD.get(rs.format, "-S")
        are = "are" if len(missing) > 1 else "is"
        rs.note(
            "partial",
            f"only the {_and(shown)} table{'s' if len(shown) > 1 else ''} (IPv{fam}) {are if len(shown) > 1 else 'is'} "
            f"in the input (`{prog} {flag}' prints one table: filter, unless -t names another): "
            f"{_and(missing)} {are} unknown -- `{prog}-save' prints every table, or give "
            f"`{prog} -t TABLE {flag}' of each as a further input",
        )



def enter_chain(rs: Ruleset, name: str, family: int = 4) -> Ruleset:
    """The ruleset with packets entering chain ``name`` straight from every built-in chain of its
    table (``trace --chain NAME``): for a user chain the input shows without its callers, the
    trace starts where the knowledge does.

    ``name`` may be ``TABLE:CHAIN`` when several tables have such a chain.  Each built-in chain of
    that table becomes one rule, ``-j NAME``, followed by a gap (:attr:`Chain.gaps`) and an unknown
    policy: what a caller does after NAME returns, or falls off its end, is not in the input and
    must not read as ACCEPT.  Other tables are kept as they are.  ``rs`` is changed and returned.
    Raises InputError when no table, or more than one, has the chain.
    """
    want_table, _, chain_name = name.rpartition(":")
    found = [t for t in rs.tables_of(family) if chain_name in t.chains and (not want_table or t.name == want_table)]
    if not found:
        have = sorted({c for t in rs.tables_of(family) for c, ch in t.chains.items() if not ch.builtin})
        raise InputError(f"--chain {name}: no IPv{family} table of the input has a chain `{chain_name}'"
                         + (f" (user chains: {', '.join(have[:8])}{', ...' if len(have) > 8 else ''})" if have else ""),
                         rs.source)
    if len(found) > 1:
        raise InputError(f"--chain {name}: tables {_and([t.name for t in found])} both have it: name one, "
                         f"as in --chain {found[0].name}:{chain_name}", rs.source)
    table = found[0]
    target = table.chains[chain_name]
    if target.builtin:
        raise InputError(f"--chain {name}: {chain_name} is a built-in chain, where every trace starts "
                         f"already; --chain names a user chain", rs.source)
    chains: dict[str, Chain] = {}
    for b in BUILTIN_CHAINS[table.name]:
        entry = Chain(b, table.name, True, "ACCEPT", policy_known=False, gaps=(1,), source="--chain")
        entry.rules.append(Rule(table.name, b, EMPTY_HEADER, (), ChainJump(chain=chain_name), line=0,
                                number=1, source="--chain"))
        chains[b] = entry
    for c in table.chains.values():
        if not c.builtin:
            chains[c.name] = c
    table.chains = chains
    rs.whole = False
    rs.link()
    rs.note("partial", f"the trace starts in chain {chain_name} of table {table.name} (--chain): packets "
                       f"enter it from every built-in chain of {table.name} as if jumped to; what a caller "
                       f"does after {chain_name} returns or ends is not in the input, and is unknown")
    return rs
