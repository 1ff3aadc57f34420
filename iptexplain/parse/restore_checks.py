"""What iptables-restore (and the kernel behind it) refuses when a table is committed: a jump to
a chain the table lacks or to a built-in one, a module outside its tables, of the other family,
or reached from a hook it does not work at; quoting it does not know.  Each check answers with
the message iptables itself prints."""

from __future__ import annotations

from typing import Iterable

from iptexplain.ext.base import Extension
from iptexplain.graph import BUILTIN_CHAINS, Chain, Rule, Table
from iptexplain.parse.lazy import LazyRule

_HOOK_ORDER = {h: i for i, h in enumerate(("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"))}


def jump_error(table: Table, name: str) -> str | None:
    """What iptables-restore says of a jump to a chain the table does not have, or to a built-in one."""
    chain = table.chains.get(name)
    if chain is None:
        return f"jump to chain `{name}' which does not exist in table `{table.name}'"
    if chain.builtin:
        return f"cannot jump to built-in chain `{name}'"
    return None


def table_error(kind: str, name: str, only: tuple[str, ...] | None, table: str) -> str | None:
    """What iptables says of a module used outside the tables it works in (DNAT in filter)."""
    if only and table not in only:
        return f"{kind} {name} is only valid in the {'/'.join(only)} table"
    return None


def family_error(ext: Extension, family: int) -> str | None:
    """What iptables-restore / ip6tables-restore says of a module of the other family."""
    fam = ext.family
    if fam is None or fam == family:
        return None
    kind = "match" if ext.kind == "match" else "target"
    return (f"Couldn't load {kind} `{ext.spelled or ext.name}':No such file or directory (an IPv{fam} "
            f"module in an IPv{family} table)")


def hook_error(kind: str, spelled: str, allowed: frozenset[str] | None, hooks: set[str],
               chain: Chain) -> str | None:
    """What the kernel's refusal of a module reached from hooks it does not work at reads as."""
    if allowed is None or hooks <= allowed:
        return None
    bad = sorted(hooks - allowed, key=_HOOK_ORDER.get)
    via = "" if chain.builtin else f" (chain {chain.name} is reached from {', '.join(bad)})"
    return (f"{kind} {spelled} is only valid in {'/'.join(sorted(allowed, key=_HOOK_ORDER.get))}, "
            f"not in {', '.join(bad)}{via}")


def hook_reach(table: str, jumps) -> dict[str, set[str]]:  # noqa: ANN001
    """Chain name -> the hooks of ``table`` it is reached from, following ``jumps(name)`` (the
    chains a chain jumps or goes to) from each built-in chain."""
    reach: dict[str, set[str]] = {}
    for hook in BUILTIN_CHAINS[table]:
        todo = [hook]
        while todo:
            name = todo.pop()
            seen = reach.setdefault(name, set())
            if hook in seen:
                continue
            seen.add(hook)
            todo.extend(jumps(name))
    return reach


def _single_quoted(line: str) -> bool:
    """Does a single quote group words here?  iptables-restore only knows double quotes (and a
    backslash-escaped quote inside them), so ``--comment 'a b'`` is an error to it."""
    in_double = escaped = False
    for ch in line:
        if escaped:
            escaped = False
        elif ch == "\\" and in_double:
            escaped = True
        elif ch == '"':
            in_double = not in_double
        elif ch == "'" and not in_double:
            return True
    return False



_SPECIAL: dict[type, bool] = {}


def _special(cls: type) -> bool:
    """Whether rules with this module need more than storing (memo per class: a kube-proxy
    dump asks 300,000 times): its save form depends on the family, it adds notes, it works in
    some tables or hooks only, or it is of one family.  The checks made once a table is read
    (:meth:`RestoreChecks._check_hooks`, :meth:`RestoreChecks._check_module_families`) look
    only at the rules holding such a module (``SaveReader.hook_candidates``)."""
    v = _SPECIAL.get(cls)
    if v is None:
        v = _SPECIAL[cls] = bool(getattr(cls, "family_sensitive", False) or getattr(cls, "may_note", False)
                                 or getattr(cls, "table_only", None) or getattr(cls, "hooks", None) is not None
                                 or getattr(cls, "allowed_hooks", None) is not Extension.allowed_hooks
                                 or getattr(cls, "family", None) is not None)
    return v



class RestoreChecks:
    """The checks :class:`~iptexplain.parse.save.SaveReader` makes on a table it has read
    (mixed into it: they report through its ``error`` and notes)."""

    def _check_jumps(self, table: Table, excerpt: bool = False) -> None:
        """Refuse a jump to a chain the table lacks, as iptables-restore does -- unless the table
        is ``-S`` text (``excerpt``), which may show a rule and not the chain it jumps to: that
        chain is then one the input did not show (:attr:`Chain.listed` false)."""
        keep = []
        for t, r in self.pending_jumps:
            if t is not table:
                keep.append((t, r))
                continue
            name = r.jump
            if excerpt and name not in table.chains and name not in BUILTIN_CHAINS[table.name]:
                table.chains[name] = Chain(name, table.name, False, None, line=0, listed=False)  # type: ignore[arg-type]
                continue
            message = jump_error(table, name)  # type: ignore[arg-type]
            if message:
                raise self.error(message, r.line)
        self.pending_jumps = keep

    def _candidates(self, table: Table) -> list[Rule]:
        """The rules of ``table`` a check made once the table is read may refuse -- those
        holding a module :func:`_special` names, and the unread ones whose modules restrict the
        hooks -- in ``table.rules()``'s order, so that the first refused is the one a look at
        every rule would refuse first."""
        by_chain: dict[str, list[Rule]] = {}
        for r in self.hook_candidates.get(id(table), ()):
            by_chain.setdefault(r.chain, []).append(r)
        out: list[Rule] = []
        for name in table.chains:
            rules = by_chain.get(name)
            if rules:
                out += sorted(rules, key=lambda r: r.number)  # (-I puts a rule before earlier lines)
        return out

    def _check_module_families(self, table: Table, family: int) -> None:
        """A module of the other family (``icmp6`` in an IPv4 table, ``ttl`` in IPv6) is one
        iptables-restore / ip6tables-restore cannot load."""
        for r in self._candidates(table):
            if type(r) is LazyRule and not r.parsed:
                continue  # no module of one family only (lazy_jump)
            for ext in r.extensions():
                message = family_error(ext, family)
                if message:
                    raise self.error(message, r.line)

    def _check_hooks(self, table: Table) -> None:
        """The kernel refuses a module reached from a hook it does not work at (MASQUERADE from
        OUTPUT, ``-m owner`` from INPUT…), user chains included, as iptables-restore reports."""
        edges: dict[str, list[str]] = {}  # each chain's jumps, gathered once for all hooks

        def jumps(name: str) -> list[str]:
            out = edges.get(name)
            if out is None:
                chain = table.chains.get(name)
                out = edges[name] = [] if chain is None else [j for r in chain.rules if (j := r.jump) is not None]
            return out

        reach = hook_reach(table.name, jumps)
        # Most rules restrict nothing: only the candidates are looked at, in the rules' order.
        by_chain: dict[str, list[Rule]] = {}
        for r in self._candidates(table):
            by_chain.setdefault(r.chain, []).append(r)
        for name, rules in by_chain.items():
            chain = table.chains[name]
            self._check_rule_hooks(chain, rules, reach.get(chain.name))

    def _check_rule_hooks(self, chain: Chain, rules: Iterable[Rule], hooks: set[str] | None) -> None:
        """Raise the error iptables-restore gives when one of ``rules`` (of ``chain``, reached
        from ``hooks``) holds a module the kernel refuses at one of those hooks."""
        if not hooks:
            return
        for r in rules:
            if type(r) is LazyRule and not r.parsed:
                # Only modules whose class restricts the hooks (lazy_plan): checked by name.
                hooked = self.lazy_hooked.get(id(r))
                if hooked is None:
                    continue
                exts = [(cls.kind, spelled, cls.hooks) for cls, spelled in hooked]
            else:
                exts = [(ext.kind, ext.spelled or ext.name, ext.allowed_hooks()) for ext in r.extensions()]
            for kind, spelled, allowed in exts:
                message = hook_error(kind, spelled, allowed, hooks, chain)
                if message:
                    raise self.error(message, r.line)
