"""The kernel's hook table as data: at each hook, who runs, in priority order.

Each table registers its base chains at a fixed priority (``net/ipv4/netfilter/iptable_*.c``,
``include/uapi/linux/netfilter_ipv4.h``); conntrack and its confirmation are hook functions of
their own.  The traversal of a hook is a sort by priority -- nothing else -- so the order the
tracer follows can be read and checked here against the kernel's headers, and the IPv6 table
(``NF_IP6_PRI_*``, the same numbers) is the same data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# NF_IP_PRI_* / NF_IP6_PRI_* (the values are the same for both families).
PRI_CONNTRACK_DEFRAG = -400
PRI_RAW = -300
PRI_SELINUX_FIRST = -225
PRI_CONNTRACK = -200
PRI_MANGLE = -150
PRI_NAT_DST = -100
PRI_FILTER = 0
PRI_SECURITY = 50
PRI_NAT_SRC = 100
PRI_SELINUX_LAST = 225
PRI_CONNTRACK_HELPER = 300
PRI_CONNTRACK_CONFIRM = 2**31 - 1
# iptables-nft registers the security table's base chains at 150, not NF_IP_PRI_SECURITY
# (iptables/nft.c): with the nft backend security INPUT runs after nat INPUT (100), with
# legacy before it.  Measured in the kernel lab (tests/test_tracer_kernel.py, "order").
PRI_SECURITY_NFT = 150

BACKENDS = ("nft", "legacy")

HOOKS = ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")

# Step kinds of a hook entry.
TABLE = "table"  # a table's base chain
CONNTRACK = "conntrack"  # nf_conntrack_in: look the connection up / create it
CONFIRM = "confirm"  # nf_conntrack_confirm: the connection enters the table

# The NAT manipulation each nat hook sets up: destination before routing, source after.
NAT_MANIP = {"PREROUTING": "DST", "OUTPUT": "DST", "INPUT": "SRC", "POSTROUTING": "SRC"}


@dataclass(frozen=True, slots=True)
class HookEntry:
    """One row of a hook: a table's base chain, or conntrack's own step.

    Rows made for a ruleset (:func:`hook_entries`) carry the base ``chain`` and its
    ``table_obj``; ``nat`` rows (iptables' nat table, nft ``type nat`` chains) are run by the
    NAT core at its own priority, in the order of their ``own_priority``, until one of them
    sets up the connection's binding (``last_nat``: no nat row follows on this hook)."""

    priority: int
    kind: str
    table: str = ""
    chain: Any = None
    table_obj: Any = None
    nat: bool = False
    own_priority: int = 0
    order: int = 0  # registration order of nft base chains (later registered runs first)
    last_nat: bool = True

    @property
    def is_nat(self) -> bool:
        return self.kind == TABLE and (self.nat or self.table == "nat")


# (hook, priority, kind, table) for one family, as the modules register them.
_REGISTRATIONS: tuple[tuple[str, int, str, str], ...] = (
    # iptable_raw
    ("PREROUTING", PRI_RAW, TABLE, "raw"),
    ("OUTPUT", PRI_RAW, TABLE, "raw"),
    # nf_conntrack (ipv4_conntrack_in / ipv4_conntrack_local) and confirm
    ("PREROUTING", PRI_CONNTRACK, CONNTRACK, ""),
    ("OUTPUT", PRI_CONNTRACK, CONNTRACK, ""),
    ("INPUT", PRI_CONNTRACK_CONFIRM, CONFIRM, ""),
    ("POSTROUTING", PRI_CONNTRACK_CONFIRM, CONFIRM, ""),
    # iptable_mangle
    ("PREROUTING", PRI_MANGLE, TABLE, "mangle"),
    ("INPUT", PRI_MANGLE, TABLE, "mangle"),
    ("FORWARD", PRI_MANGLE, TABLE, "mangle"),
    ("OUTPUT", PRI_MANGLE, TABLE, "mangle"),
    ("POSTROUTING", PRI_MANGLE, TABLE, "mangle"),
    # iptable_nat: destination NAT before routing, source NAT after (nat INPUT runs last)
    ("PREROUTING", PRI_NAT_DST, TABLE, "nat"),
    ("OUTPUT", PRI_NAT_DST, TABLE, "nat"),
    ("INPUT", PRI_NAT_SRC, TABLE, "nat"),
    ("POSTROUTING", PRI_NAT_SRC, TABLE, "nat"),
    # iptable_filter
    ("INPUT", PRI_FILTER, TABLE, "filter"),
    ("FORWARD", PRI_FILTER, TABLE, "filter"),
    ("OUTPUT", PRI_FILTER, TABLE, "filter"),
    # iptable_security
    ("INPUT", PRI_SECURITY, TABLE, "security"),
    ("FORWARD", PRI_SECURITY, TABLE, "security"),
    ("OUTPUT", PRI_SECURITY, TABLE, "security"),
)


def _build(backend: str) -> dict[str, tuple[HookEntry, ...]]:
    per_hook: dict[str, list[HookEntry]] = {h: [] for h in HOOKS}
    for hook, pri, kind, table in _REGISTRATIONS:
        if table == "security" and backend == "nft":
            pri = PRI_SECURITY_NFT
        per_hook[hook].append(HookEntry(pri, kind, table))
    return {h: tuple(sorted(es, key=lambda e: e.priority)) for h, es in per_hook.items()}


# IPv4 and IPv6 register the same tables at the same priorities.
HOOK_ORDER: dict[str, dict[int, dict[str, tuple[HookEntry, ...]]]] = {
    b: {4: _build(b), 6: _build(b)} for b in BACKENDS}


def entries(family: int, hook: str, backend: str = "nft") -> tuple[HookEntry, ...]:
    """Who runs at ``hook``, in the order the kernel calls them (``backend``: which iptables
    registered the tables -- see PRI_SECURITY_NFT)."""
    return HOOK_ORDER[backend][family][hook]


# The NAT core's hook priorities (nf_nat_ipv4_ops / nf_nat_ipv6_ops): every nat chain of a hook --
# iptables' nat table and nft's `type nat` chains alike -- is called from there, whatever its own
# priority, which only orders the nat chains among themselves (nf_nat_register_fn).  Measured in
# the kernel lab: a `type nat` chain at priority -150 runs after a filter chain at -120.
NAT_CORE_PRIORITY = {"PREROUTING": PRI_NAT_DST, "OUTPUT": PRI_NAT_DST, "INPUT": PRI_NAT_SRC,
                     "POSTROUTING": PRI_NAT_SRC}
# Base chain types of the IP families that the tracer runs (netdev/bridge/arp hook elsewhere).
NFT_CHAIN_TYPES = ("filter", "nat", "route")


def hook_entries(ruleset: Any, family: int, hook: str, backend: str = "nft") -> tuple[HookEntry, ...]:
    """Who runs at ``hook`` for this ruleset, in the kernel's order: the iptables tables the
    ruleset has at their fixed priorities, and every nft base chain registered on the hook at its
    own (``ruleset.nft_tables``) -- one table of rows, sorted by priority.

    At equal priority the chain registered last runs first (the kernel inserts a new entry
    before those of the same priority): nft base chains are taken in the order the dump lists
    them, iptables' tables as registered before them.  Nat rows sort at the NAT core's
    priority, then by their own."""
    rows: list[HookEntry] = []
    by_name = {t.name: t for t in ruleset.tables_of(family)}
    for e in entries(family, hook, backend):
        if e.kind != TABLE:
            rows.append(e)
            continue
        t = by_name.get(e.table)
        if t is None or hook not in t.chains:
            continue
        nat = e.table == "nat"
        rows.append(HookEntry(e.priority, TABLE, e.table, t.chains[hook], t, nat, e.priority))
    n = 0
    for t in getattr(ruleset, "nft_tables", None) or ():
        if family not in t.ip_families:
            continue
        for c in t.chains.values():
            n += 1
            if c.hook != hook or c.nft_type not in NFT_CHAIN_TYPES or c.priority is None:
                continue
            nat = c.nft_type == "nat"
            pri = NAT_CORE_PRIORITY.get(hook, c.priority) if nat else c.priority
            rows.append(HookEntry(pri, TABLE, t.name, c, t, nat, c.priority, n))
    rows.sort(key=lambda e: (e.priority, e.own_priority if e.kind == TABLE else e.priority, -e.order))
    last = max((i for i, e in enumerate(rows) if e.is_nat), default=-1)
    return tuple(HookEntry(e.priority, e.kind, e.table, e.chain, e.table_obj, e.nat, e.own_priority, e.order,
                           i == last) if e.is_nat else e for i, e in enumerate(rows))


def ties(rows: tuple[HookEntry, ...]) -> list[tuple[HookEntry, HookEntry]]:
    """Pairs of base chains of different tables at the same priority: their order is the
    order they were registered in, which a dump does not show."""
    out = []
    for a, b in zip(rows, rows[1:]):
        if a.kind == b.kind == TABLE and a.priority == b.priority and a.own_priority == b.own_priority \
                and a.table != b.table:
            out.append((a, b))
    return out
