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

from iptexplain.graph import Ruleset

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

