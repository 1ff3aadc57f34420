"""The family of an iptables table (NFPROTO_IPV4 / NFPROTO_IPV6): the one its own rules prove
(addresses, ICMP, modules of IPv6 only), and the one given to the modules whose meaning depends
on it once the table is read."""

from __future__ import annotations

import re

from iptexplain.core.errors import OptionError
from iptexplain.core.protocols import canonical_proto
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


# -- the same, from the words of rules kept as text (iptexplain.parse.deferred) ----------------

_QUOTED = re.compile(r'"[^"\n]*"')
_DOTTED = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?:/[0-9.]+)?")
# Spellings the word-level look does not follow (iptables -S and -save never print them): a
# rule holding one is read by the parser instead.
_LONG = frozenset({"--source", "--src", "--destination", "--dst", "--protocol", "--proto", "--match"})
UNSURE = -1


def family_of_words(text: str) -> int | None:
    """What :func:`_family_of_table` concludes from one rule (the text after ``-A CHAIN``), from
    its words: 4 or 6 when the rule proves a family, None when it proves none, UNSURE when the
    words alone cannot tell (a host name, a long or abbreviated spelling, an unbalanced quote,
    an unknown protocol) and the rule must be parsed."""
    if "\\" in text or "'" in text:
        return UNSURE
    if '"' in text:
        if text.count('"') & 1:
            return UNSURE
        text = _QUOTED.sub('""', text)
    words = text.split()
    src = dst = proto = None
    modules: list[str] = []
    n = len(words)
    for i, w in enumerate(words):
        if w[0] != "-":
            continue
        if w.startswith("--"):
            if w in _LONG or any(f.startswith(w) for f in _LONG):
                return UNSURE
            continue
        if i + 1 >= n:
            return UNSURE
        if w == "-s" and src is None:
            src = words[i + 1]
        elif w == "-d" and dst is None:
            dst = words[i + 1]
        elif w == "-p" and proto is None:
            proto = words[i + 1]
        elif w == "-m":
            modules.append(words[i + 1])
    for a in (src, dst):
        if a is not None:
            if ":" in a:
                return 6
            return 4 if _DOTTED.fullmatch(a) else UNSURE
    if proto is not None:
        try:
            p = canonical_proto(proto)
        except OptionError:
            return UNSURE
        if p == "ipv6-icmp":
            return 6
        if p == "icmp":
            return 4
    for m in modules:
        if m in V6_MODULES:
            return 6
        if m == "icmp":
            return 4
    return None
