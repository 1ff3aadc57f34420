"""Read what ``iptables -L`` prints -- ``-nL``, ``-L``, ``-nvL``, ``-nvxL``, ``--line-numbers``,
``-t TABLE``, ``-L CHAIN``, ip6tables -- into the same rule graph as an iptables-save dump.

Operators paste listings, not dumps: with the shell prompt, the command, prose in any language
and blank lines between the rows.  The reader is one pass over the lines that keeps what is part
of a listing (``Chain X (...)`` headers, the column header, the rows) and skips the rest.  A
prompt line such as ``# iptables -t nat -nL`` names the table of what follows; without one the
table is inferred from the built-in chains and targets (PREROUTING + DNAT -> nat) and the
inference is reported.  A table listed twice is reported (the seed blog post lists filter twice,
the second time under a heading that says "nat").

The free text at the end of each row is what the modules' print functions wrote; each module
reads its own words back (``from_listing`` beside its save face in ``iptexplain/ext``), and this
reader only dispatches on the words the modules declare.  What the listing format cannot show
-- interface matches without ``-v``, counters, numbers behind names without ``-n`` -- is
recorded in ``Ruleset.hidden`` and explained in ``Ruleset.notes`` with the way to get the full
picture (``iptables-save``, or ``iptables -nvL``).
"""

from __future__ import annotations

import re
from functools import lru_cache

from iptexplain.core.addr import Address, check_iface, parse_address
from iptexplain.core.errors import InputError, OptionError
from iptexplain.ext.base import Match
from iptexplain.graph import BUILTIN_CHAINS, Chain, Counters, IPHeader, Rule, Ruleset, Table
from iptexplain.numbers import is_decimal
from iptexplain.parse.listing_rows import (HOST_NAMES, TABLES, _CHAIN_RE, _NUMERIC_ADDRS, _NUMERIC_HOST,
                                           _QUOTED_RE, _ROWISH_RE, _SUFFIX, _TABLE_FLAG_RE, _TABLE_WORD_RE,
                                           Block, Command, Layout, RawRow, Section, UnresolvedAddress,
                                           layout_of, parse_command, split_row)
from iptexplain.parse.listing_tail import _TAILS
from iptexplain.parse.partial import name_gaps
from iptexplain.parse.rough import RedactedValue, add_gap, is_redacted
from iptexplain.parse.rulespec import canonical_proto
from iptexplain.parse.s_tables import infer_table

# ---------------------------------------------------------------------------------------------
# The reader.


class ListingReader:
    def __init__(self, source: str, family: int | None, table: str | None) -> None:
        self.source = source
        self.family_hint = family
        self.table_hint = table if table in TABLES else None
        # -L shows one table per command (filter unless -t names another): the others are unknown.
        self.rs = Ruleset(source=source, format="listing", whole=False)
        self.sections: list[Section] = []
        self.section: Section | None = None
        self.block: Block | None = None
        self.pending: Command | None = None
        self.hint: tuple[str, int] | None = None
        self.flag: tuple[str, int] | None = None
        self.skipped_inside: list[int] = []
        self.skipped = 0
        self.unresolved: dict[str, int] = {}
        self.names_used = False
        self.unread: list[tuple[int, str]] = []
        self.rounded = False
        self.since_hint = 99
        self.losses: dict[str, int] = {}  # what a module's -L text leaves out -> first line
        self.wrapped: list[int] = []  # continuation lines of wrapped rows
        self.redacted: list[str] = []  # values hidden by hand (`212.47.x.x')
        self.last_line = 0  # the last line that is not blank
        self.ends_open = False
        # The reader of the rows' free text (iptexplain.parse.listing_deferred gives one that
        # loads only the modules of the phrases its scan lets through).
        self.tails = _TAILS

    # -- pass 1: lines into sections, blocks and raw rows ---------------------------------------

    def scan(self, text: str) -> None:
        # A text that stops without a line end was cut by a selection, not written by iptables.
        self.ends_open = bool(text) and not text.endswith("\n")
        for lineno, raw in enumerate(text.splitlines(), 1):
            line = raw.rstrip("\r").rstrip()
            if line.lstrip().startswith(">"):  # quoted in a mail or a forum reply: "> Chain ..."
                line = _QUOTED_RE.sub("", line)
            if not line.strip():
                continue
            self.last_line = lineno
            m = _CHAIN_RE.match(line)
            if m:
                self._chain(m, lineno)
                continue
            blk = self.block
            if blk is not None:
                words = line.split()
                lay = layout_of(words)
                if lay is not None:
                    blk.layout = lay
                    blk.last_line = lineno
                    continue
                if blk.layout is None:
                    blk.layout = self._guess_layout(line)
                row = split_row(line, blk.layout) if blk.layout is not None else None
                if row is not None:
                    row.line = lineno
                    blk.rows.append(row)
                    blk.last_line = lineno
                    continue
                if blk.rows and blk.last_line == lineno - 1 and _unclosed(blk.rows[-1].tail):
                    # A row the terminal wrapped inside its comment or LOG prefix: join it.
                    blk.rows[-1].tail += " " + line.strip()
                    blk.last_line = lineno
                    self.wrapped.append(lineno)
                    continue
            cmd = parse_command(line, lineno)
            if cmd is not None:
                self._close_section()
                self.pending = cmd if isinstance(cmd, Command) else None
                self.since_hint = 99
                continue
            # Prose, a prompt, anything else: skipped (the block stays open: rows may follow a
            # remark); a table word in it is kept as a hint for the next section's report.
            self.skipped += 1
            if blk is not None and _ROWISH_RE.search(line):
                self.skipped_inside.append(lineno)
            hf = _TABLE_FLAG_RE.search(line)
            if hf:
                self.flag = (hf.group(1), lineno)
            hw = _TABLE_WORD_RE.search(line)
            if hw:
                self.hint = (hw.group(1).lower(), lineno)
                self.since_hint = 0
            else:
                self.since_hint += 1

    @staticmethod
    def _guess_layout(line: str) -> Layout | None:
        """A block pasted without its column header: try the layouts iptables prints."""
        for lay in (Layout(), Layout(counters=True, via=True), Layout(num=True),
                    Layout(num=True, counters=True, via=True)):
            if split_row(line, lay) is not None:
                return lay
        return None

    def _chain(self, m: re.Match, lineno: int) -> None:
        name = m.group(1)
        policy = m.group(2)
        pc = (m.group(3), m.group(4)) if m.group(3) is not None else None
        refs = int(m.group(5)) if m.group(5) is not None else None
        sec = self.section
        new = sec is None or name in sec.names
        if sec is not None and not new and policy is not None and (sec.command is None or sec.command.chain is None):
            # iptables lists built-in chains first: a built-in after a user chain is a new table.
            if any(b.policy is None for b in sec.blocks):
                new = True
        if new:
            self._close_section()
            hint = self.hint if self.pending is None and self.since_hint <= 3 else None
            flag = self.flag if self.pending is None and self.since_hint <= 3 else None
            sec = self.section = Section(self.pending, hint, flag=flag)
            self.pending = None
            self.hint = None
            self.flag = None
        blk = Block(name, lineno, policy, pc, refs)
        sec.blocks.append(blk)  # type: ignore[union-attr]
        sec.names.add(name)  # type: ignore[union-attr]
        self.block = blk

    def _close_section(self) -> None:
        if self.section is not None and self.section.blocks:
            self.sections.append(self.section)
        self.section = None
        self.block = None

    # -- pass 2: sections into tables -------------------------------------------------------

    def build(self) -> Ruleset:
        self._close_section()
        if not self.sections:
            raise InputError(
                "no iptables listing found (expected `Chain NAME (policy ...)' lines as "
                "iptables -L prints them)", self.source)
        listed: dict[tuple[int, str], dict[str, tuple[Section, list[Rule]]]] = {}
        no_via: list[Section] = []
        partial: list[Section] = []
        for sec in self.sections:
            self._place(sec)
            key = (sec.family, sec.table)
            table = self.rs.tables.get(key)
            if table is None:
                table = self.rs.tables[key] = Table(sec.table, sec.family, line=sec.first_line)
                listed[key] = {}
            seen = listed[key]
            same: list[str] = []
            changed: list[str] = []
            earlier: set[int] = set()
            for blk in sec.blocks:
                chain, rules = self._chain_of(sec, blk)
                if blk.name in seen:
                    prev_sec, prev_rules = seen[blk.name]
                    earlier.add(prev_sec.first_line)
                    old = table.chains[blk.name]
                    if _same_rules(prev_rules, rules) and old.policy == chain.policy:
                        same.append(blk.name)
                        continue
                    changed.append(blk.name)
                table.chains[blk.name] = chain
                seen[blk.name] = (sec, rules)
            if same or changed:
                first = min(earlier)
                what = f"table {sec.table} (IPv{sec.family})"
                if not changed and len(same) == len(sec.blocks):
                    msg = (f"{sec.span()} list {what} again, identical to the listing at line "
                           f"{first}; read once")
                else:
                    msg = f"{sec.span()} list chains of {what} again (first listed at line {first})"
                    if same:
                        msg += f": {', '.join(same)} identical"
                    if changed:
                        msg += (f"{';' if same else ':'} {', '.join(changed)} differ -- the later "
                                f"listing is used")
                if sec.hint and sec.hint[0] != sec.table and sec.command is None:
                    msg += f" (the text at line {sec.hint[1]} calls it {sec.hint[0]})"
                self.rs.note("duplicate", msg, sec.first_line)
            lays = [b.layout for b in sec.blocks if b.layout is not None]
            if (lays and not all(lay.via for lay in lays)) or (not lays and any(b.rows for b in sec.blocks)):
                no_via.append(sec)
            if sec.command is not None and not sec.command.numeric:
                self.names_used = True
            if sec.command is not None and (sec.command.chain or sec.command.piped):
                partial.append(sec)
        for t in self.rs.tables.values():
            self._finish_table(t)
        self._cut_end()
        self._fidelity(no_via, partial)
        self._extension_notes()
        self.rs.link()
        return self.rs

    def _cut_end(self) -> None:
        """A paste that stops mid-chain: its last line is not a whole row, or its last listing
        jumps to chains it never shows (iptables -L prints every chain of the table).  That is
        the end of what is known, not an error: the last chain shown may have more rules (a gap),
        and the note says the listing looks cut off there."""
        sec = self.sections[-1]
        blk = sec.blocks[-1]
        table = self.rs.tables.get((sec.family, sec.table))
        chain = table.chains.get(blk.name) if table is not None else None
        if chain is None:
            return
        last_row_cut = (self.ends_open and self.unread and self.unread[-1][0] == self.last_line and chain.rules
                        and chain.rules[-1].line == self.last_line)
        if last_row_cut:
            # The last row's end could not be read (`tcp dp'): the selection stopped inside it.
            self.unread.pop()
            chain.rules.pop()
        if last_row_cut or (self.skipped_inside and self.skipped_inside[-1] == self.last_line):
            add_gap(chain, len(chain.rules))
            if not last_row_cut:
                self.skipped_inside.pop()
            self.rs.note("fidelity", f"the listing ends with a line that is not a whole row (line "
                                     f"{self.last_line}): read as cut off there -- chain {blk.name} may have "
                                     f"more rules", self.last_line)
            return
        single = sec.command is not None and (sec.command.chain or sec.command.piped)
        unseen = [c.name for c in table.chains.values() if not c.listed and not c.builtin]  # type: ignore[union-attr]
        if unseen and not single:
            add_gap(chain, len(chain.rules))
            self.rs.note("fidelity", f"the listing of table {sec.table} ends at line {self.last_line} without "
                                     f"showing {', '.join(unseen)}, which its rules jump to: it looks cut off "
                                     f"there (or only some chains were pasted) -- chain {blk.name} may have more "
                                     f"rules", self.last_line)

    def _extension_notes(self) -> None:
        """Notes modules ask for (anonymized MACs…), worded as the save reader words them, over
        the rules kept (a table listed twice counts once)."""
        found: dict[tuple[str, str], list[int]] = {}
        for r in self.rs.rules():
            for ext in r.extensions():
                if getattr(ext, "may_note", False):
                    for note in ext.notes():
                        found.setdefault(note, []).append(r.line or 0)
        for (kind, message), lines in found.items():
            first = min(lines)
            self.rs.note(kind, f"{message} ({len(lines)} rule(s), first at line {first})", first)

    def _place(self, sec: Section) -> None:
        """Decide the family and table of a section; report what was inferred."""
        builtins: set[str] = set()
        targets: set[str] = set()
        v6 = v4 = False
        for b in sec.blocks:
            if b.policy is not None:
                builtins.add(b.name)
            for r in b.rows:
                targets.add(r.target)
                for a in (r.src, r.dst):
                    if ":" in a:
                        v6 = True
                    elif is_decimal(a[-1:]) and "." in a:
                        v4 = True
                p = r.proto.lstrip("!")
                if p in ("58", "ipv6-icmp", "icmpv6") or "icmp6" in r.tail or "ipv6-icmp" in r.tail:
                    v6 = True
                elif p in ("1", "icmp"):
                    v4 = True
        cmd = sec.command
        fam = (cmd.family if cmd is not None else None) or self.family_hint
        if fam is None:
            fam = 6 if v6 and not v4 else 4
        sec.family = fam
        if self.table_hint is not None:
            # --table on the command line: the user's word over the text's.
            name = self.table_hint
            odd = sorted(builtins - set(BUILTIN_CHAINS[name]))
            if odd:
                raise InputError(f"--table {name}: table {name} has no {', '.join(odd)} chain, which "
                                 f"{sec.span()} list{'s' if sec.first_line == sec.last_line else ''}",
                                 self.source, sec.first_line)
            sec.table = name
            if cmd is not None and (cmd.table or "filter") != name:
                self.rs.note("inference", f"{sec.span()}: read as table {name}, as --table says, although "
                                          f"the command at line {cmd.line} lists {cmd.table or 'filter'}",
                             sec.first_line)
            return
        if cmd is not None or sec.flag is not None:
            name = cmd.table or "filter" if cmd is not None else sec.flag[0]  # type: ignore[index]
            said = (f"the command at line {cmd.line} lists" if cmd is not None
                    else f"the heading at line {sec.flag[1]} names")  # type: ignore[index]
            if builtins <= set(BUILTIN_CHAINS[name]):
                sec.table = name
                return
            odd = sorted(builtins - set(BUILTIN_CHAINS[name]))
            why_not = f"{said} table {name}, but table {name} has no {', '.join(odd)} chain"
        else:
            why_not = None
        sec.table, reason = infer_table(builtins, targets - {""})
        msg = f"{sec.span()}: no command names the table; read as {sec.table} because {reason}"
        if why_not:
            msg = f"{sec.span()}: {why_not}; read as {sec.table} because {reason}"
        if sec.hint and sec.hint[0] != sec.table:
            msg += f" (the text at line {sec.hint[1]} says \"{sec.hint[0]}\")"
        self.rs.note("inference", msg, sec.first_line)

    def _chain_of(self, sec: Section, blk: Block) -> tuple[Chain, list[Rule]]:
        builtin = blk.name in BUILTIN_CHAINS[sec.table]
        counters = None
        if blk.policy_counters is not None:
            counters = Counters(self._count(blk.policy_counters[0]), self._count(blk.policy_counters[1]))
        policy = blk.policy if builtin else None
        if builtin and policy is None:
            policy = "ACCEPT"
        chain = Chain(blk.name, sec.table, builtin, policy, counters, line=blk.line,
                      kernel_references=blk.references)
        for i, raw in enumerate(blk.rows, 1):
            chain.rules.append(self._rule(sec, blk, raw, i))
        return chain, chain.rules

    def _count(self, text: str) -> int:
        s = text[-1]
        if s in _SUFFIX:
            self.rounded = True
            return int(text[:-1]) * _SUFFIX[s]
        return int(text)

    def _rule(self, sec: Section, blk: Block, raw: RawRow, number: int) -> Rule:
        fam = sec.family
        try:
            proto, proto_inv = _proto(raw.proto)
            extra: list[Match] = []
            src, src_inv = self._addr(raw.src, fam, "src", extra)
            dst, dst_inv = self._addr(raw.dst, fam, "dst", extra)
            iniface, in_inv = _iface(raw.iniface)
            outiface, out_inv = _iface(raw.outiface)
        except OptionError as e:
            raise InputError(str(e), self.source, raw.line) from None
        fragment = None
        if raw.opt == "-f":
            fragment = True
        elif raw.opt == "!f":
            fragment = False
        header = IPHeader(src, src_inv, dst, dst_inv, iniface, in_inv, outiface, out_inv, proto,
                          proto_inv, fragment)
        goto, matches, target, unread, losses = self.tails.read(raw.tail, raw.target, fam, proto)
        if unread and any(is_redacted(w) for text in unread for w in text.split()):
            # `to:212.47.x': the module could not read a value hidden by hand; kept unread.
            self.redacted.extend(w for text in unread for w in text.split() if is_redacted(w))
        if unread:
            self.unread.append((raw.line, unread[0]))
        for loss in losses:
            self.losses.setdefault(loss, raw.line)
        if extra:
            matches = tuple(extra) + matches
        counters = None
        if raw.counters is not None:
            counters = Counters(self._count(raw.counters[0]), self._count(raw.counters[1]))
        return Rule(sec.table, blk.name, header, matches, target, goto, counters, raw.line,
                    raw.num or number, self.source)

    def _addr(self, tok: str, fam: int, direction: str, extra: list[Match]) -> tuple[Address | None, bool]:
        hit = _NUMERIC_ADDRS.get((tok, fam))
        if hit is not None:
            return hit
        inv = tok.startswith("!")
        t = tok[1:] if inv else tok
        if t == "anywhere":
            self.names_used = True
            return (parse_address("::/0" if fam == 6 else "0.0.0.0/0") if inv else None), inv
        host, sep, mask = t.partition("/")
        if host and set(host) <= _NUMERIC_HOST and (":" in host or is_decimal(host[0])):
            a = parse_address(t, fam)
            out = (None, False) if a.mask == 0 and not inv else (a, inv)
            if len(_NUMERIC_ADDRS) < 100_000:
                _NUMERIC_ADDRS[(tok, fam)] = out
            return out
        if is_redacted(t):
            # `212.47.x.x' in the source column: a value hidden by hand, not a host name.
            self.redacted.append(t)
            opt = "-s" if direction == "src" else "-d"
            extra.append(RedactedValue(raw=("!", opt, t) if inv else (opt, t)))
            return None, False
        known = HOST_NAMES[fam].get(host)
        if known is not None:
            self.names_used = True
            return parse_address(known + (sep + mask if sep else ""), fam), inv
        if not host or not (host[0].isalnum()):
            raise OptionError(f"host/network `{t}' not found")
        # A host name printed by -L without -n: its address is not in the listing.
        self.names_used = True
        self.unresolved[t] = self.unresolved.get(t, 0) + 1
        extra.append(UnresolvedAddress(opaque_name="address", spelled="address",
                                       direction=direction, name=t, invert=inv))
        return None, False

    def _finish_table(self, t: Table) -> None:
        """Give the table the chains it must have -- its built-in chains, the chains its rules
        jump to -- marked unknown where the listing did not show them (the notes that name them
        come from :func:`iptexplain.parse.partial.name_gaps`)."""
        t.ensure_builtins(listed=False)
        # Keep built-in chains first, in iptables-save order, as the save reader does.
        order = {c: i for i, c in enumerate(BUILTIN_CHAINS[t.name])}
        t.chains = dict(sorted(t.chains.items(), key=lambda kv: (0, order[kv[0]]) if kv[0] in order else (1, 0)))
        jumps_missing = sorted({r.jump for r in t.rules() if r.jump is not None and r.jump not in t.chains})
        for name in jumps_missing:
            t.chains[name] = Chain(name, t.name, False, None, line=0, listed=False)

    def _fidelity(self, no_via: list[Section], partial: list[Section], counted: bool | None = None) -> None:
        """The notes and hidden parts of what the listing could not show.  ``counted``: whether
        some rule has counters, when the caller knows without reading every rule
        (:mod:`iptexplain.parse.listing_deferred`)."""
        rs = self.rs
        if no_via:
            rs.hidden |= {"interfaces", "counters"}
            spans = no_via[0].span() if len(no_via) == 1 else (
                f"{len(no_via)} listings ({no_via[0].span()}, ...)")
            rs.note(
                "fidelity",
                f"{spans}: printed without -v, which does not show interface matches: a rule "
                f"such as `-i docker0 -j ACCEPT` shows as a bare `ACCEPT all`, so it looks as if "
                f"it applied on every interface, and a verdict read from it can differ from the "
                f"kernel's. Counters are absent too. For the full picture run `iptables-save` "
                f"(or `iptables -nvL`, `-t nat -nvL`, ...) and read that instead.",
                no_via[0].first_line,
            )
        elif not (counted if counted is not None else any(r.counters is not None for r in rs.rules())):
            rs.hidden.add("counters")
        if self.rounded:
            rs.hidden.add("counters-rounded")
            rs.note("fidelity", "counters printed with K/M/G suffixes are rounded (iptables -nvxL "
                                "prints them exactly)")
        if self.names_used:
            rs.hidden.add("names")
            msg = ("listed without -n: addresses, ports and protocols were printed as names "
                   "(`anywhere`, `http-alt`, `loopback/8`) and read back from the standard tables")
            if self.unresolved:
                shown = ", ".join(sorted(self.unresolved)[:5])
                msg += (f"; {len(self.unresolved)} host name(s) could not be turned back into "
                        f"addresses ({shown}{', ...' if len(self.unresolved) > 5 else ''}) and the "
                        f"rules using them are marked unknown")
            msg += ". `iptables -nL` (numeric) avoids the guesswork."
            rs.note("fidelity", msg)
        for sec in partial:
            cmd = sec.command
            assert cmd is not None
            rs.hidden.add("chains")
            if cmd.piped:
                rs.note("fidelity", f"line {cmd.line}: the listing was piped through another "
                                    f"command, so rules may have been left out", cmd.line)
        for loss, line in self.losses.items():
            rs.hidden.add("options")
            rs.note("fidelity", f"{loss} (first at line {line}); iptables-save shows it", line)
        if self.unread:
            rs.hidden.add("matches")
            line, text = self.unread[0]
            rs.note(
                "fidelity",
                f"{len(self.unread)} rule(s) carry text iptexplain could not read back into "
                f"options (first at line {line}: `{text}'); it is kept as a not-understood match",
                line,
            )
        if self.redacted:
            shown = ", ".join(f"`{v}'" for v in dict.fromkeys(self.redacted[:5]))
            rs.note("fidelity", f"{len(self.redacted)} value(s) hidden by hand or left as a template "
                                f"({shown}): the tests on them are unknown -- the trace forks on them, or "
                                f"cannot say what a rule whose target they are does")
        if self.wrapped:
            rs.note("repair", f"{len(self.wrapped)} row(s) wrapped inside a comment or prefix were joined "
                              f"(first continuation at line {self.wrapped[0]})", self.wrapped[0])
        if self.skipped_inside:
            n = len(self.skipped_inside)
            rs.note(
                "skipped",
                f"{n} line(s) inside chain blocks are not rule rows and were skipped (first at line "
                f"{self.skipped_inside[0]}); a row wrapped by the terminal reads like this",
                self.skipped_inside[0],
            )


def _unclosed(tail: str) -> bool:
    """A row tail that ends inside a ``/* comment`` or a ``"quoted`` prefix."""
    return tail.count("/*") > tail.count("*/") or tail.count('"') % 2 == 1


@lru_cache(maxsize=4096)
def _proto(tok: str) -> tuple[str | None, bool]:
    return canonical_proto(tok.lstrip("!")), tok.startswith("!")


@lru_cache(maxsize=4096)
def _iface(tok: str | None) -> tuple[str | None, bool]:
    if tok is None or tok in ("*", "any"):
        return None, False
    inv = tok.startswith("!")
    name = tok[1:] if inv else tok
    if name in ("*", "any"):
        return None, inv
    return check_iface(name), inv


def _same_rules(a: list[Rule], b: list[Rule]) -> bool:
    if len(a) != len(b):
        return False
    return all(x.save_args() == y.save_args() for x, y in zip(a, b))


def parse_listing(text: str, source: str = "<input>", family: int | None = None,
                  table: str | None = None) -> Ruleset:
    """Read iptables/ip6tables -L output (any of its forms, pasted sessions included)."""
    reader = ListingReader(source, family, table)
    reader.scan(text)
    rs = reader.build()
    name_gaps(rs)
    return rs


def read_row_tail(text: str, target: str = "", family: int = 4, proto: str | None = None) -> tuple:
    """Read one row's free text: ``(goto, matches, target, unread texts, losses)``.  ``target`` is the
    row's target column (``""`` for none); ``proto`` its protocol (``"tcp"``, or None)."""
    return _TAILS.read(text, target, family, proto)
