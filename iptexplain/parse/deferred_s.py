"""``iptables -S`` text read the way :mod:`iptexplain.parse.deferred` reads iptables-save text:
the layout confirmed by one regular expression, each chain's rules kept as text until a trace
reaches them, each rule read (and checked) when looked at.

``iptables -t nat -S`` of a 10,000-service kube-proxy node is 140,000 lines: per table (one per
command: filter unless ``-t`` names another) its policies, ``-P CHAIN POLICY [-c P B]``, its user
chains, ``-N CHAIN``, then each chain's ``-A CHAIN …`` lines in one run.  That is iptables-save's
layout with other words for the declarations, and this scan reads it into the same
:class:`~iptexplain.parse.deferred.DeferredChain`\\ s and
:class:`~iptexplain.parse.deferred.DeferredBook` -- one reader design for both layouts.

Which table a command's output is, and where one command's output ends, is decided as the general
reader decides it (:mod:`iptexplain.parse.s_tables`): the ``--table`` option, a prompt naming the
table (``# iptables -t nat -S``), a ``-P`` line after rules (the next command's output), else the
table the built-in chains and targets allow.  Several commands' output become one ruleset, with
the notes :func:`iptexplain.parse.combine.combine` gives them.

What only the whole text can tell is read from it with regular expressions, not line by line:
the chains each table's rules jump to (the words after ``-j``/``-g`` that are a line's last
unquoted words, which is where iptables prints a chain jump), so that a chain nothing jumps to is
named as the general reader names it (:func:`iptexplain.parse.partial.entry_chains`).

Anything this scan does not expect gives up (:class:`~iptexplain.parse.deferred.GiveUp`), and the
general reader reads the text, repairing or reporting it exactly: what
:func:`~iptexplain.parse.deferred.read_deferred` gives up on, and here also ``-I``/``-D`` and
long spellings (``--append``, ``--jump``), counters before a rule, a chain jumped to that the text
does not show (an excerpt), rules of a chain no ``-N`` declared, a table given twice, a prompt
that names a table where ``--table`` named one, prose between two commands' output, a last rule
the reader cannot read (a paste cut off mid-rule is noted, not refused, by the general reader).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from iptexplain.core.errors import InputError, OptionError
from iptexplain.graph import BUILTIN_CHAINS, STANDARD_VERDICTS, Counters, Note, Ruleset, Table
from iptexplain.parse.deferred import _EMPTY, DeferredBook, DeferredChain, GiveUp, _odd, prove_families
from iptexplain.parse.gc_pause import _no_gc
from iptexplain.parse.restore_checks import table_error
from iptexplain.parse.rough import _ELISION_RE
from iptexplain.parse.rulespec import IPTABLES_TARGETS, parse_rulespec
from iptexplain.parse.s_tables import _TABLE_HINT_RE, _s_command, infer_table
from iptexplain.parse.tokenize import split_args

# One match per chain's run of rules, per block of -N lines, or per other line.
# (A rule line ending in a blank is no run: the scan gives up on it, as on any other blank at a
# line end, which _odd is spared looking for.)
_S_BLOCKS = re.compile(r"(?P<run>-A (?P<chain>[^ \n]+) [^\n]*[^ \n]\n(?:-A (?P=chain) [^\n]*[^ \n]\n)*)"
                       r"|(?P<decls>(?:-N [^ \n]+\n)+)|(?P<line>[^\n]*)\n")
_POLICY = re.compile(r"-P ([^ \n]+) (ACCEPT|DROP)(?: -c ([0-9]{1,20}) ([0-9]{1,20}))?")
# A chain jump: the word after -j/-g that ends its line (iptables prints a jump last, and a chain
# jump takes no options).  A "-j X" quoted at the end of a comment is taken as the word `X"',
# which is no chain: the scan gives up.  A long spelling (--jump, --goto) or getopt's
# abbreviation of one is taken too -- and gives up as a word that is no chain when it is
# another option.
_CHAIN_JUMP = re.compile(r" --?[jg][a-z]* +([^ \n]+)\n")
# Every word after -j, quoted or not: the targets the table is inferred from
# (s_tables.infer_table_from_s looks at the words of each line).
_TARGET_WORDS = re.compile(r" (?:-j|--jump) +([^ \n]+)")
_NOT_CHAINS = STANDARD_VERDICTS | IPTABLES_TARGETS
_ALL_BUILTINS = frozenset(c for chains in BUILTIN_CHAINS.values() for c in chains)
_HOOK_CHAINS = ("PREROUTING", "POSTROUTING", "INPUT", "OUTPUT", "FORWARD")
# Smaller texts are read whole by the general reader (every line checked at once): a trace of
# them takes a few milliseconds either way.
DEFER_MIN = 1 << 20


@dataclass
class _Section:
    """One command's output: its lines ``[start, end)`` of the text (character offsets) and the
    line its first line is."""

    start: int
    line: int
    named: str | None  # the table a prompt (or --table) names
    chains: dict[str, DeferredChain] = field(default_factory=dict)
    policies: dict[str, int] = field(default_factory=dict)  # -P chain -> line
    declared: set[str] = field(default_factory=set)  # -N chains
    end: int = 0
    skipped: list[int] = field(default_factory=list)  # prose lines (prompts not starting with #)
    first_command: int | None = None


def _prompt(line: str) -> tuple[bool, str | None, bool]:
    """What a line that is no command says of the table: ``(starts a command's output (as
    s_tables.s_sections sees it), the table it names or None, names one to the reader's
    _maybe_table_hint)``."""
    m = _TABLE_HINT_RE.search(line)
    hint = m is not None and ("-S" in line or "--list-rules" in line)
    starts = False
    if "-S" in line.split() or "--list-rules" in line or _s_command(line):
        starts = m is not None or _s_command(line)
    return starts, (m.group(1) if m else ("filter" if starts else None)), hint


def read_deferred_s(text: str, source: str, family: int | None = None, table: str | None = None) -> Ruleset:
    """Scan ``iptables -S`` text (the whole input, as :func:`iptexplain.parse.parse_text` has it:
    ``table`` is ``--table``); raise :class:`GiveUp` when it is not in the layout iptables prints
    (see the module's docstring), or holds anything :func:`iptexplain.parse.rough.clean` would
    change.  The caller names the gaps (:func:`iptexplain.parse.partial.name_gaps`)."""
    if not text or _odd(text, blank_ends=False):
        raise GiveUp
    if not text.endswith("\n"):
        text += "\n"
    rs = Ruleset(source=source, format="S", whole=False)
    book = DeferredBook(rs, source)
    sections: list[_Section] = []
    sec = _Section(0, 1, table)
    base_line = 1
    pos_line = 0  # the offset whose line is base_line (counted forward, only where needed)
    not_rules = 0
    ruled = False  # the current command's output has shown -N or -A lines (s_sections' word)
    with _no_gc(freeze=True):
        chains = sec.chains
        for m in _S_BLOCKS.finditer(text):
            kind = m.lastindex
            if kind == 1:  # a chain's run of rules
                ch = chains.get(m[2])
                if ch is None or ch._pending is not _EMPTY:
                    ch = _undeclared(sec, m, text, base_line + text.count("\n", pos_line, m.start()), book)
                ch._pending = (text, *m.span())
                ruled = True
                continue
            start = m.start()
            base_line += text.count("\n", pos_line, start)
            pos_line = start
            if kind == 3:  # -N lines
                ruled = True
                if sec.first_command is None:
                    sec.first_command = base_line
                block = m.group()
                names = block[3:-1].split("\n-N ")
                not_rules += len(names)
                tname = sec.named or ""  # (a name inferred later is given to each chain then)
                made = {name: DeferredChain(name, tname, False, None, None, k, book, 1)
                        for k, name in enumerate(names, base_line)}
                if len(made) != len(names) or not made.keys().isdisjoint(chains) or max(map(len, made)) > 28 \
                        or not made.keys().isdisjoint(IPTABLES_TARGETS) or not made.keys().isdisjoint(STANDARD_VERDICTS):
                    raise GiveUp  # a chain declared twice, a name too long or a target's
                chains.update(made)
                sec.declared.update(made)
                continue
            line = m.group(4)
            not_rules += 1
            if not line:
                continue
            if line.startswith("-P "):
                p = _POLICY.fullmatch(line)
                if p is None:
                    raise GiveUp
                name = p.group(1)
                if ruled or name in sec.policies:
                    if table is not None:
                        raise GiveUp  # --table: the general reader reads it all as that table
                    _close(sections, sec, start)
                    sec = _Section(start, base_line, None)
                    chains = sec.chains
                    ruled = False
                counters = Counters(int(p.group(3)), int(p.group(4))) if p.group(3) is not None else None
                chains[name] = DeferredChain(name, "", True, p.group(2), counters, base_line, book, 1)
                sec.policies[name] = base_line
                if sec.first_command is None:
                    sec.first_command = base_line
                continue
            if line[0] in "-[*: >" or line[-1] == " " or line == "COMMIT" or _ELISION_RE.match(line):
                raise GiveUp  # a command of another kind, a save dump's line, quoting, an elision
            starts, named, hint = _prompt(line)
            if table is not None:
                if hint:
                    raise GiveUp  # the reader would take the prompt's table over --table
            elif starts:
                if ruled or sec.policies:
                    _close(sections, sec, start)
                    sec = _Section(start, base_line, named)
                    chains = sec.chains
                    ruled = False
                else:  # the command's output starts here (what came before is in none)
                    sec.start, sec.line, sec.named = start, base_line, named
            elif hint:
                raise GiveUp  # a table named mid-way (the reader would switch to it)
            if line[0] != "#":
                sec.skipped.append(base_line)
        _close(sections, sec, len(text))
        if any(s.first_command is None for s in sections):
            raise GiveUp  # a command's output without rules: the general reader says so
        tables = [_table_of(s, text, book) for s in sections]
        if len({t.name for t, _notes in tables}) != len(tables):
            raise GiveUp  # a table given twice: views of one table (combine), read by the general reader
        for t, _notes in tables:
            # Each command's output is read on its own (save._parse_s_sections): a table whose
            # rules prove no family is IPv4, whatever the others prove.
            t.family = family or prove_families([t])[t.name]
        _check_last_rule(text, tables[-1][0])
        book.pieces = [text]
        book.total = text.count("\n") - not_rules
    rs.deferred = book
    if len(sections) == 1:
        t, notes = tables[0]
        rs.tables[(t.family, t.name)] = t
        rs.notes.extend(notes)
        return rs
    # Several commands' output: as save._parse_s_sections and combine() make of it.
    for s, (t, notes) in zip(sections, tables):
        skipped = [k for k in s.skipped if k >= s.line]  # lines before the first command's output are in none
        notes = [n for n in notes if n.kind != "skipped"]
        if skipped:
            notes.append(_skipped(skipped))
        if s.named is None and not any(n.kind == "inference" and "inferred" in n.message for n in notes):
            notes.append(Note("inference", f"lines {s.line}-{_last_line(text, s)}: no prompt names the table; "
                                           f"read as filter, which iptables -S prints unless -t names another",
                              s.line))
        for n in notes:
            at = f"{source}:{n.line}" if n.line else source
            rs.notes.append(Note(n.kind, f"{at}: {n.message}"))
        for c in t.chains.values():
            c.source = source
        rs.tables[(t.family, t.name)] = t
    return rs



def _undeclared(sec: _Section, m: re.Match, text: str, line: int, book: DeferredBook) -> DeferredChain:
    """The chain of a run of rules that no -N or -P line made: a built-in chain (its policy
    unknown), else the scan gives up -- an excerpt's chain, or a chain's rules in two runs."""
    name = m.group(2)
    if name in sec.chains or name not in _ALL_BUILTINS:
        raise GiveUp
    ch = sec.chains[name] = DeferredChain(name, "", True, "ACCEPT", None, line, book, 1)
    ch.policy_known = False  # no -P line
    if sec.first_command is None:
        sec.first_command = line
    return ch


def _close(sections: list[_Section], sec: _Section, end: int) -> None:
    """Keep one command's output, which ends at ``end``.  There are as many as tables at most (a
    table given twice gives up): a text of thousands of -P lines gives up here, at once."""
    sec.end = end
    sections.append(sec)
    if len(sections) > len(BUILTIN_CHAINS):
        raise GiveUp


def _last_line(text: str, sec: _Section) -> int:
    """The number of a section's last line, as s_sections' ``end`` index counts it."""
    return sec.line + text.count("\n", sec.start, sec.end) - 1


def _skipped(lines: list[int]) -> Note:
    return Note("skipped", f"{len(lines)} line(s) that are not part of a ruleset were skipped "
                           f"(first at line {lines[0]})", lines[0])


def _table_of(sec: _Section, text: str, book: DeferredBook) -> tuple[Table, list[Note]]:
    """The table one command's output shows (its family is set later), and the notes the
    general reader gives it."""
    notes: list[Note] = []
    jumped = set(_CHAIN_JUMP.findall(text, sec.start, sec.end))
    name = sec.named
    if name is None:
        hooks = set(sec.policies) | {c for c in sec.chains if c in _HOOK_CHAINS and c not in sec.declared}
        targets = set(_TARGET_WORDS.findall(text, sec.start, sec.end))
        name, why = infer_table(hooks, targets)
        if name != "filter":
            notes.append(Note("inference", f"table {name} inferred: {why}"))
    builtins = BUILTIN_CHAINS.get(name)
    if builtins is None:
        raise GiveUp
    # -P of a user chain, -N of a built-in one, -A of an undeclared one
    if not sec.declared.isdisjoint(builtins):
        raise GiveUp
    for c, ch in sec.chains.items():
        if ch.builtin:
            if c not in builtins:
                raise GiveUp
            ch.table = name
    if sec.named is None:
        for ch in sec.chains.values():
            ch.table = name
    called = jumped & sec.chains.keys()
    if not (jumped - called) <= _NOT_CHAINS:
        raise GiveUp  # a jump to a chain the text does not show (an excerpt), or no jump
    t = Table(name, 4, line=sec.first_command or 0)
    t.chains = dict(sec.chains)
    t.ensure_builtins(listed=False)
    t.source = book.source
    book.tables[name] = t
    book.texts[name] = [[text, sec.start, sec.end]]
    if book.called is None:
        book.called = {}
    book.called[name] = called
    if sec.skipped:
        notes.append(_skipped(sec.skipped))
    return t, notes


def _check_last_rule(text: str, table: Table) -> None:
    """The general reader takes an unreadable last line for a paste cut off mid-rule (a note,
    not an error): the text's last rule is read now, and a text whose last rule iptables would
    refuse is left to the general reader."""
    end = len(text)
    while end and text[end - 1] == "\n":
        end -= 1
    last = text[text.rfind("\n", 0, end) + 1:end]
    if not last.startswith("-A "):
        return
    try:
        spec = parse_rulespec(split_args(last.split(" ", 2)[2]), table.family)
    except (OptionError, InputError, IndexError):
        raise GiveUp from None
    for ext in (*spec.matches, spec.target):
        if ext is not None and table_error(ext.kind, ext.name, getattr(ext, "table_only", None), table.name):
            raise GiveUp
