"""Hosts where both stacks run: iptables-nft's tables, as nft lists them, told apart from native ones.

iptables-nft keeps its tables in nf_tables: ``nft list ruleset`` prints them beside the native
ones (``table ip filter`` with chains ``INPUT``/``FORWARD``/``OUTPUT`` and rules in nft syntax,
xtables extensions it cannot translate as ``xt match conntrack`` / ``xt target CT``, without
their options; the JSON does the same with ``{"xt": {…}}``).  So when a host's ``iptables-save``
dump and its ``nft list ruleset`` are both given -- or read live -- the iptables-nft tables are
in both.  They are one kernel table seen twice, and must be walked once: the ``iptables-save``
side is kept (its extensions keep their options), the nft copy is dropped, with a note.

A table of family ip/ip6 and the same name as a table of the dump is the same kernel table when
the dump came from iptables-nft: the kernel has one ``ip filter``.  Without a dump, a table
is *recognised* as iptables-nft's (:func:`is_iptables_nft`) when nft says it is managed by
iptables-nft (``# Warning: table ip filter is managed by iptables-nft``, nft ≥ 1.0.6 on stderr
with the listing), or when it is named as an iptables table and its base chains are that
table's built-in chains at iptables' priorities; such a table is traced as nft lists it, with a
note when it holds xtables extensions (whose options nft does not print).
"""

from __future__ import annotations

from typing import Any, Iterable

from iptexplain.graph import Ruleset
from iptexplain.nft.model import NftTable

# iptables' tables as iptables-nft registers them: built-in chain -> (hook, priority).
IPTABLES_NFT_CHAINS: dict[str, dict[str, tuple[str, int]]] = {
    "raw": {"PREROUTING": ("PREROUTING", -300), "OUTPUT": ("OUTPUT", -300)},
    "mangle": {"PREROUTING": ("PREROUTING", -150), "INPUT": ("INPUT", -150), "FORWARD": ("FORWARD", -150),
               "OUTPUT": ("OUTPUT", -150), "POSTROUTING": ("POSTROUTING", -150)},
    "nat": {"PREROUTING": ("PREROUTING", -100), "INPUT": ("INPUT", 100), "OUTPUT": ("OUTPUT", -100),
            "POSTROUTING": ("POSTROUTING", 100)},
    "filter": {"INPUT": ("INPUT", 0), "FORWARD": ("FORWARD", 0), "OUTPUT": ("OUTPUT", 0)},
    # iptables-nft registers security after nat INPUT (150); legacy at 50 (netfilter-facts.md)
    "security": {"INPUT": ("INPUT", 150), "FORWARD": ("FORWARD", 150), "OUTPUT": ("OUTPUT", 150)},
}


def _family(table: NftTable) -> int | None:
    return {"ip": 4, "ip6": 6}.get(table.nft_family)


def xt_rules(table: NftTable) -> list[Any]:
    """The table's rules holding xtables extensions (``xt match …``, ``xt target …``)."""
    out = []
    for chain in table.chains.values():
        for r in getattr(chain, "written", None) or chain.rules:
            if " xt match " in f" {r.text} " or " xt target " in f" {r.text} ":
                out.append(r)
    return out


def is_iptables_nft(table: NftTable) -> bool:
    """Whether iptables-nft made this table (see the module's docstring)."""
    if table.managed_by == "iptables-nft":
        return True
    builtin = IPTABLES_NFT_CHAINS.get(table.nft_name)
    if _family(table) is None or builtin is None:
        return False
    base = [c for c in table.chains.values() if c.is_base]
    if not base:
        return False
    for c in base:
        want = builtin.get(c.name)
        if want is None or (c.hook, c.priority) != want or c.nft_type != _chain_type(table.nft_name, c.name):
            return False
    return True


def _chain_type(table: str, chain: str) -> str:
    """The chain type iptables-nft registers: nat for nat, route for mangle OUTPUT (re-routing
    after a mark or address change), filter for the rest."""
    if table == "nat":
        return "nat"
    return "route" if (table, chain) == ("mangle", "OUTPUT") else "filter"


def join(rs: Ruleset, nft_tables: Iterable[NftTable], *, source: str,
         iptables_nft_families: Iterable[int] = (4, 6)) -> None:
    """Add an nft listing's tables to ``rs`` (read from iptables-save or another input of the same
    host), dropping the tables the dump already holds.

    ``iptables_nft_families``: the families whose dump came from iptables-nft (a table of the
    same name in the nft listing is then the same kernel table).  For the other families (a
    legacy dump), a same-named nft table is another table: both are kept, with a note."""
    nft_fams = set(iptables_nft_families)
    have = {(t.name, t.family) for t in rs.tables.values()}
    dropped: list[str] = []
    for t in nft_tables:
        fam = _family(t)
        if any((o.nft_family, o.nft_name) == (t.nft_family, t.nft_name) for o in rs.nft_tables):
            rs.note("duplicate", f"{source}: table {t.name} is given again; the first one is read")
            continue
        twin = fam is not None and (t.nft_name, fam) in have
        if twin and fam in nft_fams:
            dropped.append(t.name)
            continue
        if twin:
            rs.note("warning", f"{source}: table {t.name} is an nft table beside the legacy iptables "
                               f"table {t.nft_name} of the same name: both see packets")
        rs.nft_tables.append(t)
        if is_iptables_nft(t):
            note_xt(rs, t, source)
    if dropped:
        rs.note("input", f"{source}: {', '.join(dropped)} "
                         f"{'is' if len(dropped) == 1 else 'are'} iptables-nft's, read from the "
                         "iptables-save dump (one kernel table, walked once)")


def note_xt(rs: Ruleset, table: NftTable, source: str) -> None:
    """Say that an iptables-nft table's xtables extensions are printed without options."""
    xt = xt_rules(table)
    if xt:
        rs.note("fidelity", f"{source}: table {table.name} is iptables-nft's and {len(xt)} of its rules "
                            "use xtables extensions that nft prints without their options (they fork); "
                            "give the host's iptables-save output too, or read the host live")


__all__ = ["IPTABLES_NFT_CHAINS", "is_iptables_nft", "join", "note_xt", "xt_rules"]
