"""The family of an iptables table (NFPROTO_IPV4 / NFPROTO_IPV6): the one its own rules prove
(addresses, ICMP, modules of IPv6 only), and the one given to the modules whose meaning depends
on it once the table is read."""

from __future__ import annotations

from iptexplain.graph import Table
from iptexplain.parse.lazy import LazyRule

V6_MODULES = frozenset({"icmp6", "rt", "hl", "frag", "hbh", "dst", "ipv6header", "mh", "eui64", "srh"})


def _family_of_table(t: Table) -> int | None:
    """The family a table's own rules prove (addresses, IPv6-only modules), if any."""
    for r in t.rules():
        h = r.header
        for a in (h.src, h.dst):
            if a is not None:
                return a.family
        if h.proto == "ipv6-icmp":
            return 6
        if h.proto == "icmp":
            return 4
        for m in r.matches:
            if m.name in V6_MODULES:
                return 6
            if m.name == "icmp":
                return 4
    return None


def _set_nfproto(table: Table) -> None:
    """Give family-dependent modules the family their table turned out to have."""
    import dataclasses

    fam = table.family
    for r in table.rules():
        if type(r) is LazyRule and not r.parsed:
            continue  # no family-dependent module (lazy_jump)
        exts = r.matches
        if any(m.family_sensitive and m.nfproto != fam for m in exts):
            r.matches = tuple(dataclasses.replace(m, nfproto=fam) if m.family_sensitive else m for m in exts)
        t = r.target
        if t is not None and t.family_sensitive and t.nfproto != fam:
            r.target = dataclasses.replace(t, nfproto=fam)
