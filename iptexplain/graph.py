"""The rule graph: tables, chains, policies, rules, matches, targets and jump edges.

Every input format (iptables-save, ``-S``, ``-nL`` listings, a live host) becomes this one
structure, and every output (views, JSON, Graphviz, save text) is produced from it.  Rules keep
the source line they came from so that a trace can point back into the user's file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

from iptexplain.core.addr import Address
from iptexplain.ext.base import ChainJump, Extension, Match, Target, extension_name

# Built-in chains of each table, in the order iptables-save prints them.
BUILTIN_CHAINS: dict[str, tuple[str, ...]] = {
    "raw": ("PREROUTING", "OUTPUT"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "security": ("INPUT", "FORWARD", "OUTPUT"),
}
TABLE_ORDER = ("raw", "mangle", "nat", "filter", "security")
STANDARD_VERDICTS = frozenset({"ACCEPT", "DROP", "RETURN", "QUEUE"})


@dataclass(frozen=True, slots=True)
class Counters:
    packets: int
    bytes: int

    def __str__(self) -> str:
        return f"[{self.packets}:{self.bytes}]"


@dataclass(frozen=True, slots=True)
class IPHeader:
    """The fields every rule has without a module (``struct ipt_ip``): -s -d -p -i -o -f."""

    src: Address | None = None
    src_inv: bool = False
    dst: Address | None = None
    dst_inv: bool = False
    iniface: str | None = None
    iniface_inv: bool = False
    outiface: str | None = None
    outiface_inv: bool = False
    proto: str | None = None  # lower-case name ("tcp") or number as text; None = all
    proto_inv: bool = False
    fragment: bool | None = None  # True: -f, False: ! -f

    def save_args(self) -> list[str]:
        """In the order iptables-save prints them."""
        out: list[str] = []
        if self.src is not None:
            out += (["!"] if self.src_inv else []) + ["-s", str(self.src)]
        if self.dst is not None:
            out += (["!"] if self.dst_inv else []) + ["-d", str(self.dst)]
        if self.iniface is not None:
            out += (["!"] if self.iniface_inv else []) + ["-i", self.iniface]
        if self.outiface is not None:
            out += (["!"] if self.outiface_inv else []) + ["-o", self.outiface]
        if self.proto is not None:
            out += (["!"] if self.proto_inv else []) + ["-p", self.proto]
        if self.fragment is not None:
            out += (["-f"] if self.fragment else ["!", "-f"])
        return out


EMPTY_HEADER = IPHeader()


@dataclass(slots=True, eq=False)
class Rule:
    """One rule, in its chain, in the order the kernel evaluates it."""

    table: str
    chain: str
    header: IPHeader
    matches: tuple[Match, ...]
    target: Target | None  # None: a rule with no target (only counts)
    goto: bool = False
    counters: Counters | None = None
    line: int = 0
    number: int = 0  # 1-based position in its chain, as `--line-numbers` shows
    source: str = "<input>"

    @property
    def jump(self) -> str | None:
        """The user-defined chain this rule jumps or goes to, if any."""
        return self.target.chain if isinstance(self.target, ChainJump) else None

    @property
    def target_name(self) -> str:
        return "" if self.target is None else extension_name(self.target)

    def extensions(self) -> Iterator[Extension]:
        yield from self.matches
        if self.target is not None:
            yield self.target

    def save_args(self) -> list[str]:
        """The rule's specification after ``-A CHAIN``."""
        out = self.header.save_args()
        for m in self.matches:
            out += m.save()
        if self.target is not None:
            t = self.target.save()
            if self.goto:
                t = ["-g"] + t[1:]
            out += t
        return out

    def spec(self) -> str:
        """The rule as ``iptables-save`` prints it, without counters."""
        return " ".join(["-A", self.chain] + self.save_args())

    def where(self) -> str:
        return f"{self.source}:{self.line}" if self.line else self.source

    def __repr__(self) -> str:
        return f"<Rule {self.table}/{self.chain}#{self.number} {' '.join(self.save_args())}>"


@dataclass(slots=True, eq=False)
class Chain:
    name: str
    table: str
    builtin: bool
    policy: str | None = None  # built-in chains: ACCEPT or DROP
    counters: Counters | None = None
    rules: list[Rule] = field(default_factory=list)
    line: int = 0
    references: list[Rule] = field(default_factory=list)  # filled by Ruleset.link()
    # What the input did not show of this chain.  iptables-save and a live host show a whole
    # ruleset; ``-S`` and ``-L`` text -- and what people paste of it -- show parts.
    # ``listed`` False: the chain was never shown (a built-in chain absent from the text, a user
    # chain only jumped to or only named); it is stored empty, a built-in one with policy ACCEPT
    # as iptables would create it, but that is a placeholder: its rules and policy are unknown.
    # ``policy_known`` False: a built-in chain whose rules were shown but not its policy (an -S
    # excerpt without its ``-P`` line).  ``gaps``: where rules the input left out may sit, as the
    # number of shown rules before each gap: an elision line (``...``) in a paste, or a paste cut
    # off inside the chain (a gap at ``len(rules)``).
    listed: bool = True
    policy_known: bool = True
    gaps: tuple[int, ...] = ()
    # The input whose ``line`` it is, when the ruleset was read from several (""): the ruleset's).
    source: str = ""
    # How many rules jump to it in the kernel, as a listing's ``(N references)`` header says
    # (None: not shown).  More than the input's own jumps: its callers are not in the input.
    kernel_references: int | None = None

    def __repr__(self) -> str:
        return f"<Chain {self.table}/{self.name} {self.size} rules>"

    def located(self, ruleset_source: str) -> str:
        """``FILE:LINE`` of the line that declared the chain or set its policy ("" if none)."""
        return f"{self.source or ruleset_source}:{self.line}" if self.line else ""

    @property
    def complete(self) -> bool:
        """Whether the input showed all of the chain: its policy (if built-in) and every rule."""
        return self.listed and self.policy_known and not self.gaps

    @property
    def size(self) -> int:
        """How many rules the chain has, without reading a deferred chain's rules
        (:class:`iptexplain.parse.deferred.DeferredChain`): counting must not read 100,000 rules."""
        return len(self.rules)

    def may_use(self, names: frozenset[str]) -> bool:
        """Whether a rule of the chain may use a module of ``names``; only a deferred chain can
        answer "no" without reading its rules (its text does not mention them)."""
        return bool(self.rules)


@dataclass(slots=True, eq=False)
class Table:
    name: str
    family: int
    chains: dict[str, Chain] = field(default_factory=dict)
    line: int = 0
    source: str = ""  # the input it was read from (its rules' Rule.source), when known

    def chain(self, name: str) -> Chain | None:
        return self.chains.get(name)

    def ensure_builtins(self, listed: bool = True) -> list[str]:
        """Give a table its built-in chains (ACCEPT policy, as iptables creates them) when the
        input omitted them, and return their names.  ``listed``: whether the input is one that
        shows every built-in chain of a table it holds (iptables-save, where an absent chain is
        an empty one) -- False for -S / -L text, where the chains added are marked unknown
        (:attr:`Chain.listed`)."""
        added = []
        for name in BUILTIN_CHAINS.get(self.name, ()):
            if name not in self.chains:
                self.chains[name] = Chain(name, self.name, True, policy="ACCEPT", listed=listed)
                added.append(name)
        return added

    def rules(self) -> Iterator[Rule]:
        for c in self.chains.values():
            yield from c.rules


@dataclass(slots=True)
class Note:
    """Something the user should know about the input (format losses, inferences, repairs)."""

    kind: str  # "fidelity", "inference", "duplicate", "repair", "unknown-module", ...
    message: str
    line: int | None = None


@dataclass(slots=True, eq=False)
class Ruleset:
    """Everything read from one input: tables of one or both families."""

    tables: dict[tuple[int, str], Table] = field(default_factory=dict)
    source: str = "<input>"
    format: str = "save"  # save, S, listing, live
    notes: list[Note] = field(default_factory=list)
    # What the input format could not show, for the tracer to mark dependent verdicts uncertain:
    # "interfaces" (-L without -v: no -i/-o), "counters" (absent), "counters-rounded" (K/M/G),
    # "names" (-L without -n: hosts/services read back from names), "chains" (some chains of a
    # table not listed), "matches" (row text that could not be read back), "options" (module
    # options -L does not print, e.g. hashlimit's table name).  Empty: nothing hidden.
    hidden: set[str] = field(default_factory=set)
    # Read from several inputs (iptexplain.parse.combine): what each hid, by source, when they
    # differ -- an -nL listing's rules may hide interfaces, a save dump's beside it do not.
    # Empty: ``hidden`` holds for every rule.
    hidden_in: dict[str, set[str]] = field(default_factory=dict)
    # Some chains' rules are still text: the reader's book (iptexplain.parse.deferred.DeferredBook),
    # which counts them; ``references`` are filled by parse_all(), which reads them.
    deferred: Any = None
    # Rules whose hidden parts were filled in from a tool's standard rules
    # (iptexplain.parse.toolshapes.fill_in): rule -> Filled (what, from which tool).
    filled: dict = field(default_factory=dict)
    # Tables read from `nft list ruleset` (iptexplain.nft.model.NftTable), in the order printed:
    # their base chains join the iptables tables' on the hooks (iptexplain.netfilter.hooks.hook_entries).
    nft_tables: list[Any] = field(default_factory=list)
    # Whether the input is a whole ruleset -- iptables-save, a snapshot, a live host -- in which a
    # table it does not hold is one the kernel has not loaded, so no rules.  False for ``-S`` and
    # ``-L`` text, which show one table per command (filter without ``-t``): the tables they do
    # not show are unknown, not empty (:meth:`missing_tables`).
    whole: bool = True

    def table(self, name: str, family: int = 4) -> Table | None:
        return self.tables.get((family, name))

    def families(self) -> list[int]:
        fams = {f for f, _ in self.tables}
        for t in self.nft_tables:
            fams.update(t.ip_families)
        return sorted(fams)

    def tables_of(self, family: int) -> list[Table]:
        """Tables of a family in the canonical order (raw, mangle, nat, filter, security)."""
        ts = [t for (f, _), t in self.tables.items() if f == family]
        order = {n: i for i, n in enumerate(TABLE_ORDER)}
        return sorted(ts, key=lambda t: order.get(t.name, 99))

    def rules(self) -> Iterator[Rule]:
        for t in self.tables.values():
            yield from t.rules()
        for t in self.nft_tables:
            yield from t.rules()

    def tables_shown(self, family: int = 4) -> tuple[str, ...]:
        """The tables of ``family`` the input holds, in the kernel's order."""
        return tuple(t.name for t in self.tables_of(family))

    def missing_tables(self, family: int = 4) -> tuple[str, ...]:
        """The tables of ``family`` (raw, mangle, nat, filter, security) whose rules the input
        does not show and which are therefore unknown: none for a whole ruleset, the tables not
        listed for -S / -L text.  A family the input has no table of at all is not reported
        (the trace refuses it)."""
        if self.whole or family not in self.families():
            return ()
        shown = set(self.tables_shown(family))
        return tuple(n for n in TABLE_ORDER if n not in shown)

    def unknown_chains(self) -> list[Chain]:
        """Chains the input did not show whole (:attr:`Chain.complete` false), table by table."""
        return [c for t in self.tables.values() for c in t.chains.values() if not c.complete]

    def rule_count(self) -> int:
        if self.deferred is not None:
            return self.deferred.rule_count()
        # an nft rule counts once, as written, however many map elements it is walked as
        return (sum(c.size for t in self.tables.values() for c in t.chains.values())
                + sum(len(c.written) for t in self.nft_tables for c in t.chains.values()))

    def link(self) -> None:
        """Fill every chain's ``references`` with the rules that jump or go to it."""
        for t in [*self.tables.values(), *self.nft_tables]:
            for c in t.chains.values():
                c.references = []
            for r in t.rules():
                j = r.jump
                if j is not None and j in t.chains:
                    t.chains[j].references.append(r)

    def parse_all(self) -> None:
        """Read every rule a lazy reader left unread (iptexplain.parse.lazy), in line order, so
        that a bad option anywhere raises its ``FILE:LINE`` error now; a no-op otherwise."""
        book = self.deferred
        if book is not None:
            for t in [*self.tables.values(), *self.nft_tables]:
                for c in t.chains.values():
                    c.rules  # noqa: B018 -- reads a deferred chain
                for s in getattr(t, "sets", {}).values():
                    s.elements  # noqa: B018 -- reads a deferred element list
            self.deferred = None
            self.link()
            # The checks of every rule need every chain's hooks (a save or -S text's book; a
            # listing's book checks no hooks).
            hooks = getattr(book, "hooks_from_references", None)
            if hooks is not None:
                hooks()
        pending = sorted((r for r in self.rules() if not getattr(r, "parsed", True)), key=lambda r: r.line)
        for r in pending:
            r.parse()  # type: ignore[attr-defined]

    def not_understood(self) -> dict[str, int]:
        """Modules kept verbatim because no extension knows them: name -> rule count."""
        out: dict[str, int] = {}
        for r in self.rules():
            for e in r.extensions():
                if not e.understood:
                    n = extension_name(e)
                    out[n] = out.get(n, 0) + 1
        return out

    def note(self, kind: str, message: str, line: int | None = None) -> None:
        self.notes.append(Note(kind, message, line))

    def unseen(self, rule: Rule) -> frozenset[str]:
        """What this rule may test that the input format did not show: "interfaces" when the
        input hid -i/-o (``iptables -nL``: the rule may only apply on some interfaces),
        "address" when a source/destination was printed as a name that could not be resolved,
        "match" when row text could not be read back.  A verdict that depends on such a rule is
        uncertain; empty for iptables-save input."""
        hidden = self.hidden_in.get(rule.source, self.hidden) if self.hidden_in else self.hidden
        if not hidden:
            return frozenset()
        out: set[str] = set()
        h = rule.header
        if rule in self.filled:
            out.add("filled")
        elif "interfaces" in hidden and h.iniface is None and h.outiface is None:
            out.add("interfaces")
        for m in rule.matches:
            if not m.understood:
                out.add("address" if getattr(m, "direction", None) in ("src", "dst") else "match")
        return frozenset(out)

    def difference(self, other: "Ruleset", ignore: frozenset[str] | set[str] = frozenset()) -> str | None:
        """The first way ``other`` differs from this ruleset, in words, or None when they are the
        same rule graph: tables, chains, policies, and per rule its header, matches, target and
        goto, compared in iptables-save's canonical form.  ``ignore`` may hold "interfaces"
        (-i/-o), "counters", "policy-counters", "extra-tables" (tables only ``other`` has)."""

        def rule_key(r: Rule) -> tuple:
            h = r.header
            if "interfaces" in ignore:
                h = IPHeader(h.src, h.src_inv, h.dst, h.dst_inv, None, False, None, False,
                             h.proto, h.proto_inv, h.fragment)
            key: tuple = (h.save_args(), [m.save() for m in r.matches],
                          r.target.save() if r.target is not None else None, r.goto)
            if "counters" not in ignore:
                key += (r.counters,)
            return key

        mine, theirs = set(self.tables), set(other.tables)
        if mine - theirs:
            fam, name = sorted(mine - theirs)[0]
            return f"table {name} (IPv{fam}) is missing"
        if theirs - mine and "extra-tables" not in ignore:
            fam, name = sorted(theirs - mine)[0]
            return f"table {name} (IPv{fam}) is extra"
        for key in sorted(mine):
            a, b = self.tables[key], other.tables[key]
            where = f"{a.name} (IPv{a.family})"
            if list(a.chains) != list(b.chains) and set(a.chains) != set(b.chains):
                missing = [c for c in a.chains if c not in b.chains]
                extra = [c for c in b.chains if c not in a.chains]
                return f"table {where}: chains differ (missing {missing}, extra {extra})"
            for cname, ca in a.chains.items():
                cb = b.chains[cname]
                if ca.policy != cb.policy:
                    return f"{where} {cname}: policy {ca.policy} vs {cb.policy}"
                if "counters" not in ignore and "policy-counters" not in ignore and ca.counters != cb.counters:
                    return f"{where} {cname}: policy counters {ca.counters} vs {cb.counters}"
                if len(ca.rules) != len(cb.rules):
                    return f"{where} {cname}: {len(ca.rules)} rules vs {len(cb.rules)}"
                for ra, rb in zip(ca.rules, cb.rules):
                    ka, kb = rule_key(ra), rule_key(rb)
                    if ka != kb:
                        return (f"{where} {cname} rule {ra.number}: `{' '.join(ra.save_args())}' "
                                f"({ra.where()}) vs `{' '.join(rb.save_args())}' ({rb.where()})"
                                + (f" counters {ra.counters} vs {rb.counters}" if ka[:4] == kb[:4] else ""))
        return None
