"""The shape every match and target extension has, after iptables' ``struct xtables_match``.

An extension module declares its options as a table of :class:`Opt` (like libxtables'
``xt_option_entry``), and the generic machinery here turns ``-m NAME [!] --opt ARGS ...`` into a
typed, frozen object and prints it back in ``iptables-save`` syntax.  The faces an extension
may add on top, each in its own module and nowhere else:

* ``save_args()`` -- override when iptables-save prints the module differently from its input;
* ``listing()`` / ``from_listing()`` -- the ``iptables -L`` text of the module and its inverse;
* ``decide()`` -- which part of a set of packets the match accepts (the tracer's face).

A module the registry does not know becomes an :class:`OpaqueMatch` / :class:`OpaqueTarget`:
kept verbatim, printed back verbatim, and flagged as not understood -- never dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
import socket
from typing import Any, Callable, ClassVar, Iterable, Sequence

from iptexplain.core.errors import OptionError
from iptexplain.numbers import decimal, is_decimal, shown, strtoul

# ---------------------------------------------------------------------------------------------
# Option value types.  Each parses the argument tokens into a canonical Python value and formats
# that value back the way iptables-save prints it.


@dataclass(frozen=True)
class OptType:
    """How one option's arguments are read and written back."""

    name: str
    parse: Callable[[Sequence[str]], Any]
    fmt: Callable[[Any], list[str]]
    nargs: int = 1


def _one(fn: Callable[[str], Any]) -> Callable[[Sequence[str]], Any]:
    return lambda args: fn(args[0])


SAVE_SAFE = frozenset("_-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def save_string(value: str) -> str:
    """Quote a string exactly as libxtables' ``xtables_save_string`` does."""
    if value and SAVE_SAFE.issuperset(value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("'", "\\'")
    return f'"{escaped}"'


def parse_uint(text: str, bits: int = 32) -> int:
    """Read a number as strtoul(…, 0) does: decimal, 0x hex, leading-0 octal."""
    t = text.strip(" \t")
    try:
        v = strtoul(t)
    except OptionError:
        raise OptionError(f"invalid number `{shown(text)}'") from None
    if v >= (1 << bits):
        raise OptionError(f"number `{shown(text)}' out of range (0-{(1 << bits) - 1})")
    return v


# A small services table: iptables resolves names through /etc/services, which a container may
# not have; these are the names that appear in real rulesets and listings.
SERVICES: dict[str, int] = {
    "ftp-data": 20, "ftp": 21, "ssh": 22, "telnet": 23, "smtp": 25, "domain": 53, "bootps": 67,
    "bootpc": 68, "tftp": 69, "http": 80, "www": 80, "kerberos": 88, "pop3": 110,
    "sunrpc": 111, "auth": 113, "ntp": 123, "netbios-ns": 137, "netbios-dgm": 138,
    "netbios-ssn": 139, "imap2": 143, "imap": 143, "snmp": 161, "snmp-trap": 162,
    "ldap": 389, "https": 443, "microsoft-ds": 445, "isakmp": 500, "syslog": 514,
    "submission": 587, "ldaps": 636, "rsync": 873, "imaps": 993, "pop3s": 995,
    "openvpn": 1194, "ms-sql-s": 1433, "mysql": 3306, "ipsec-nat-t": 4500, "sip": 5060,
    "postgresql": 5432, "http-alt": 8080, "webcache": 8080, "mdns": 5353, "nfs": 2049,
    "x11": 6000, "ircd": 6667, "squid": 3128, "bgp": 179, "dhcpv6-client": 546,
    "dhcpv6-server": 547, "ms-wbt-server": 3389, "zabbix-agent": 10050,
    "zabbix-trapper": 10051, "nrpe": 5666, "puppet": 8140, "git": 9418, "kerberos-adm": 749,
    "xmpp-client": 5222, "xmpp-server": 5269, "sieve": 4190, "ircs-u": 6697, "rtmp": 1935,
    "loghost": 514, "nntp": 119, "gopher": 70, "finger": 79, "whois": 43, "tproxy": 8081,
    "amanda": 10080, "svn": 3690, "iax": 4569, "radius": 1812, "radius-acct": 1813,
    "l2f": 1701, "pptp": 1723, "nameserver": 42, "tacacs": 49, "epmap": 135,
    "https-alt": 8443, "pcsync-https": 8443, "hkp": 11371,
}
PORT_NAMES: dict[int, str] = {}
for _name, _port in SERVICES.items():
    PORT_NAMES.setdefault(_port, _name)


def parse_port(text: str) -> int:
    if is_decimal(text):
        try:
            return decimal(text, "port", 65535)
        except OptionError:
            pass
    elif text in SERVICES:
        return SERVICES[text]
    raise OptionError(f"invalid port/service `{shown(text)}' specified")


def parse_portrange(text: str) -> tuple[int, int]:
    """``80``, ``80:90``, ``:90``, ``80:`` -> inclusive (low, high); low > high is an empty range."""
    if ":" in text:
        lo_t, _, hi_t = text.partition(":")
        lo = parse_port(lo_t) if lo_t else 0
        hi = parse_port(hi_t) if hi_t else 65535
        return (lo, hi)  # kept as given: iptables stores ``60000:29`` as is (it matches nothing)
    p = parse_port(text)
    return (p, p)


def fmt_portrange(r: tuple[int, int]) -> str:
    return str(r[0]) if r[0] == r[1] else f"{r[0]}:{r[1]}"


def parse_uintrange(text: str, bits: int = 32) -> tuple[int, int]:
    if ":" in text:
        lo_t, _, hi_t = text.partition(":")
        lo = parse_uint(lo_t, bits) if lo_t else 0
        hi = parse_uint(hi_t, bits) if hi_t else (1 << bits) - 1
        return (lo, hi)
    v = parse_uint(text, bits)
    return (v, v)


def parse_markmask(text: str) -> tuple[int, int]:
    """``0x4000/0x4000`` -> (value, mask); a bare value has the full mask."""
    value_t, sep, mask_t = text.partition("/")
    value = parse_uint(value_t)
    mask = parse_uint(mask_t) if sep else 0xFFFFFFFF
    return (value, mask)


def fmt_markmask(vm: tuple[int, int]) -> str:
    value, mask = vm
    return f"0x{value:x}" if mask == 0xFFFFFFFF else f"0x{value:x}/0x{mask:x}"


def parse_list(text: str) -> tuple[str, ...]:
    return tuple(x for x in text.split(",") if x != "")


def _choice(choices: Iterable[str], upper: bool = False) -> Callable[[str], str]:
    allowed = {c.lower(): c for c in choices}

    def parse(text: str) -> str:
        key = text.lower()
        if key not in allowed:
            raise OptionError(f"bad value `{text}' (expected one of: {', '.join(allowed.values())})")
        return allowed[key]

    return parse


class types:
    """The option types extensions declare (namespace, not instantiated)."""

    flag = OptType("flag", lambda args: True, lambda v: [], nargs=0)
    string = OptType("string", _one(str), lambda v: [save_string(v)])
    word = OptType("word", _one(str), lambda v: [v])
    port = OptType("port", _one(parse_port), lambda v: [str(v)])
    portrange = OptType("portrange", _one(parse_portrange), lambda v: [fmt_portrange(v)])
    uint32 = OptType("uint32", _one(parse_uint), lambda v: [str(v)])
    uint32_hex = OptType("uint32", _one(parse_uint), lambda v: [f"0x{v:x}"])
    uint8 = OptType("uint8", _one(lambda t: parse_uint(t, 8)), lambda v: [str(v)])
    uint16 = OptType("uint16", _one(lambda t: parse_uint(t, 16)), lambda v: [str(v)])
    uintrange = OptType(
        "uintrange", _one(parse_uintrange),
        lambda v: [str(v[0]) if v[0] == v[1] else f"{v[0]}:{v[1]}"],
    )
    markmask = OptType("markmask", _one(parse_markmask), lambda v: [fmt_markmask(v)])
    markmask_full = OptType(
        "markmask", _one(parse_markmask), lambda v: [f"0x{v[0]:x}/0x{v[1]:x}"]
    )
    wordlist = OptType("wordlist", _one(parse_list), lambda v: [",".join(v)])

    @staticmethod
    def choice(*choices: str) -> OptType:
        return OptType("choice", _one(_choice(choices)), lambda v: [v])

    @staticmethod
    def custom(name: str, parse: Callable[[str], Any], fmt: Callable[[Any], str]) -> OptType:
        return OptType(name, _one(parse), lambda v: [fmt(v)])


@dataclass(frozen=True)
class Opt:
    """One option of an extension: ``key`` is the attribute name, ``flag`` the save spelling."""

    key: str
    flag: str
    type: OptType = types.word
    aliases: tuple[str, ...] = ()
    invert: bool = True  # may be preceded by "!"
    multi: bool = False  # may be given more than once (values accumulate in a tuple)


@dataclass(frozen=True, slots=True)
class Value:
    """A parsed option value with its ``!``."""

    value: Any
    invert: bool = False


# ---------------------------------------------------------------------------------------------
# Extensions.


@dataclass(frozen=True, eq=True)
class Extension:
    """Base of matches and targets: a name and its parsed options, in declaration order."""

    name: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    options: ClassVar[tuple[Opt, ...]] = ()
    understood: ClassVar[bool] = True
    family: ClassVar[int | None] = None  # 4 or 6 when the module exists for one family only

    # Set on classes whose instances may carry ruleset notes (see :meth:`notes`), so the parser
    # asks only them.
    may_note: ClassVar[bool] = False
    # Set on classes whose save form depends on the rule's family (see ``nfproto``): the reader
    # sets ``nfproto`` on them again once the table's family is known.
    family_sensitive: ClassVar[bool] = False
    # The built-in chains (netfilter hooks) the kernel accepts the module in, when it restricts
    # them (xt_match/xt_target ``.hooks`` and checkentry tests); None: anywhere.
    hooks: ClassVar[frozenset[str] | None] = None

    values: tuple[tuple[str, Value], ...] = ()
    # The module name as written in the input (an alias, or the case used).
    spelled: str = field(default="", compare=False)
    # The family of the rule (4, 6) when the parser knew it: a few modules print family-dependent
    # defaults (recent --mask, hashlimit masks, connlimit --connlimit-mask).
    nfproto: int | None = field(default=None, compare=False)

    # -- option access ----------------------------------------------------------------------

    def get(self, key: str) -> Value | None:
        for k, v in self.values:
            if k == key:
                return v
        return None

    def value(self, key: str, default: Any = None) -> Any:
        v = self.get(key)
        return default if v is None else v.value

    def has(self, key: str) -> bool:
        return self.get(key) is not None

    # -- parsing ----------------------------------------------------------------------------

    @classmethod
    def option_map(cls) -> dict[str, Opt]:
        cached = cls.__dict__.get("_option_map")
        if cached is None:
            cached = {}
            for o in cls.options:
                cached[o.flag] = o
                for a in o.aliases:
                    cached[a] = o
            cls._option_map = cached  # type: ignore[attr-defined]
        return cached

    @classmethod
    def knows(cls, flag: str) -> bool:
        return flag in cls.option_map()

    @classmethod
    def nargs(cls, flag: str) -> int:
        return cls.option_map()[flag].type.nargs

    @classmethod
    def build(cls, opts: list[tuple[str, bool, list[str]]], spelled: str = "",
              family: int | None = None) -> "Extension":
        """Make the extension from ``(flag, inverted, args)`` triples, as getopt hands them."""
        omap = cls.option_map()
        values: dict[str, Value] = {}
        for flag, inv, args in opts:
            o = omap[flag]
            if inv and not o.invert:
                raise OptionError(f"{cls.name}: option \"{flag}\" cannot be inverted")
            parsed = o.type.parse(args)
            if o.key in values:
                if not o.multi:
                    raise OptionError(f"{cls.name}: option \"{flag}\" can only be used once")
                prev = values[o.key]
                values[o.key] = Value(prev.value + (parsed,), inv)
            else:
                values[o.key] = Value((parsed,) if o.multi else parsed, inv)
        obj = cls(values=tuple(values.items()), spelled=spelled or cls.name, nfproto=family)
        obj.check()
        return obj

    def check(self) -> None:
        """Final check after all options are read (libxtables' x6_fcheck); raise OptionError."""

    def allowed_hooks(self) -> frozenset[str] | None:
        """The hooks this module may be reached from; override when options decide it."""
        return self.hooks

    def notes(self) -> tuple[tuple[str, str], ...]:
        """``(kind, message)`` notes the ruleset should carry because of this module's values
        (an anonymized MAC address, say).  Only asked when the class sets ``may_note``."""
        return ()

    # -- saving -----------------------------------------------------------------------------

    @classmethod
    def _save_order(cls) -> dict[str, tuple[tuple[int, Opt], ...]]:
        """key -> ((position, option), ...) of the options that print it, made once per class:
        save_args walks the values a rule has (one to three), not every option the module
        knows (``-m statistic`` or ``-m recent`` know a dozen)."""
        cached = cls.__dict__.get("_save_order_map")
        if cached is None:
            cached = {}
            for i, o in enumerate(cls.options):
                cached[o.key] = cached.get(o.key, ()) + ((i, o),)
            cls._save_order_map = cached  # type: ignore[attr-defined]
        return cached

    def save_args(self) -> list[str]:
        """Options in iptables-save form, in the order the extension's save function prints."""
        out: list[str] = []
        values = self.values
        if not values:
            return out
        order = self.__class__.__dict__.get("_save_order_map") or self._save_order()
        if len(values) == 1:
            k, v0 = values[0]
            printed = [(o, v0) for _i, o in order.get(k, ())]
        else:
            first = {}
            for k, v0 in values:  # the first value of a key, as get() finds it
                first.setdefault(k, v0)
            printed = [(o, first[o.key]) for _i, o in sorted(
                (io for k in first for io in order.get(k, ())), key=_position)]
        for o, v in printed:
            items = v.value if o.multi else (v.value,)
            for item in items:
                if v.invert:
                    out.append("!")
                out.append(o.flag)
                out.extend(o.type.fmt(item))
        return out

    def describe(self) -> str:
        """Short human text of what the module says, for views ('tcp dport 9525')."""
        return " ".join([self.name] + self.save_args())

    # -- the -L face ------------------------------------------------------------------------
    # The first words this module's print function can write (``tcp``, ``ctstate``, ``/*``,
    # ``limit:``); the listing reader dispatches a row's free-text tail on them.  Targets are
    # found by the target column instead and need none.
    listing_keywords: ClassVar[tuple[str, ...]] = ()

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        """What iptables' print function writes for ``iptables -L`` (``-n`` when ``numeric``),
        without the leading blank; ``family``/``proto`` are the rule's, as print sees them."""
        raise NotImplementedError(f"{self.name}: no -L face")

    @classmethod
    def from_listing(cls, tail: "ListingTail") -> "Extension":
        """Read this module's words at the cursor of a -L row tail back into the extension
        (the inverse of :meth:`listing`); raise OptionError when the words are not its."""
        raise OptionError(f"{cls.name}: cannot be read from a listing")

    @classmethod
    def has_listing_face(cls) -> bool:
        return cls.listing is not Extension.listing and cls.from_listing.__func__ is not Extension.from_listing.__func__  # type: ignore[attr-defined]


class ListingTail:
    """The free text at the end of an ``iptables -L`` row as a cursor over its words.

    Words are split on blanks, except that a ``/* comment */`` and a ``"quoted string"`` (LOG's
    prefix) stay one word each, because print functions write them verbatim.  ``family`` and
    ``proto`` are the rule's (multiport prints service names for its protocol; REJECT's default
    depends on the family).  Readers move ``pos`` forward; the dispatcher rewinds on failure.
    """

    __slots__ = ("words", "pos", "family", "proto", "losses")

    def __init__(self, text: str, family: int = 4, proto: str | None = None) -> None:
        self.words = split_listing_words(text)
        self.pos = 0
        self.family = family
        self.proto = proto
        # What a module's print function leaves out (hashlimit's table name...): readers say
        # so here, in words for the user; the reader turns them into fidelity notes.
        self.losses: list[str] = []

    def peek(self, k: int = 0) -> str | None:
        i = self.pos + k
        return self.words[i] if i < len(self.words) else None

    def take(self) -> str:
        if self.pos >= len(self.words):
            raise OptionError("listing text ends early")
        w = self.words[self.pos]
        self.pos += 1
        return w

    def take_if(self, word: str) -> bool:
        if self.peek() == word:
            self.pos += 1
            return True
        return False

    def expect(self, *words: str) -> None:
        for w in words:
            got = self.take()
            if got != w:
                raise OptionError(f"expected `{w}', found `{got}'")

    def invert(self) -> bool:
        """Consume a leading ``!`` (written by print as its own word)."""
        return self.take_if("!")

    def at_end(self) -> bool:
        return self.pos >= len(self.words)

    def rest(self) -> str:
        return " ".join(self.words[self.pos :])


def split_listing_words(text: str) -> list[str]:
    """Blank-separated words, keeping ``/* ... */`` and ``"..."`` whole."""
    if "/*" not in text and '"' not in text:
        return text.split()
    return _LISTING_WORD_RE.findall(text)


# A comment runs to the first " */"; a quoted string to a quote followed by a blank or the end.
_LISTING_WORD_RE = re.compile(r'/\*\s*\*/(?=\s|$)|/\*(?: .*? )?\*/(?=\s|$)|/\*.*$|"[^"]*"(?=\s|$)|\S+')


def save_like_listing(ext: "Extension", head: str = "") -> str:
    """The -L text of modules whose print function writes the save options without their
    ``--`` (set: ``match-set NAME src``, NFLOG: ``nflog-group 2``), after ``head``."""
    words = [w[2:] if w.startswith("--") and ext.knows(w) else w for w in ext.save_args()]
    return " ".join(([head] if head else []) + words)


def read_save_like(cls: type["Extension"], tail: ListingTail, head: tuple[str, ...] = (),
                   spelled: str | None = None) -> "Extension":
    """Inverse of :func:`save_like_listing`: ``[!] WORD ARGS...`` while ``--WORD`` is an option."""
    tail.expect(*head)
    opts: list[tuple[str, bool, list[str]]] = []
    seen: set[str] = set()
    while not tail.at_end():
        start = tail.pos
        inv = tail.invert()
        w = tail.peek()
        flag = "--" + (w or "")
        if w is None or not cls.knows(flag) or (flag in seen and not cls.option_map()[flag].multi):
            tail.pos = start  # not ours, or a second match of the same module begins here
            break
        seen.add(flag)
        tail.pos += 1
        args = [unquote_listing(tail.take()) for _ in range(cls.nargs(flag))]
        opts.append((flag, inv, args))
    if not opts and not head:
        raise OptionError(f"not a {cls.name} listing")
    return cls.build(opts, spelled=spelled or cls.name, family=tail.family)


def unquote_listing(word: str) -> str:
    """``"net-fw DROP "`` -> ``net-fw DROP `` (print functions write the bytes unescaped)."""
    return word[1:-1] if len(word) >= 2 and word[0] == word[-1] == '"' else word


def listing_service(text: str, proto: str | None = "tcp") -> str:
    """A port word of a -L listing as a number: ``-L`` without ``-n`` prints /etc/services
    names of the machine that printed it.  Known names first, then this machine's services
    database (the same on most systems); an unknown name is left for the caller to reject."""
    if is_decimal(text) or text in SERVICES:
        return text if is_decimal(text) else str(SERVICES[text])

    try:
        return str(socket.getservbyname(text, proto if proto in ("tcp", "udp") else "tcp"))
    except OSError:
        return text


def listing_port(port: int, numeric: bool, proto: str | None = "tcp") -> str:
    """A port as print_port writes it: a service name when not numeric and one is known."""
    if not numeric and proto in ("tcp", "udp", "sctp", "dccp", "udplite", None):
        name = PORT_NAMES.get(port)
        if name is not None:
            return name
    return str(port)


def _position(item: tuple[int, Opt]) -> int:
    return item[0]


class Match(Extension):
    """A ``-m NAME`` match."""

    kind: ClassVar[str] = "match"

    def save(self) -> list[str]:
        return ["-m", self.spelled or self.name] + self.save_args()


class Target(Extension):
    """A ``-j NAME`` target.  ``terminal`` targets end the chain traversal (ACCEPT, DNAT…);
    non-terminal ones (LOG, MARK, CONNMARK…) continue to the next rule."""

    kind: ClassVar[str] = "target"
    terminal: ClassVar[bool] = True

    def save(self) -> list[str]:
        return ["-j", self.spelled or self.name] + self.save_args()


def _requote(words: tuple[str, ...]) -> list[str]:
    """Verbatim words of an unknown module, quoted again where the restore tokenizer needs it
    (a word holding blanks or quotes came from a quoted argument)."""
    return [save_string(w) if not w or any(c in " \t\"'\\" for c in w) else w for w in words]


@dataclass(frozen=True, eq=True)
class OpaqueMatch(Match):
    """A match module the registry does not know: options kept verbatim, never evaluated."""

    understood: ClassVar[bool] = False
    raw: tuple[str, ...] = ()
    opaque_name: str = ""

    @property
    def display_name(self) -> str:
        return self.opaque_name

    def save(self) -> list[str]:
        return ["-m", self.opaque_name] + self.save_args()

    def save_args(self) -> list[str]:
        return _requote(self.raw)

    def describe(self) -> str:
        return " ".join([self.opaque_name] + list(self.raw))


@dataclass(frozen=True, eq=True)
class OpaqueTarget(Target):
    """A target the registry does not know.  Its verdict is unknown to the tracer."""

    understood: ClassVar[bool] = False
    raw: tuple[str, ...] = ()
    opaque_name: str = ""

    def save(self) -> list[str]:
        return ["-j", self.opaque_name] + self.save_args()

    def save_args(self) -> list[str]:
        return _requote(self.raw)

    def describe(self) -> str:
        return " ".join([self.opaque_name] + list(self.raw))


@dataclass(frozen=True, eq=True)
class ChainJump(Target):
    """``-j CHAIN`` / ``-g CHAIN`` to a user-defined chain (and the standard verdicts)."""

    chain: str = ""

    def save(self) -> list[str]:
        return ["-j", self.chain]

    def describe(self) -> str:
        return self.chain


def extension_name(ext: Extension) -> str:
    """The name the user sees: the registered name, or the unknown module's own."""
    if isinstance(ext, (OpaqueMatch, OpaqueTarget)):
        return ext.opaque_name
    if isinstance(ext, ChainJump):
        return ext.chain
    return ext.spelled or ext.name
