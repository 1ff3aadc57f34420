"""Which table text without a ``*table`` line belongs to: ``iptables -S`` output split into its
tables, and a table inferred from the built-in chains and targets it uses (PREROUTING + DNAT:
nat) -- for -S text and for listings."""

from __future__ import annotations

import re

from iptexplain.ext import target_class
from iptexplain.graph import BUILTIN_CHAINS

_IPTABLES_WORD_RE = re.compile(r"ip6?tables(?:-legacy|-nft)?\s")
_TABLE_HINT_RE = re.compile(r"(?:^|\s)(?:-t|--table)\s*(raw|mangle|nat|filter|security)\b")


def _s_command(line: str) -> bool:
    r"""True when ``line`` holds an ``iptables … -S`` (``--list-rules``) command, up to a ``|`` or
    ``;``.  Not one regex: ``ip6?tables\s(?:[^|;]*\s)?-S`` backtracks over the rest of the line
    from every ``iptables`` in it (a 90 KB line of them: 26 s).  Each command's words are looked
    at once: a later ``iptables`` in the same command has a suffix of them."""
    pos = 0
    while True:
        m = _IPTABLES_WORD_RE.search(line, pos)
        if m is None:
            return False
        end = len(line)
        for stop in ("|", ";"):
            k = line.find(stop, m.end() - 1)
            if 0 <= k < end:
                end = k
        words = line[m.end() - 1:end].split()
        if "-S" in words or "--list-rules" in words:
            return True
        pos = end + 1


def s_sections(lines: list[str]) -> list[tuple[int, int, str | None]]:
    """Cut ``-S`` text into the output of each command: ``(first, end, table)`` line index
    ranges, ``table`` the one a prompt names (``# iptables -t nat -S``: nat; ``iptables -S``:
    filter) or None when no prompt says.  Without prompts, a ``-P`` line after ``-A``/``-N``
    lines, or a second ``-P`` for one chain, starts another command's output: iptables -S prints
    a table's policies first."""
    out: list[tuple[int, int, str | None]] = []
    start, named = 0, None
    policies: set[str] = set()
    ruled = False
    for i, raw in enumerate(lines):
        line = raw.strip()
        if not line:
            continue
        if line[0] not in "-[":
            if "-S" in line.split() or "--list-rules" in line or _s_command(line):
                m = _TABLE_HINT_RE.search(line)
                if m or _s_command(line):
                    if ruled or policies:
                        out.append((start, i, named))
                    start, named, policies, ruled = i, (m.group(1) if m else "filter"), set(), False
            continue
        words = line.split()
        if words[0] in ("-P", "--policy") and len(words) > 1:
            if ruled or words[1] in policies:
                out.append((start, i, named))
                start, named, policies, ruled = i, None, set(), False
            policies.add(words[1])
        elif words[0] in ("-A", "--append", "-N", "--new-chain"):
            ruled = True
    out.append((start, len(lines), named))
    return out

_MANGLE_TARGETS = frozenset({"MARK", "CONNMARK", "TCPMSS", "CHECKSUM", "TOS", "DSCP", "TTL", "HL", "TPROXY", "CLASSIFY"})
_FILTER_CHAINS = frozenset(BUILTIN_CHAINS["filter"])


def _tables_allowed(target: str) -> tuple[str, ...] | None:
    """The tables a target is valid in (its extension's ``table_only``), None: any.  The lookup
    imports only the module named after the target (every name is its module's, the registry
    test holds them to it): a kube-proxy -S text names 37,000 chains after -j, and importing all
    ~90 extension modules to learn that none is a target cost more than reading the text."""
    cls = target_class(target)
    return getattr(cls, "table_only", None) if cls is not None else None


def infer_table(builtin_chains: set[str], targets: set[str]) -> tuple[str, str]:
    """The table of ``-S`` / ``-L`` text that no ``-t`` names, and why.

    iptables prints the filter table unless ``-t`` names another, so such text is filter -- a
    filter table using TCPMSS or MARK is still filter -- unless it cannot be: a built-in chain
    filter does not have (PREROUTING, POSTROUTING) or a target valid only in other tables (DNAT,
    NOTRACK: each extension's ``table_only``) means the ``-t`` was lost with the prompt, and the
    table is the one these allow, its built-in chains telling the tables apart (-S and -L print
    every built-in chain of a table).  Shared by ``-S`` output and ``-L`` listings; the reason is
    shown to the user.
    """
    odd_chains = sorted(builtin_chains - _FILTER_CHAINS)
    only = {t: allowed for t in sorted(targets) if (allowed := _tables_allowed(t)) and "filter" not in allowed}
    if not odd_chains and not only:
        return "filter", "iptables prints the filter table unless -t names another"
    why = []
    if odd_chains:
        why.append(f"it has {', '.join(odd_chains)} chain{'s' if len(odd_chains) > 1 else ''}, which filter has not")
    if only:
        why.append(f"it uses {', '.join(only)}, valid only in {'/'.join(sorted(set().union(*only.values())))}")
    fits = [t for t in BUILTIN_CHAINS if t != "filter" and builtin_chains <= set(BUILTIN_CHAINS[t])
            and all(t in allowed for allowed in only.values())]
    exact = [t for t in fits if set(BUILTIN_CHAINS[t]) == builtin_chains]
    if exact:
        pick = exact[0]
    elif len(fits) > 1 and "mangle" in fits and targets & _MANGLE_TARGETS:
        pick = "mangle"
    elif "nat" in fits:
        pick = "nat"
    elif fits:
        pick = fits[0]
    else:
        return "filter", f"no table fits ({'; '.join(why)})"
    return pick, f"it cannot be filter, which iptables prints without -t: {'; '.join(why)}"


def infer_table_from_s(lines: list[str]) -> tuple[str, str]:
    chains: set[str] = set()
    targets: set[str] = set()
    for line in lines:
        if line.startswith("-P "):
            parts = line.split()
            if len(parts) > 1:
                chains.add(parts[1])
        elif line.startswith("-A "):
            parts = line.split()
            if len(parts) < 2:
                continue  # `-A ' alone: the reader reports it at its line
            if parts[1] in ("PREROUTING", "POSTROUTING", "INPUT", "OUTPUT", "FORWARD"):
                chains.add(parts[1])
            for i, w in enumerate(parts[:-1]):
                if w in ("-j", "--jump"):
                    targets.add(parts[i + 1])
    return infer_table(chains, targets)
