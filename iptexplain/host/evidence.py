"""What the rules say about the host's interfaces, in either rule language.

Host inference (:mod:`iptexplain.host.infer`) reads a dump as an engineer would: Docker's
``-s 172.17.0.0/16 ! -o docker0 -j MASQUERADE`` says docker0 carries 172.17.0.0/16, and the same
rule in Docker 29's nftables backend, ``oifname != "docker0" ip saddr 172.17.0.0/16 masquerade``,
says the same.  This module turns a rule of either language into one :class:`IfaceFact` -- the
interfaces and addresses it tests, and whether it masquerades -- so that the inference itself
does not care which language the host speaks (nft rules' facts: :mod:`.nft_evidence`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from iptexplain.core.addr import Address
from iptexplain.graph import Ruleset


@dataclass(frozen=True, slots=True)
class IfaceFact:
    """One rule's tests of interfaces and addresses (None: the rule does not test it)."""

    iniface: str | None
    iniface_inv: bool
    outiface: str | None
    outiface_inv: bool
    src: Address | None
    src_inv: bool
    dst: Address | None
    dst_inv: bool
    masquerade: bool  # a MASQUERADE in a nat table (the source's subnet sits behind the router)
    evidence: str  # where the rule is and how it reads, for the notes


# Where iptables rules speak about the host's interfaces and the subnets behind them: what is
# forwarded, delivered and masqueraded.  (kube-proxy's 100,000 DNAT rules hang off nat
# PREROUTING/OUTPUT and say nothing about interfaces: they are not scanned.)
EVIDENCE_CHAINS = {"filter": ("INPUT", "FORWARD", "OUTPUT"), "nat": ("POSTROUTING",),
                   "mangle": ("FORWARD", "POSTROUTING"), "raw": ("PREROUTING",)}


def iface_facts(ruleset: Ruleset, family: int) -> Iterator[IfaceFact]:
    """The facts of every rule that may name an interface, iptables' and nft's."""
    for t, r in _xtables_rules(ruleset, family):
        h = r.header
        yield IfaceFact(h.iniface, h.iniface_inv, h.outiface, h.outiface_inv, h.src, h.src_inv, h.dst,
                        h.dst_inv, t.name == "nat" and r.target_name == "MASQUERADE",
                        f"{r.where()}: {r.spec()}")
    if getattr(ruleset, "nft_tables", None):
        # nft rules' facts (the nft expression classes, ~10 ms of imports): only for a
        # ruleset that has nft tables, which its reader has imported already
        from iptexplain.host.nft_evidence import nft_facts

        yield from nft_facts(ruleset, family)


def _xtables_rules(ruleset: Ruleset, family: int):
    """The rules of the chains reachable from EVIDENCE_CHAINS that may name an interface (an
    unread rule whose words name none is not read)."""
    for t in ruleset.tables_of(family):
        todo = [c for c in EVIDENCE_CHAINS.get(t.name, ()) if c in t.chains]
        seen = set(todo)
        while todo:
            chain = t.chains[todo.pop()]
            for r in chain.rules:
                if getattr(r, "may_name_interface", True):
                    yield t, r
                j = r.jump
                if j is not None and j not in seen and j in t.chains:
                    seen.add(j)
                    todo.append(j)
