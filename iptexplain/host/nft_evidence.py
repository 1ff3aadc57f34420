"""What an nft rule says about the host's interfaces, as an :class:`~.evidence.IfaceFact`
(:mod:`.evidence` holds iptables' and explains why); apart so that a host with only iptables
rules never imports the nft expression classes."""

from __future__ import annotations

from typing import Any, Iterator

from iptexplain.core.addr import Address, int_to_ip, parse_address
from iptexplain.graph import Ruleset
from iptexplain.host.evidence import IfaceFact
from iptexplain.nft.expr.base import Relational
from iptexplain.nft.expr.meta import IfnameSelector
from iptexplain.nft.expr.nat import Nat
from iptexplain.nft.expr.payload import AddrSelector
from iptexplain.nft.model import NftChain, nft_tables


def nft_facts(ruleset: Ruleset, family: int) -> Iterator[IfaceFact]:
    """The facts of the nft rules that may name an interface."""
    for r in _nft_rules(ruleset, family):
        fact = _nft_fact(r, family)
        if fact is not None:
            yield fact


def _nft_rules(ruleset: Ruleset, family: int) -> Iterator[Any]:
    """The rules of the nft base chains that see ``family``'s packets -- but for the nat
    chains of prerouting and output, where kube-proxy's service maps hang -- and of the
    chains they jump to (a ``vmap`` is one rule piece per element, each with its jump)."""
    for t in nft_tables(ruleset):
        if family not in t.ip_families:
            continue
        todo = [c for c in t.chains.values() if isinstance(c, NftChain) and c.is_base
                and not (c.nft_type == "nat" and c.hook in ("PREROUTING", "OUTPUT"))]
        seen = {c.name for c in todo}
        while todo:
            chain = todo.pop()
            for r in chain.rules:
                yield r
                j = r.jump
                if j is not None and j not in seen and j in t.chains:
                    seen.add(j)
                    todo.append(t.chains[j])


def _nft_fact(rule: Any, family: int) -> IfaceFact | None:
    """The interface and address tests of one nft rule (a relation with one value each)."""
    got: dict[str, tuple[Any, bool]] = {}
    for m in rule.matches:
        if not isinstance(m, Relational) or len(m.selectors) != 1 or m.set_ref is not None \
                or m.op not in ("==", "!="):
            continue
        sel, inv = m.selectors[0], m.op == "!="
        if isinstance(sel, IfnameSelector) and len(m.values or ()) == 1:
            got[sel.field] = (m.values[0], inv)
        elif isinstance(sel, AddrSelector) and sel.family == family:
            net = _prefix(m.values, family)
            if net is not None:
                got[sel.field] = (net, inv)
    masq = rule.table and any(isinstance(s, Nat) and s.kind == "masquerade"
                              for s in getattr(rule.target, "statements", ()))
    if not got:
        return None
    iif, iif_inv = got.get("iniface", (None, False))
    oif, oif_inv = got.get("outiface", (None, False))
    src, src_inv = got.get("src", (None, False))
    dst, dst_inv = got.get("dst", (None, False))
    return IfaceFact(iif, iif_inv, oif, oif_inv, src, src_inv, dst, dst_inv, bool(masq),
                     f"{rule.where()}: {rule.text}")


def _prefix(values: Any, family: int) -> Address | None:
    """The network a one-range value is (``ip saddr 172.17.0.0/16``), None for anything else."""
    if not values or len(values) != 1:
        return None
    lo, hi = values[0]
    size = hi - lo + 1
    if size & (size - 1) or lo & (size - 1):
        return None
    bits = 32 if family == 4 else 128
    return parse_address(f"{int_to_ip(lo, family)}/{bits - size.bit_length() + 1}", family)
