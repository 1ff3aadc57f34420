"""nftables in the rule graph: tables of a family, base and regular chains, rules, sets and maps.

An nft ruleset becomes the same structure the tracer already walks (:mod:`iptexplain.graph`):

* :class:`NftTable` is a :class:`~iptexplain.graph.Table` named as nft names it (``inet
  firewalld``), with its nft ``family`` (ip, ip6, inet, arp, bridge, netdev) and its named sets.
* :class:`NftChain` is a :class:`~iptexplain.graph.Chain`; a *base* chain also has its ``type``
  (filter, nat, route), ``hook``, numeric ``priority``, ``policy`` and ``devices`` -- the row it
  adds to the kernel's hook table (:func:`iptexplain.nft.hooks.base_chain_entries`).
* :class:`NftRule` is a :class:`~iptexplain.graph.Rule` whose ``matches`` are nft expressions and
  whose ``target`` is an :class:`iptexplain.nft.expr.base.Action`: the rule's statements in order
  (counter, log, mark set, NAT, …) ending in its verdict.  Both answer ``decide()`` / ``apply()``
  over packet sets, as xtables extensions do: the tracer never asks which language a rule is in.
* A rule whose verdict or NAT target comes from a map (``ip daddr vmap { … }``, ``dnat to
  numgen random mod 2 map { … }``) is walked as one *piece* per map element, in element order:
  each piece matches the element's key and carries the element's verdict, and a packet whose key
  is in no element goes on to the next rule, as the kernel's lookup does.  ``Chain.rules`` holds
  the pieces (what the tracer walks); ``NftChain.written`` the rules as nft prints them.
* :class:`NftSet` is a named set or map with its key type (concatenations included), flags and
  elements; anonymous sets live inside the expression that uses them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

from iptexplain.core.errors import OptionError
from iptexplain.graph import EMPTY_HEADER, Chain, Rule, Table
from iptexplain.nft.expr import Lookup
from iptexplain.nft.expr.base import Statement
from iptexplain.numbers import strtoul

# nft family -> the IP families (4, 6) whose packets its base chains see.  arp, bridge and netdev
# tables hook elsewhere (ARP, the bridge layer, the device's ingress): read, shown, not traced.
FAMILIES: dict[str, tuple[int, ...]] = {
    "ip": (4,), "ip6": (6,), "inet": (4, 6), "arp": (), "bridge": (), "netdev": (),
}

# The hooks of the IP families in netfilter's own words (the tracer's phases).
HOOKS: dict[str, str] = {
    "prerouting": "PREROUTING", "input": "INPUT", "forward": "FORWARD", "output": "OUTPUT",
    "postrouting": "POSTROUTING", "ingress": "INGRESS", "egress": "EGRESS",
}

# Standard priority names (nft(8) "PRIORITY"; NF_IP_PRI_*), for ip, ip6 and inet.
PRIORITY_NAMES: dict[str, int] = {
    "raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50, "srcnat": 100,
}
# The bridge family has its own (NF_BR_PRI_*).
BRIDGE_PRIORITY_NAMES: dict[str, int] = {"dstnat": -300, "filter": -200, "out": 100, "srcnat": 300}


def _signed(word: str) -> int:
    """``-90``, ``0x10``: an integer as nft reads one (ASCII digits only)."""
    return -strtoul(word[1:], "priority") if word.startswith("-") else strtoul(word, "priority")


def priority_value(words: list[str], family: str) -> int:
    """``filter + 10`` -> 10, ``mangle - 5`` -> -155, ``-90`` -> -90 (nft prints the standard
    names when it can).  Raises ValueError on anything else."""
    names = BRIDGE_PRIORITY_NAMES if family == "bridge" else PRIORITY_NAMES
    w = " ".join(words).replace("+", " + ").split()
    if not w:
        raise ValueError("the priority is missing")
    try:
        base = names[w[0]] if w[0] in names else _signed(w[0])
        if len(w) == 3 and w[1] in ("+", "-"):
            return base + strtoul(w[2], "priority") * (1 if w[1] == "+" else -1)
    except OptionError:
        pass
    else:
        if len(w) == 1:
            return base
    raise ValueError(f"bad priority `{' '.join(words)}'")


@dataclass(slots=True, eq=False)
class NftSet:
    """A named set or map of a table (``set allowed { type ipv4_addr; flags interval; … }``).

    ``key_types`` are the key's data types (``("ipv4_addr", "inet_service")`` for a
    concatenation); ``elements`` hold, per element, the key's values as written (one word list
    per concatenated field) and, for a map, the data words (``("accept",)``, ``("goto", "x")``,
    ``("10.0.0.1", ".", "80")``).  A set filled at run time (``flags dynamic``/``timeout`` and no
    elements listed, or elements a packet adds with ``add @set``) cannot be decided from a dump."""

    name: str
    table: str
    kind: str = "set"  # set or map
    key_types: tuple[str, ...] = ()
    typeof: str = ""  # `typeof ip saddr . tcp dport`: the key as expressions
    data_type: str = ""  # a map's data: verdict, ipv4_addr, ipv4_addr . inet_service, …
    flags: frozenset[str] = frozenset()
    elements: list[tuple[tuple[tuple[str, ...], ...], tuple[str, ...]]] = field(default_factory=list)
    line: int = 0
    handle: int | None = None
    comment: str = ""
    timeout: str = ""

    @property
    def dynamic(self) -> bool:
        """Whether packets change the set while the ruleset runs (timeouts, ``add @set``)."""
        return bool(self.flags & {"dynamic", "timeout"}) or bool(self.timeout)

    @property
    def is_vmap(self) -> bool:
        return self.kind == "map" and self.data_type == "verdict"


@dataclass(slots=True, eq=False)
class NftTable(Table):
    """``table FAMILY NAME``: ``name`` is what a trace shows (``inet firewalld``), ``nft_name``
    the table's own name.  ``managed_by`` is ``iptables-nft`` for the tables whose dump says
    so (``# Warning: table ip filter is managed by iptables-nft``)."""

    nft_family: str = "ip"
    nft_name: str = ""
    sets: dict[str, NftSet] = field(default_factory=dict)
    handle: int | None = None
    managed_by: str = ""
    flags: tuple[str, ...] = ()
    comment: str = ""

    @property
    def ip_families(self) -> tuple[int, ...]:
        """The families of packets this table's base chains see (none: arp/bridge/netdev)."""
        return FAMILIES.get(self.nft_family, ())


@dataclass(slots=True, eq=False)
class NftChain(Chain):
    """A chain; a base chain (``builtin``) is registered on ``hook`` at ``priority`` with
    ``type`` filter, nat or route and its ``policy`` (ACCEPT/DROP, as the tracer says it).
    ``written`` are the rules as nft prints them (``rules`` are what the tracer walks: a
    map-driven rule is one piece per element)."""

    nft_type: str | None = None
    hook: str | None = None  # PREROUTING, INPUT, … (INGRESS/EGRESS for netdev)
    priority: int | None = None
    priority_text: str = ""  # as written: `filter + 10`
    devices: tuple[str, ...] = ()
    handle: int | None = None
    comment: str = ""
    written: list["NftRule"] = field(default_factory=list)

    @property
    def is_base(self) -> bool:
        return self.hook is not None


@dataclass(slots=True, eq=False)
class NftRule(Rule):
    """One nft rule (or one map element's piece of it, see the module's docstring).

    ``text`` is the rule as nft prints it (without counters' values and handle); ``handle`` the
    kernel's handle when the dump has them (``nft -a``).  ``piece`` says which map element this
    piece stands for (``10.0.0.1 : goto svc1``), empty for a rule walked whole."""

    handle: int | None = None
    text: str = ""
    comment: str = ""
    piece: str = ""
    verdict_chain: str | None = None  # jump/goto target (see ``jump``)
    exprs: tuple[Any, ...] = ()  # every expression and statement in written order

    @property
    def jump(self) -> str | None:  # type: ignore[override]
        """The chain this rule jumps or goes to (``goto`` says which), if any."""
        return self.verdict_chain

    def save_args(self) -> list[str]:
        return self.text.split()

    def raw_keys(self, bits: int = 32) -> tuple[int | None, int | None]:
        """``(destination, destination port)`` this rule requires exactly, for the tracer's
        index of a big chain (:class:`iptexplain.netfilter.facts.ChainIndex`): kube-proxy's
        ``ip daddr . meta l4proto . th dport vmap { … }`` is one piece per service, each
        requiring its cluster IP and port.  None in a place: no such requirement."""
        dst = dport = None
        for m in self.matches:
            sels = getattr(m, "selectors", ())
            if not sels or getattr(m, "op", "") != "==" or getattr(m, "set_ref", None) is not None:
                continue
            vals = [m.values] if len(sels) == 1 else (m.values if len(m.values) == 1 else [])
            for el in vals:
                for s, v in zip(sels, (el,) if len(sels) == 1 else el):
                    one = v[0][0] if isinstance(v, tuple) and len(v) == 1 and isinstance(v[0], tuple) \
                        and v[0][0] == v[0][1] else None
                    if one is None:
                        continue
                    key = getattr(s, "index_field", None)
                    if key == "dst" and s.bits == bits:
                        dst = one
                    elif key == "dport":
                        dport = one
        return dst, dport

    def spec(self) -> str:
        """The rule as nft prints it, with its handle when known."""
        out = self.text
        if self.piece:
            out += f"  [element {self.piece}]"
        return out

    def parts(self) -> tuple[str, str, list[str]]:
        """(matches, verdict and statements, comments) as nft prints them, for the views."""
        comments = [self.comment] if self.comment else []
        if self.piece:
            # a map-driven rule as written, and the element this piece stands for
            text = self.text.replace(f' comment "{self.comment}"', "") if self.comment else self.text
            return text, f"[element {self.piece}]", comments
        if any(isinstance(e, Lookup) for e in self.exprs):
            # a map-driven rule as written: the key's lookup is its verdict (or NAT target)
            m = " ".join(e.nft_text() for e in self.exprs if not isinstance(e, (Lookup, Statement)))
            t = " ".join(e.text for e in self.exprs if isinstance(e, (Lookup, Statement)))
            return m, t, comments
        m = " ".join(e.nft_text() for e in self.matches)
        t = self.target.nft_text() if self.target is not None else ""
        return m, t, comments

    def where(self) -> str:
        base = f"{self.source}:{self.line}" if self.line else self.source
        return base + (f" handle {self.handle}" if self.handle is not None else "")

    def __repr__(self) -> str:
        return f"<NftRule {self.table}/{self.chain}#{self.number} {self.text}>"


def new_rule(table: str, chain: str, matches: tuple, action: Any, *, text: str, line: int, number: int,
             source: str, handle: int | None, comment: str, exprs: tuple, piece: str = "") -> NftRule:
    """An :class:`NftRule` whose jump/goto come from its action's verdict."""
    verdict = getattr(action, "verdict_stmt", None)
    chain_to = getattr(verdict, "chain", None) if verdict is not None else None
    goto = bool(verdict is not None and getattr(verdict, "kind", "") == "goto")
    return NftRule(table, chain, EMPTY_HEADER, matches, action, goto=goto, line=line, number=number,
                   source=source, handle=handle, text=text, comment=comment, piece=piece,
                   verdict_chain=chain_to, exprs=exprs)


def nft_tables(ruleset: Any) -> Iterator[NftTable]:
    """The nft tables of a ruleset (read from ``nft list ruleset`` or its JSON)."""
    yield from getattr(ruleset, "nft_tables", None) or ()
