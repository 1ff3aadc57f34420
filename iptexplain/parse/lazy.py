"""Rules whose options are read when first looked at, for large iptables-save dumps.

A 10,000-service kube-proxy dump is 140,000 lines, of which a trace looks at ``KUBE-SERVICES``
and a handful of the 37,000 chains; reading every rule's options is four fifths of its time.
:class:`LazyRule` keeps a rule's text and reads its header, matches and target on first access,
with the parser and the error (``FILE:LINE: message``) an eager read would have given.

What stays eager, because the structure and the load-time checks depend on it, is decided by
:func:`lazy_plan` from the text alone: a rule may be lazy only when none of its modules needs
more than storing (family-bound modules, family-dependent saves, ones that add ruleset notes or
whose options decide where they may be used, modules no extension models, ``-c``, ``-f``,
abbreviated options, ``-s a,b`` lists that make several rules, escapes and single quotes) and its
jump target, if any, is certain from the text (``-j CHAIN`` / ``-g CHAIN`` last), so that "jump
to a missing chain" and ``Chain.references`` need no parse.  Modules whose class alone restricts
the table or the hooks (DNAT, MASQUERADE, REJECT) are checked from their names.

A lazy read checks what iptables-restore checks of the structure (tables, COMMIT, declared
chains, jumps) at once, and a rule's options only when the rule is read: an option error in a
chain the trace never reaches is not reported (``iptexplain show`` reads every rule, as
iptables-restore would).  :meth:`iptexplain.graph.Ruleset.parse_all` reads the rest.

The rules of a deferred chain (:mod:`iptexplain.parse.deferred`) are LazyRules made without
:func:`lazy_plan`: their jump is UNREAD until asked for (then taken from the words when they
are certain), and reading one also makes the load-time checks, through the chain's book.
"""

from __future__ import annotations

import re
from socket import AF_INET6, inet_aton, inet_pton

from iptexplain.core.errors import InputError, OptionError
from iptexplain.core.protocols import canonical_proto
from iptexplain.ext import match_class, target_class
from iptexplain.ext.base import Extension
from iptexplain.graph import STANDARD_VERDICTS, Rule
from iptexplain.numbers import is_decimal
from iptexplain.parse.rulespec import BUILTIN_FLAGS, IMPLICIT_MATCH, IPTABLES_TARGETS, parse_rulespec
from iptexplain.parse.tokenize import split_args

_HEADER = Rule.__dict__["header"]
_MATCHES = Rule.__dict__["matches"]
_TARGET = Rule.__dict__["target"]
_GOTO = Rule.__dict__["goto"]
_JUMP = Rule.__dict__["jump"]
UNREAD = "\0unread"  # the jump of a deferred chain's rule until it is asked for


def read_on_access(slot):  # noqa: ANN001, ANN201
    """A property over one of :class:`~iptexplain.graph.Rule`'s slots that reads the rule first
    while its text is unread (``_text`` not None; ``parse()`` fills the slots): the lazy rules of
    a save dump here and the unread rows of a listing (:mod:`.listing_deferred`) alike."""
    def get(self):  # noqa: ANN001, ANN202
        if self._text is not None:
            self.parse()
        return slot.__get__(self, Rule)

    def put(self, value) -> None:  # noqa: ANN001
        if self._text is not None:
            self.parse()
        slot.__set__(self, value)

    return property(get, put)


class LazyRule(Rule):
    """A :class:`~iptexplain.graph.Rule` read from its text on first access of ``header``,
    ``matches``, ``target`` or ``goto``; ``jump`` is known from the start (lazy_plan's), or
    for a deferred chain's rule taken from its words when asked for."""

    __slots__ = ("_text", "_family", "_jump", "_book")

    def __init__(self, table: str, chain: str, text: str, family: int | None, jump: str | None,
                 counters, line: int, number: int, source: str, book=None) -> None:  # noqa: ANN001
        # book: the DeferredBook of a chain read from text (iptexplain.parse.deferred), which
        # makes the checks the reader makes of a rule when it is read; its jump is UNREAD.
        self._book = book
        self.table = table
        self.chain = chain
        self.counters = counters
        self.line = line
        self.number = number
        self.source = source
        self._text: str | None = text  # the rule after ``-A CHAIN``, counters taken off
        self._family = family
        self._jump = jump

    @property
    def parsed(self) -> bool:
        return self._text is None

    def parse(self) -> None:
        """Read the rule now (a no-op once read); raise InputError as the eager reader would."""
        text = self._text
        if text is None:
            return

        try:
            spec = parse_rulespec(split_args(text), self._family)
        except OptionError as e:
            raise InputError(str(e), self.source, self.line) from None
        if self._book is not None:
            spec = self._book.check(self, spec)
        _HEADER.__set__(self, spec.header)
        _MATCHES.__set__(self, spec.matches)
        _TARGET.__set__(self, spec.target)
        _GOTO.__set__(self, spec.goto)
        self._text = None

    header = read_on_access(_HEADER)
    matches = read_on_access(_MATCHES)
    target = read_on_access(_TARGET)
    goto = read_on_access(_GOTO)

    @property
    def may_name_interface(self) -> bool:
        """False when the rule is unread and its words hold no ``-i``/``-o`` (or a long spelling):
        whoever looks for interfaces (host inference) need not read it."""
        text = self._text
        if text is None:
            return True
        t = " " + text
        return " -i " in t or " -o " in t or "-interface " in t

    @property
    def jump(self) -> str | None:
        text = self._text
        if text is not None:
            if self._jump is not UNREAD:
                return self._jump
            # A rule of a deferred chain: the word after its last -j/-g, when that is certain.
            t = " " + text
            i = max(t.rfind(" -j "), t.rfind(" -g "))
            if i >= 0 and not t.count('"', 0, i) & 1:
                e = t.find(" ", i + 4)
                word = t[i + 4:] if e < 0 else t[i + 4:e]
                if e < 0 and word in self._book.tables[self.table].chains:
                    return word  # a chain jump takes no options: last word
                if word in STANDARD_VERDICTS or word in self._book.targets:
                    return None
            elif i < 0 and " --j" not in t and " --g" not in t:  # (--jump, --goto, abbreviated)
                return None
            self.parse()
        return _JUMP.__get__(self, Rule)

    def raw_keys(self, bits: int = 32) -> tuple[int | None, int | None] | None:
        """``(destination, destination port)`` this unread rule of an IPv4 (``bits`` 32) or IPv6
        (128) table requires exactly (None in either place: it does not require one), read from
        its words alone; None when the words do not settle it and the rule must be read.

        It lets the tracer's index of a big chain (kube-proxy's ``KUBE-SERVICES``: one
        ``-d CLUSTERIP/32 … -m tcp --dport N`` rule per service port) be built without reading
        10,000 rules.  Only what is certain from the words counts: one ``-d A.B.C.D[/32]`` not
        negated, one ``--dport N`` not negated inside a ``-m tcp|udp|sctp|udplite|dccp``
        segment, each outside double quotes.  (Text with escapes or single quotes never becomes
        a LazyRule; a long spelling such as ``--destination`` is not looked for, so a rule
        using one claims nothing and is read.)"""
        text = self._text
        if text is None or self._family == (4 if bits == 128 else 6):
            return None
        m = _CANON_KEYS.fullmatch(text) if bits == 32 else None
        if m is not None:  # kube-proxy's shape: no word-by-word look needed
            d, p = m.groups()
            port = int(p) if p is not None else None
            if port is not None and port > 65535:
                return None
            return (int.from_bytes(inet_aton(d), "big") if d is not None else None), port
        t = " " + text
        dst = dport = None
        i = t.find(" -d ")
        if i >= 0:
            if t.find(" -d ", i + 1) >= 0 or t.endswith(" !", 0, i) or t.count('"', 0, i) & 1:
                return None
            e = t.find(" ", i + 4)
            word = t[i + 4:] if e < 0 else t[i + 4:e]
            dst = _host_v4(word) if bits == 32 else _host_v6(word)
            if dst is None:
                return None
        i = t.find(" --dport ")
        if i >= 0:
            if t.find(" --dport ", i + 1) >= 0 or t.endswith(" !", 0, i) or t.count('"', 0, i) & 1:
                return None
            k = t.rfind(" -m ", 0, i)  # the module whose option it is: the last -m before it
            if k < 0 or t.count('"', 0, k) & 1:
                return None
            e = t.find(" ", k + 4)
            if t[k + 4:e] not in _PORT_MATCHES:
                return None
            e = t.find(" ", i + 9)
            word = t[i + 9:] if e < 0 else t[i + 9:e]
            if not is_decimal(word) or len(word) > 5 or int(word) > 65535:
                return None
            dport = int(word)
        return dst, dport


# -- which rules may be lazy -----------------------------------------------------------------
# The decision is made on the rule's text after ``-A CHAIN`` (quoted words blanked out), with one
# regular expression that finds the built-in options and their values: no word split, no parse.

_EAGER = object()
_PLAIN = 0
_HOOKED = 1


def _need(cls) -> object:  # noqa: ANN001
    """_EAGER: rules with this module are read at load time (no extension models it, it is bound
    to one family, its save form depends on the family, it adds ruleset notes, or its options
    decide where it may be used); _HOOKED: the module's class alone restricts its table or hooks,
    which the reader checks without reading the options; _PLAIN: nothing to check."""
    if cls is None or getattr(cls, "family", None) is not None or getattr(cls, "family_sensitive", False) \
            or getattr(cls, "may_note", False) or getattr(cls, "allowed_hooks", None) is not Extension.allowed_hooks:
        return _EAGER
    if getattr(cls, "hooks", None) or getattr(cls, "table_only", None):
        return _HOOKED
    return _PLAIN


_MATCH_MEMO: dict[str, tuple] = {}
_TARGET_MEMO: dict[str, tuple] = {}
_PROTO_MEMO: dict[str, bool] = {}


def _match_need(name: str) -> tuple:
    v = _MATCH_MEMO.get(name)
    if v is None:
        cls = match_class(name)
        v = _MATCH_MEMO[name] = (_need(cls), cls)
    return v


def _target_need(name: str, goto: bool) -> tuple:
    """(need, class) of ``-j NAME`` / ``-g NAME``; class None with _PLAIN: a user chain."""
    key = name if not goto else "\0g:" + name
    v = _TARGET_MEMO.get(key)
    if v is None:
        if name in STANDARD_VERDICTS:
            cls = target_class("standard")
            v = (_need(cls), cls)
        elif not goto and (cls := target_class(name)) is not None:
            v = (_need(cls), cls)
        elif not goto and name in IPTABLES_TARGETS:
            v = (_EAGER, None)  # kept verbatim (not understood): counted by not_understood()
        elif name[:1] in ("-", "!", '"', ""):
            v = (_EAGER, None)
        else:
            v = (_PLAIN, None)
        if len(_TARGET_MEMO) > 1 << 17:  # a kube-proxy dump jumps to 37,000 chains
            _TARGET_MEMO.clear()
        _TARGET_MEMO[key] = v
    return v


def _proto_eager(text: str) -> bool:
    v = _PROTO_MEMO.get(text)
    if v is None:
        try:
            p = canonical_proto(text)
        except OptionError:
            v = True
        else:
            implicit = IMPLICIT_MATCH.get(p or "")
            v = implicit is not None and _need(match_class(implicit)) is not _PLAIN
        _PROTO_MEMO[text] = v
    return v


def _eager_words() -> frozenset[str]:
    """Words that send a rule to the parser at once: ``-c``, ``-f``, the long spellings of the
    deciding options (iptables-save never prints them) and getopt abbreviations (``--mat``)."""
    longs = [f for f in BUILTIN_FLAGS if f.startswith("--")]
    abbrevs = {f[:k] for f in longs for k in range(3, len(f))} - set(BUILTIN_FLAGS)
    decide = {f for f, key in BUILTIN_FLAGS.items()
              if key in ("counters", "fragment") or (f.startswith("--") and key in ("match", "jump", "goto", "proto"))}
    return frozenset(decide | abbrevs)


_EAGER_WORDS: frozenset[str] | None = None
_QUOTED = re.compile(r'"[^"]*"')
_ADDR_FLAGS = frozenset({"-s", "--source", "--src", "-d", "--destination", "--dst"})


# -- what an unread rule requires, from its words (LazyRule.raw_keys) --------------------------

_PORT_MATCHES = frozenset({"tcp", "udp", "sctp", "udplite", "dccp"})


# A rule that is exactly [-d HOST] [-p PROTO] [-m comment --comment C] [-m tcp|udp… --dport N]
# -j TARGET (kube-proxy's KUBE-SERVICES and KUBE-NODEPORTS lines): its keys without a word split.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANON_KEYS = re.compile(rf'(?:-d ({_OCTET}(?:\.{_OCTET}){{3}})(?:/32)? )?(?:-p [a-z]+ )?'
                         r'(?:-m comment --comment (?:"[^"\\]*"|[^ "\\]+) )?'
                         r'(?:-m (?:tcp|udp|sctp|udplite|dccp) --dport ([0-9]{1,5}) )?-j [^ ]+')


def _host_v4(word: str) -> int | None:
    """``A.B.C.D`` or ``A.B.C.D/32`` as iptables-save prints a host address, as an integer;
    None for anything else (a network, a name, leading zeros, a mask)."""
    ip, _, plen = word.partition("/")
    if plen and plen != "32":
        return None
    parts = ip.split(".")
    if len(parts) != 4 or not is_decimal(ip.replace(".", "")) or "" in parts or any(len(p) > 3 for p in parts):
        return None
    if ".0" in "." + ip and any(len(p) > 1 and p[0] == "0" for p in parts):
        return None
    a, b, c, d = map(int, parts)
    if a > 255 or b > 255 or c > 255 or d > 255:
        return None
    return (a << 24) | (b << 16) | (c << 8) | d


def _host_v6(word: str) -> int | None:
    """An IPv6 host address (``fd00::1`` or ``fd00::1/128``) as an integer; None otherwise."""
    ip, _, plen = word.partition("/")
    if (plen and plen != "128") or ":" not in ip or not ip.isascii():
        return None
    try:
        return int.from_bytes(inet_pton(AF_INET6, ip), "big")
    except OSError:
        return None


def lazy_plan(text: str) -> tuple[str | None, tuple] | None:
    """For a rule's text after ``-A CHAIN``: None when it must be read now, else ``(the chain
    it jumps or goes to, ((class, spelled), ...) of modules whose table or hooks the reader must
    check)``.  Word lookups only (a kube-proxy dump asks 100,000 times)."""
    global _EAGER_WORDS
    if "\\" in text or "'" in text:
        return None
    if '"' in text:
        if text.count('"') & 1:
            return None
        text = _QUOTED.sub('""', text)
    words = text.split()
    ws = set(words)
    if _EAGER_WORDS is None:
        _EAGER_WORDS = _eager_words()
    if not ws.isdisjoint(_EAGER_WORDS):
        return None
    n = len(words)
    if "," in text and not ws.isdisjoint(_ADDR_FLAGS):
        for i, w in enumerate(words):
            if w in _ADDR_FLAGS and i + 1 < n and "," in words[i + 1]:
                return None  # -s a,b: several rules
    hooked: tuple = ()
    if "-m" in ws:
        i = -1
        while True:
            try:
                i = words.index("-m", i + 1)
            except ValueError:
                break
            if i + 1 >= n:
                return None
            val = words[i + 1]
            need, cls = _MATCH_MEMO.get(val) or _match_need(val)
            if need is _EAGER:
                return None
            if need is _HOOKED:
                hooked += ((cls, val),)
    if "-p" in ws:
        i = words.index("-p")
        if i + 1 >= n or words.count("-p") > 1 or _proto_eager(words[i + 1]):
            return None
    jump = None
    flag = "-j" if "-j" in ws else "-g" if "-g" in ws else None
    if flag is not None:
        if words.count("-j") + words.count("-g") > 1:
            return None
        i = words.index(flag)
        if i + 1 >= n:
            return None
        val = words[i + 1]
        need, cls = _target_need(val, flag == "-g")
        if need is _EAGER:
            return None
        if need is _HOOKED:
            hooked += ((cls, val),)
        elif cls is None:
            if i + 2 != n:
                return None  # a chain jump takes no options: the parser says so
            jump = val
    return jump, hooked
