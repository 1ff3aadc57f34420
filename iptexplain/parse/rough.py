"""Rough pastes: what people do to iptables text before it reaches us, undone or named.

A ruleset pasted into a mail, a forum post or a ticket arrives quoted (``> `` before every
line), with a stray character left by the selection (a ``[`` before ``Chain INPUT``), with rules
elided by hand (``...``, ``// ......``, ``[...]``), cut off at the end, or with values hidden
(``to:212.47.x``, ``{{ port }}`` from a template, ``<private_ip>``).  None of that makes the
text unreadable, and none of it may be guessed away:

* quoting and stray characters are removed, and said so (:func:`clean`);
* an elision line is skipped, and the chains it may have hidden rules of get a gap
  (:attr:`Chain.gaps <iptexplain.graph.Chain.gaps>`, :func:`mark_elisions`);
* a hand-redacted value is kept as what it is, a value nobody knows: the rule keeps its other
  tests and the redacted one becomes a :class:`RedactedValue` match, whose decision is a fork
  -- "cannot say" -- never a refusal of the input and never a guess (:func:`redact`).

:func:`clean` keeps every line where it was (a removed line becomes empty) so that
``FILE:LINE`` still points into the user's text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from iptexplain.core.packets import Decision
from iptexplain.ext.base import Match, Target, _requote
from iptexplain.graph import Rule, Ruleset
from iptexplain.numbers import is_decimal

# ``> `` quoting of a mail or forum reply, nested or not.
_QUOTE_RE = re.compile(r"^[ \t]*(?:>[ \t]?)+")
# A Chain header or an -S / save line with a few stray characters before it: ``[Chain INPUT``,
# ``|  Chain FORWARD (policy DROP)``, ``$ -A INPUT ...``.
_STRAY_RE = re.compile(r"^[ \t]*([^\w\s\[\-*:#>]{1,3}|\[)[ \t]*(?=Chain \S+ \((?:policy|[0-9]+ ref|user-def|ERROR))")
# Lines that stand for rules left out: "...", "…", "// ......", "# ...", "[...]", "<snip>", "---8<---".
_ELISION_RE = re.compile(
    r"^[ \t]*(?:(?://|#|;|--)[ \t]*)?(?:\.{3,}|…+|\[(?:\.{3}|…|snip)\]|\((?:\.{3}|…|snip)\)|<(?:\.{3}|…|snip)>"
    r"|-*8<-*|-*\s*snip\s*-*|(?:\.{3}|…)[ \t]*(?:more|etc\.?|and so on|snip(?:ped)?)[^\n]*)[ \t]*(?:\.{3,}|…+)?[ \t]*$",
    re.I)
# Whether any line may need clean(), from the whole text: a quoted line, a `Chain' header, or
# what every elision holds (`...', `snip', `8<'; `…' and other letters a case-blind `snip' may
# match are not ASCII).
_QUOTE_ANY = re.compile(r"^[ \t]*>", re.M)

# A value hidden by hand or left as a template: {{ port }}, ${WAN_IF}, $LAN, <private_ip>,
# 212.47.x, 10.0.x.x, xxx.xxx.xxx.xxx, XXXX, ***, REDACTED.
REDACTION_RE = re.compile(
    r"\{\{[^{}]*\}\}|\{%[^%]*%\}|\$\{\w+\}|(?<![\w$])\$[A-Za-z_]\w*|<[A-Za-z_][\w .-]*>"
    r"|(?<![\w.])(?:[0-9]{1,3}|[xX]{1,3}|\*{1,3})(?:\.(?:[0-9]{1,3}|[xX]{1,3}|\*{1,3})){1,3}(?=[/:,\s]|$)"
    r"|(?<![\w-])(?:X{3,}|x{3,}|\*{3,}|REDACTED|redacted|<redacted>)(?![\w-])")


def is_redacted(word: str) -> bool:
    """Whether a word holds a hand-redacted or templated value (``212.47.x``, ``{{ port }}``)."""
    for m in REDACTION_RE.finditer(word):
        t = m.group(0)
        if is_decimal(t[0]) or t[0] in "xX*" and "." in t:
            if re.search(r"[xX*]", t):
                return True
            continue
        return True
    return False


@dataclass
class Cleaned:
    """Text made readable, with what was done to it (line numbers are unchanged)."""

    text: str
    quoted: int = 0  # lines whose `> ' quoting was removed
    stray: list[int] | None = None  # lines whose stray leading characters were removed
    elisions: list[int] | None = None  # elision lines, skipped

    def note(self, rs: Ruleset) -> None:
        """Say on ``rs`` what was removed (notes of kind "repair" and "skipped")."""
        if self.quoted:
            rs.note("repair", f"e-mail/forum quoting (`> ') removed from {self.quoted} line(s)")
        if self.stray:
            rs.note("repair", f"stray characters before a `Chain' header removed (line "
                              f"{', '.join(map(str, self.stray[:5]))}{', ...' if len(self.stray) > 5 else ''})",
                    self.stray[0])
        if self.elisions:
            n = len(self.elisions)
            rs.note("skipped", f"{n} elision line{'s' if n > 1 else ''} (`...') skipped (line "
                               f"{', '.join(map(str, self.elisions[:5]))}{', ...' if n > 5 else ''}): rules were "
                               f"left out there, and the chains around {'them' if n > 1 else 'it'} may have "
                               f"more rules than shown", self.elisions[0])


def clean(text: str) -> Cleaned:
    """Remove quoting and stray characters and blank out elision lines, keeping line numbers.

    Quoting is removed only when most non-blank lines carry it (a whole quoted paste), so that a
    shell redirection or a ``>`` in prose is left alone."""
    if (">" not in text or _QUOTE_ANY.search(text) is None) and "Chain " not in text and "..." not in text \
            and "8<" not in text and text.isascii() and "snip" not in text.lower():
        return Cleaned(text)  # nothing to clean: no per-line work (a 200,000-line nft ruleset)
    lines = text.split("\n")
    filled = [ln for ln in lines if ln.strip()]
    quoted = sum(1 for ln in filled if _QUOTE_RE.match(ln))
    out = Cleaned(text)
    if filled and quoted * 10 >= len(filled) * 6:
        lines = [_QUOTE_RE.sub("", ln) for ln in lines]
        out.quoted = quoted
    stray: list[int] = []
    elisions: list[int] = []
    for i, ln in enumerate(lines):
        m = _STRAY_RE.match(ln)
        if m:
            lines[i] = ln[m.end():]
            stray.append(i + 1)
        elif _ELISION_RE.match(ln):
            lines[i] = ""
            elisions.append(i + 1)
    out.stray, out.elisions = stray or None, elisions or None
    if out.quoted or stray or elisions:
        out.text = "\n".join(lines)
    return out


def _position(chain: Any, rule: Rule) -> int:
    for i, r in enumerate(chain.rules):
        if r is rule:
            return i
    return len(chain.rules)


def add_gap(chain: Any, at: int) -> None:
    """Record that rules the input did not show may sit after ``at`` shown rules of ``chain``."""
    if at not in chain.gaps:
        chain.gaps = tuple(sorted((*chain.gaps, at)))


def mark_elisions(rs: Ruleset, elisions: list[int]) -> None:
    """Give a gap to the chains an elision line may have hidden rules of: the chain of the rule
    shown just before it (after that rule) and of the rule just after it (before that one).  An
    elision before every rule, after every rule, or between two tables may hide anything, even
    a table: the ruleset is then no longer whole."""
    rules = sorted((r for r in rs.rules() if r.line), key=lambda r: r.line)
    lines = [r.line for r in rules]
    import bisect

    for at in elisions:
        k = bisect.bisect_left(lines, at)
        before = rules[k - 1] if k > 0 else None
        after = rules[k] if k < len(rules) else None
        for r, after_it in ((before, True), (after, False)):
            if r is None:
                continue
            t = rs.table(r.table, _family_of(rs, r))
            chain = t.chains.get(r.chain) if t is not None else None
            if chain is not None:
                pos = _position(chain, r)
                add_gap(chain, pos + 1 if after_it else pos)
        if before is None or after is None or before.table != after.table:
            rs.whole = False


def _family_of(rs: Ruleset, rule: Rule) -> int:
    for (fam, name), t in rs.tables.items():
        if name == rule.table and rule.chain in t.chains and any(r is rule for r in t.chains[rule.chain].rules):
            return fam
    return 4


# ---------------------------------------------------------------------------------------------
# Redacted values.


@dataclass(frozen=True, eq=True)
class RedactedValue(Match):
    """A test whose value was hidden by hand or left as a template (``--dport {{ port }}``,
    ``-s 212.47.x``): kept as written, matched by nobody knows which packets -- the tracer forks
    on it ("cannot say"), each way labelled with what was hidden.  The module is understood;
    only its value is unknown, which :meth:`decide` says."""

    understood: ClassVar[bool] = True
    raw: tuple[str, ...] = ()
    module: str = ""  # the -m module the option belongs to ("" for -s/-d/-i/-o/-p)

    @property
    def display_name(self) -> str:
        return self.module or "redacted"

    def save(self) -> list[str]:
        # The option as written, after the rest of the rule (whose -m names the module).
        return _requote(self.raw)

    def describe(self) -> str:
        return f"{' '.join(self.raw)} (value redacted in the input)"

    def decide(self, pkts: Any, ctx: Any) -> Any:
        """Nobody knows the value: one way where it lets this flow through, one where not."""
        what = " ".join(self.raw)
        return Decision.fork(pkts, f"`{what}' was redacted in the input: cannot say",
                             f"`{what}' matches (redacted value)", f"`{what}' does not match (redacted value)")


@dataclass(frozen=True, eq=True)
class RedactedTarget(Target):
    """A target whose options (or name) were redacted: ``-j DNAT --to-destination 212.47.x``.
    Its effect is unknown to the tracer, as a target it does not know."""

    understood: ClassVar[bool] = False
    raw: tuple[str, ...] = ()
    opaque_name: str = ""

    def save(self) -> list[str]:
        return ["-j", self.opaque_name] + _requote(self.raw)

    def describe(self) -> str:
        return f"{' '.join([self.opaque_name, *self.raw])} (value redacted in the input)"


_JUMPS = ("-j", "--jump", "-g", "--goto")


def redact(words: list[str]) -> tuple[list[str], list[RedactedValue], RedactedTarget | None, list[str]] | None:
    """Split a rule's words (after ``-A CHAIN``) into what can be read and what was redacted:
    ``(words left, redacted tests, redacted target or None, the redacted values)``; None when no
    word is redacted.  A redacted option goes with its arguments (``--dport {{ port }}``); one of
    the target's makes the whole target unknown; a comment keeps its text."""
    hits = [k for k, w in enumerate(words) if is_redacted(w) and not (k and words[k - 1] == "--comment")]
    if not hits:
        return None
    jump = next((k for k, w in enumerate(words) if w in _JUMPS), None)
    drop: set[int] = set()
    tests: list[RedactedValue] = []
    target: RedactedTarget | None = None
    values = [words[k] for k in hits]
    for k in hits:
        if k in drop:
            continue
        if jump is not None and k > jump:
            # The target's name or one of its options: the target is unknown.
            target = RedactedTarget(raw=tuple(words[jump + 2:]), opaque_name=words[jump + 1] if jump + 1 < len(words) else "")
            drop |= set(range(jump, len(words)))
            continue
        o = k - 1
        while o >= 0 and not (words[o].startswith("-") and not is_decimal(words[o][1:2])):
            o -= 1
        if o < 0:
            o = k
        start = o - 1 if o > 0 and words[o - 1] == "!" else o
        module = ""
        for i in range(start - 1, 0, -1):
            if words[i - 1] in ("-m", "--match"):
                module = words[i]
                break
        if words[o] in ("-s", "--source", "-d", "--destination", "-i", "--in-interface",
                        "-o", "--out-interface", "-p", "--protocol"):
            module = ""
        tests.append(RedactedValue(raw=tuple(words[start:k + 1]), module=module))
        drop |= set(range(start, k + 1))
    left = [w for i, w in enumerate(words) if i not in drop]
    # A -m whose every option was redacted is left bare (`-m tcp'): still valid, matches all.
    return left, tests, target, values
