"""The kernel's hook table as data: at each hook, who runs, in priority order.

Each table registers its base chains at a fixed priority (``net/ipv4/netfilter/iptable_*.c``,
``include/uapi/linux/netfilter_ipv4.h``); conntrack and its confirmation are hook functions of
their own.  The traversal of a hook is a sort by priority -- nothing else -- so the order the
tracer follows can be read and checked here against the kernel's headers, and the IPv6 table
(``NF_IP6_PRI_*``, the same numbers) is the same data.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    priority: int
    kind: str
    table: str = ""

    @property
    def is_nat(self) -> bool:
        return self.kind == TABLE and self.table == "nat"


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
