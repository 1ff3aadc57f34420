"""What is derived once per parsed ruleset (a ruleset does not change after parsing): asking a
second question of a 140,000-line kube-proxy dump must not scan it again.

* the index of a big chain: a concrete destination skips the rules written for other
  destinations (kube-proxy's ``KUBE-SERVICES``);
* whether any rule turns connection tracking on in the namespace.
"""

from __future__ import annotations

from iptexplain.graph import Chain, Ruleset, Table

INDEX_MIN_RULES = 32  # chains shorter than this are scanned rule by rule


# Extensions whose kernel module turns connection tracking on in the network namespace
# (their checkentry calls nf_ct_netns_get).  Without any of them packets carry no conntrack
# entry, and the nat chains -- which run only for tracked packets -- are never traversed.
CONNTRACK_USERS = frozenset({
    "conntrack", "state", "connmark", "CONNMARK", "CT", "NOTRACK", "DNAT", "SNAT", "MASQUERADE",
    "REDIRECT", "NETMAP", "connlimit", "connbytes", "connlabel", "helper", "CONNSECMARK", "cluster",
    "SYNPROXY", "TPROXY", "socket", "ipvs",
})


# What may make an nft rule turn conntrack on, as words of its text: ct expressions and NAT.
NFT_CT_USERS = frozenset({"ct", "dnat", "snat", "masquerade", "redirect"})


class ChainIndex:
    """Per chain: the rules keyed by the exact destination address (kube-proxy's KUBE-SERVICES
    has one ``-d IP/32`` rule per service port) or, for rules without one, the exact
    destination port they require (KUBE-NODEPORTS); a rule requiring another address or port
    cannot match and is skipped without being looked at."""

    __slots__ = ("by_dst", "by_dport", "free", "cache")

    PORT_MATCHES = ("tcp", "udp", "sctp", "udplite", "dccp")

    def __init__(self, chain: Chain, bits: int) -> None:
        self.by_dst: dict[int, list[int]] = {}
        self.by_dport: dict[int, list[int]] = {}
        self.free: list[int] = []
        full = (1 << bits) - 1
        for i, r in enumerate(chain.rules):
            # An unread rule (iptexplain.parse.lazy) says from its words what it requires.
            raw = r.raw_keys(bits) if hasattr(r, "raw_keys") else None
            if raw is not None:
                if raw[0] is not None:
                    self.by_dst.setdefault(raw[0], []).append(i)
                elif raw[1] is not None:
                    self.by_dport.setdefault(raw[1], []).append(i)
                else:
                    self.free.append(i)
                continue
            d = r.header.dst
            if d is not None and not r.header.dst_inv and d.mask == full:
                self.by_dst.setdefault(d.value, []).append(i)
                continue
            port = None
            for m in r.matches:
                if m.name in self.PORT_MATCHES:
                    v = m.get("dport")
                    if v is not None and not v.invert and v.value[0] == v.value[1]:
                        port = v.value[0]
            if port is not None:
                self.by_dport.setdefault(port, []).append(i)
            else:
                self.free.append(i)
        self.cache: dict[tuple[int | None, int | None], list[int]] = {}

    def candidates(self, dst: int | None, dport: int | None) -> list[int]:
        """The rules that may match packets with this destination and port (None: any)."""
        key = (dst, dport)
        c = self.cache.get(key)
        if c is None:
            if dst is not None:
                part = list(self.by_dst.get(dst, ()))
            else:
                part = [i for v in self.by_dst.values() for i in v]
            if dport is not None:
                part += self.by_dport.get(dport, ())
            else:
                part += [i for v in self.by_dport.values() for i in v]
            c = sorted(part + self.free)
            self.cache[key] = c
        return c



class RulesetFacts:
    __slots__ = ("conntrack", "indexes", "headers")

    def __init__(self) -> None:
        self.conntrack: dict[int, bool] = {}
        self.indexes: dict[int, ChainIndex | None] = {}
        self.headers: dict[int, list] = {}


_FACTS: dict[int, tuple[Ruleset, RulesetFacts]] = {}


def forget_facts(rs: Ruleset) -> None:
    """Drop what was derived from ``rs`` (its rules changed: a listing's hidden parts filled in)."""
    _FACTS.pop(id(rs), None)


def facts_of(rs: Ruleset) -> RulesetFacts:
    hit = _FACTS.get(id(rs))
    if hit is not None and hit[0] is rs:
        return hit[1]
    if len(_FACTS) >= 4:
        _FACTS.pop(next(iter(_FACTS)))
    f = RulesetFacts()
    _FACTS[id(rs)] = (rs, f)
    return f


def conntrack_in_use(rs: Ruleset, family: int) -> bool:
    """Does a rule of this family turn connection tracking on (see CONNTRACK_USERS)?"""
    facts = facts_of(rs)
    on = facts.conntrack.get(family)
    if on is None:
        users = CONNTRACK_USERS
        on = False
        # filter first: its built-in chains (-m conntrack --ctstate …) answer soonest; a chain
        # still kept as text (iptexplain.parse.deferred) is read only when its text names a user.
        for t in sorted(rs.tables_of(family), key=lambda t: t.name != "filter"):
            for c in t.chains.values():
                if not c.may_use(users):
                    continue
                for r in c.rules:
                    tg = r.target
                    if (tg is not None and tg.name in users) or any(m.name in users for m in r.matches):
                        on = True
                        break
                if on:
                    break
            if on:
                break
        if not on:
            on = any(_nft_uses_conntrack(t) for t in getattr(rs, "nft_tables", None) or ()
                     if family in t.ip_families)
        facts.conntrack[family] = on
    return on


def _nft_uses_conntrack(table: Table) -> bool:
    """An nft table turns conntrack on with a nat chain, a ct expression or a NAT statement
    (their init takes nf_ct_netns_get), as -m conntrack does for iptables."""
    for c in table.chains.values():
        if getattr(c, "nft_type", None) == "nat":
            return True
        if not c.may_use(NFT_CT_USERS):  # a chain still text (iptexplain.nft.deferred) that names none
            continue
        for r in c.rules:
            if any(getattr(m, "uses_ct", False) for m in r.matches) or getattr(r.target, "uses_ct", False):
                return True
    return False

