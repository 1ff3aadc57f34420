"""Read one rule specification (the words after ``-A CHAIN``), as iptables' do_parse does.

The words are handed out the way getopt would: the built-in options (-s -d -p -i -o -f), then
``-m NAME`` loads a match whose options follow, ``-j``/``-g`` a target whose options follow.  An
option belongs to the most recently loaded module that declares it -- so hand-written restore
input in any order (kube-proxy writes ``-m tcp -p tcp -d X --dport 80``) reads like the canonical
one.  ``-p tcp --dport 22`` without ``-m tcp`` loads the protocol's match implicitly, as iptables
does.
"""

from __future__ import annotations

from dataclasses import dataclass

from iptexplain.addr import check_iface, parse_address
from iptexplain.errors import OptionError
from iptexplain.ext import match_class, target_class
from iptexplain.ext.base import ChainJump, Extension, Match, OpaqueMatch, OpaqueTarget, Target
from iptexplain.graph import STANDARD_VERDICTS, IPHeader
from iptexplain.numbers import decimal, is_decimal, shown

# Every match and target iptables 1.8 ships (and the common xtables-addons ones).  A name here
# that no iptexplain module implements is kept verbatim and flagged "not understood"; a name that
# is neither here, nor registered, nor a chain is what iptables itself refuses to load.
IPTABLES_MATCHES = frozenset(
    "account addrtype ah bpf cgroup cluster comment condition connbytes connlabel connlimit "
    "connmark conntrack cpu dccp devgroup dscp dst ecn esp eui64 frag fuzzy geoip hashlimit hbh "
    "helper hl icmp icmp6 iface ipcomp ipp2p iprange ipv4options ipv6header ipvs length limit "
    "lscan mac mark mh multiport nfacct osf owner physdev pkttype policy psd quota quota2 "
    "rateest realm recent rpfilter rt sctp set socket srh state statistic string tcp tcpmss time "
    "tos ttl u32 udp udplite unclean ipv6-icmp icmpv6 dhcpmac gradm lscan pknock".split()
)
IPTABLES_TARGETS = frozenset(
    "AUDIT CHAOS CHECKSUM CLASSIFY CLUSTERIP CONNMARK CONNSECMARK CT DELUDE DHCPMAC DNAT DNETMAP "
    "DNPT DSCP ECHO ECN HL HMARK IDLETIMER IPMARK LED LOG LOGMARK MARK MASQUERADE MIRROR NETMAP "
    "NFLOG NFQUEUE NOTRACK RATEEST RAWDNAT RAWSNAT REDIRECT REJECT SAME SECMARK SET SNAT SNPT "
    "STEAL SYNPROXY SYSRQ TARPIT TCPMSS TCPOPTSTRIP TEE TOS TPROXY TRACE TTL ULOG".split()
)

PROTO_NUMBERS: dict[str, int] = {
    "icmp": 1, "igmp": 2, "ipencap": 4, "tcp": 6, "egp": 8, "udp": 17, "ipv6": 41, "rsvp": 46,
    "gre": 47, "esp": 50, "ah": 51, "ipv6-icmp": 58, "eigrp": 88, "ospf": 89, "pim": 103,
    "vrrp": 112, "l2tp": 115, "sctp": 132, "udplite": 136, "dccp": 33, "mobility-header": 135,
    "ipv6-route": 43, "ipv6-frag": 44, "ipv6-nonxt": 59, "ipv6-opts": 60, "encap": 98, "ipcomp": 108,
}  # names as iptables-save prints them (getprotobynumber with Debian's /etc/protocols)
PROTO_NAMES: dict[int, str] = {v: k for k, v in PROTO_NUMBERS.items()}
PROTO_ALIASES = {"icmpv6": "ipv6-icmp", "ospfigp": "ospf", "ipip": "ipencap", "ipv6-icmpv6": "ipv6-icmp",
                 "mh": "mobility-header", "ipv6-mh": "mobility-header"}
# The match a protocol loads implicitly (``-p tcp --dport 22``).
IMPLICIT_MATCH = {"tcp": "tcp", "udp": "udp", "icmp": "icmp", "ipv6-icmp": "icmp6",
                  "sctp": "sctp", "dccp": "dccp", "udplite": "udplite", "mobility-header": "mh"}


def canonical_proto(text: str) -> str | None:
    """``tcp``/``TCP``/``6`` -> ``tcp``; ``all``/``0`` -> None (no protocol restriction)."""
    t = text.lower()
    t = PROTO_ALIASES.get(t, t)
    if t in ("all", "0"):
        return None
    if is_decimal(t):
        try:
            n = decimal(t, "protocol", 255)
        except OptionError:
            raise OptionError(f"unknown protocol \"{shown(text)}\" specified") from None
        return PROTO_NAMES.get(n, str(n)) if n else None
    if t not in PROTO_NUMBERS:
        raise OptionError(f"unknown protocol \"{shown(text)}\" specified")
    return t


BUILTIN_FLAGS = {
    "-s": "src", "--source": "src", "--src": "src",
    "-d": "dst", "--destination": "dst", "--dst": "dst",
    "-p": "proto", "--protocol": "proto", "--proto": "proto",
    "-i": "iniface", "--in-interface": "iniface",
    "-o": "outiface", "--out-interface": "outiface",
    "-f": "fragment", "--fragment": "fragment",
    "-m": "match", "--match": "match",
    "-j": "jump", "--jump": "jump",
    "-g": "goto", "--goto": "goto",
    "-c": "counters", "--set-counters": "counters",
}


@dataclass
class RuleSpec:
    header: IPHeader
    matches: tuple[Match, ...]
    target: Target | None
    goto: bool
    counters: tuple[int, int] | None
    # Expanded -s/-d lists (``-s a,b``) give several rules, as iptables does.
    extra_headers: tuple[IPHeader, ...] = ()


class _Pending:
    """A module being read: its class and the (flag, inverted, args) triples seen so far."""

    __slots__ = ("cls", "name", "opts", "raw")

    def __init__(self, cls: type[Extension] | None, name: str) -> None:
        self.cls = cls
        self.name = name
        self.opts: list[tuple[str, bool, list[str]]] = []
        self.raw: list[str] = []


# Parsed modules are immutable and rulesets repeat them endlessly (``-m conntrack --ctstate
# RELATED,ESTABLISHED``, ``-m tcp --dport 80``): build each distinct one once.
_EXT_CACHE: dict[tuple, Extension] = {}


def _finish(p: _Pending, kind: str, family: int | None = None) -> Extension:
    key = (kind, p.name, tuple((f, i, tuple(a)) for f, i, a in p.opts), tuple(p.raw), family)
    hit = _EXT_CACHE.get(key)
    if hit is not None:
        return hit
    if p.cls is None:
        ext: Extension = (
            OpaqueMatch(raw=tuple(p.raw), opaque_name=p.name, spelled=p.name)
            if kind == "match"
            else OpaqueTarget(raw=tuple(p.raw), opaque_name=p.name, spelled=p.name)
        )
    else:
        ext = p.cls.build(p.opts, spelled=p.name, family=family)
    if len(_EXT_CACHE) < 500_000:
        _EXT_CACHE[key] = ext
    return ext


def _addresses(text: str, family: int | None) -> list:
    return [parse_address(part, family) for part in text.split(",") if part]


# -- the fast path ------------------------------------------------------------------------------
# iptables-save prints every rule in one canonical order: the built-in options, then each
# ``-m NAME`` followed only by its own options, then ``-j``/``-g`` and the target's options.  A
# kube-proxy dump is 140,000 such lines, and the segments repeat (``-m tcp --dport 80``,
# ``-j KUBE-MARK-MASQ``), so the fast path reads a line segment by segment and builds each
# distinct segment once.  Anything else (options in another order, implicit protocol matches,
# abbreviations, ``-c``, address lists, any error) is left to the general reader below, which
# gives the same result for canonical lines -- the fast path is only a shortcut to it.

_HEADER_KEYS = {flag: key for flag, key in BUILTIN_FLAGS.items()
                if key in ("src", "dst", "proto", "iniface", "outiface", "fragment")}
_MODULE_START = frozenset({"-m", "--match", "-j", "--jump", "-g", "--goto"})
_SEGMENT_CACHE: dict[tuple, tuple[Extension, tuple[str, ...]]] = {}
_HEADER_CACHE: dict[tuple, IPHeader] = {}
_PROTO_CACHE: dict[str, str | None] = {}
_IFACE_CACHE: dict[str, str] = {}
_CACHE_MAX = 20_000


class _Fallback(Exception):
    """The line is not in canonical form: read it with the general reader."""


_NARGS: dict[type, dict[str, int]] = {}
_UNKNOWN = object()
_MATCH_CLASSES: dict[str, object] = {}


def _nargs_table(cls: type[Extension]) -> dict[str, int]:
    """flag -> argument count of a module's options; a short built-in flag (``-s``) a module
    also declares is left out, so that the general reader decides who owns it."""
    table = _NARGS.get(cls)
    if table is None:
        table = _NARGS[cls] = {
            flag: o.type.nargs for flag, o in cls.option_map().items()
            if not (flag in BUILTIN_FLAGS and not flag.startswith("--"))
        }
    return table


def _match_cls(name: str) -> type[Match] | None:
    """match_class with a memo; raises _Fallback for a name iptables does not know either."""
    cls = _MATCH_CLASSES.get(name)
    if cls is None:
        found = match_class(name)
        if found is None and name.lower() not in IPTABLES_MATCHES:
            found = _UNKNOWN
        cls = _MATCH_CLASSES[name] = found if found is not None else False
    if cls is _UNKNOWN:
        raise _Fallback
    return cls or None  # type: ignore[return-value]


def _segment_end(args: list[str], i: int, n: int, cls: type[Extension] | None, stop_at_module: bool) -> int:
    """Index after the options of the module whose name is at ``args[i - 1]``."""
    if cls is None:
        # An unmodelled module: its words run to the next module; a built-in option among them
        # would be the rule's, which only the general reader sorts out.
        prev = ""
        while i < n:
            tok = args[i]
            if tok in _MODULE_START and stop_at_module and prev != "!":
                return i
            if tok in BUILTIN_FLAGS or (tok == "!" and prev == "!"):
                raise _Fallback
            prev = tok
            i += 1
        if prev == "!":
            raise _Fallback
        return i
    nargs = _NARGS.get(cls) or _nargs_table(cls)
    while i < n:
        tok = args[i]
        if tok == "!":
            i += 1
            if i >= n:
                raise _Fallback
            tok = args[i]
            k = nargs.get(tok)
            if k is None:
                raise _Fallback
        else:
            k = nargs.get(tok)
            if k is None:
                if stop_at_module and tok in _MODULE_START:
                    return i
                raise _Fallback
        i += 1 + k
    if i > n:
        raise _Fallback
    return i


def _fast_rulespec(args: list[str], family: int | None) -> RuleSpec:
    n = len(args)
    i = 0
    invert = False
    src = dst = iniface = outiface = proto = fragment = None
    src_inv = dst_inv = iniface_inv = outiface_inv = proto_inv = False
    have_proto = False
    # Built-in options first.
    while i < n:
        tok = args[i]
        if tok == "!":
            if invert:
                raise _Fallback
            invert = True
            i += 1
            continue
        key = _HEADER_KEYS.get(tok)
        if key is None:
            break
        if key == "fragment":
            if fragment is not None:
                raise _Fallback
            fragment = not invert
            i += 1
            invert = False
            continue
        if i + 1 >= n:
            raise _Fallback
        val = args[i + 1]
        if key == "dst":
            if dst is not None or "," in val or val == "!":
                raise _Fallback
            dst, dst_inv = parse_address(val, family), invert
        elif key == "proto":
            if have_proto:
                raise _Fallback
            have_proto = True
            p = _PROTO_CACHE.get(val, "")
            if p == "":
                p = _PROTO_CACHE[val] = canonical_proto(val)
            proto, proto_inv = p, invert
        elif key == "src":
            if src is not None or "," in val or val == "!":
                raise _Fallback
            src, src_inv = parse_address(val, family), invert
        else:
            name = _IFACE_CACHE.get(val)
            if name is None:
                name = _IFACE_CACHE[val] = check_iface(val)
            if key == "iniface":
                if iniface is not None:
                    raise _Fallback
                iniface, iniface_inv = name, invert
            else:
                if outiface is not None:
                    raise _Fallback
                outiface, outiface_inv = name, invert
        invert = False
        i += 2
    if invert:
        raise _Fallback
    if src is not None and dst is not None and src.family != dst.family:
        raise _Fallback
    hkey = (src, src_inv, dst, dst_inv, iniface, iniface_inv, outiface, outiface_inv, proto, proto_inv, fragment)
    header = _HEADER_CACHE.get(hkey)
    if header is None:
        header = IPHeader(*hkey)
        if len(_HEADER_CACHE) > _CACHE_MAX:
            _HEADER_CACHE.clear()
        _HEADER_CACHE[hkey] = header

    # Then the matches, each with its own options only.
    matches: list[Extension] = []
    target: Extension | None = None
    goto = False
    while i < n:
        tok = args[i]
        if tok == "-m" or tok == "--match":
            if i + 1 >= n:
                raise _Fallback
            start = i + 1
            name = args[start]
            cls = _match_cls(name)
            end = _segment_end(args, start + 1, n, cls, True)
            seg = ("m", family, *args[start:end])
            hit = _SEGMENT_CACHE.get(seg)
            if hit is None:
                pend = _Pending(cls, name)
                _fill(pend, args, start + 1, end)
                ext = (cls.build(pend.opts, spelled=name, family=family) if cls is not None
                       else _finish(pend, "match", family))
                flags = tuple(w for w in pend.raw if w.startswith("-")) if cls is None else ()
                hit = _SEGMENT_CACHE[seg] = (ext, flags)
            ext, flags = hit
            if flags and _claimed(flags, matches, proto):
                raise _Fallback
            matches.append(ext)
            i = end
        elif tok in ("-j", "--jump", "-g", "--goto"):
            if i + 1 >= n:
                raise _Fallback
            goto = tok in ("-g", "--goto")
            start = i + 1
            val = args[start]
            seg = ("g" if goto else "j", family, *args[start:])
            hit = _SEGMENT_CACHE.get(seg)
            if hit is None:
                pend = _Pending(None, val)
                if val in STANDARD_VERDICTS:
                    pend.cls = target_class("standard")
                elif not goto and (tcls := target_class(val)) is not None:
                    pend.cls = tcls
                elif not goto and val in IPTABLES_TARGETS:
                    pend.cls = None
                else:
                    if start + 1 != n:
                        raise _Fallback
                    hit = (ChainJump(chain=val), ())
                if hit is None:
                    end = _segment_end(args, start + 1, n, pend.cls, False)
                    if end != n:
                        raise _Fallback
                    _fill(pend, args, start + 1, n)
                    ext = (pend.cls.build(pend.opts, spelled=val, family=family) if pend.cls is not None
                           else _finish(pend, "target", family))
                    flags = tuple(w for w in pend.raw if w.startswith("-")) if pend.cls is None else ()
                    hit = (ext, flags)
                _SEGMENT_CACHE[seg] = hit
            target, flags = hit
            if flags and _claimed(flags, matches, proto):
                raise _Fallback
            i = n
        else:
            raise _Fallback
    # Most segments of a kube-proxy dump are unique (comments, DNAT endpoints, chain names):
    # a bounded cache keeps the repeating ones without holding every line's words to the end.
    if len(_SEGMENT_CACHE) > _CACHE_MAX:
        _SEGMENT_CACHE.clear()
    return RuleSpec(header, tuple(matches), target, goto, None)  # type: ignore[arg-type]


def _claimed(flags: tuple[str, ...], matches: list[Extension], proto: str | None) -> bool:
    """Whether an option word of an unmodelled module would go to another module (an earlier
    match, by name or getopt abbreviation, or the protocol's implicit match)."""
    classes = [type(m) for m in matches]
    implicit = IMPLICIT_MATCH.get(proto or "")
    icls = match_class(implicit) if implicit else None
    if icls is not None:
        classes.append(icls)
    for cls in classes:
        for flag in cls.option_map():
            for f in flags:
                if flag == f or (f.startswith("--") and flag.startswith(f)):
                    return True
    return False


def _fill(p: _Pending, args: list[str], i: int, end: int) -> None:
    """The options of one module's segment, as the general reader hands them to it."""
    invert = False
    if p.cls is None:
        p.raw.extend(args[i:end])
        return
    omap = p.cls.option_map()
    while i < end:
        tok = args[i]
        if tok == "!":
            invert = True
            i += 1
            continue
        k = omap[tok].type.nargs
        p.opts.append((tok, invert, list(args[i + 1 : i + 1 + k])))
        invert = False
        i += 1 + k


def parse_rulespec(args: list[str], family: int | None = None) -> RuleSpec:
    """Parse rule words; raise OptionError with iptables' own wording where it has one."""
    try:
        return _fast_rulespec(args, family)
    except (_Fallback, OptionError):
        pass
    return _parse_rulespec(args, family)


def _parse_rulespec(args: list[str], family: int | None = None) -> RuleSpec:
    """The general reader: getopt's way, any option order."""
    hdr: dict = {}
    matches: list[_Pending] = []
    target: _Pending | None = None
    goto = False
    counters: tuple[int, int] | None = None
    invert = False
    src_list: list = []
    dst_list: list = []
    n = len(args)
    i = 0
    current: _Pending | None = None  # the module whose options may follow

    def need(k: int, flag: str) -> list[str]:
        vals = args[i + 1 : i + 1 + k]
        if len(vals) < k:
            raise OptionError(f"option \"{flag}\" requires an argument")
        return vals

    while i < n:
        tok = args[i]
        if tok == "!":
            if invert:
                raise OptionError("multiple consecutive ! not allowed")
            invert = True
            i += 1
            continue
        key = BUILTIN_FLAGS.get(tok)
        # A builtin long option may also be an option of the current module (policy --proto).
        if key is not None and tok.startswith("--") and current is not None and current.cls is not None and current.cls.knows(tok):
            key = None
        if key is not None:
            if key in ("src", "dst", "proto", "iniface", "outiface"):
                (val,) = need(1, tok)
                if val == "!":
                    raise OptionError(
                        f"Using intrapositioned negation (`{tok} ! this`) is no longer supported"
                    )
                if key in hdr:
                    raise OptionError(f"multiple {tok} flags not allowed")
                if key == "src":
                    src_list = _addresses(val, family)
                    if not src_list:
                        raise OptionError(f"host/network `{val}' not found")
                    hdr[key] = (src_list[0], invert)
                elif key == "dst":
                    dst_list = _addresses(val, family)
                    if not dst_list:
                        raise OptionError(f"host/network `{val}' not found")
                    hdr[key] = (dst_list[0], invert)
                elif key == "proto":
                    hdr[key] = (canonical_proto(val), invert)
                else:
                    hdr[key] = (check_iface(val), invert)
                i += 2
            elif key == "fragment":
                hdr["fragment"] = not invert
                i += 1
            elif key == "match":
                (val,) = need(1, tok)
                if invert:
                    raise OptionError("unexpected ! flag before --match")
                cls = match_class(val)
                if cls is None and val.lower() not in IPTABLES_MATCHES:
                    raise OptionError(f"Couldn't load match `{val}':No such file or directory")
                current = _Pending(cls, val)
                matches.append(current)
                i += 2
            elif key in ("jump", "goto"):
                (val,) = need(1, tok)
                if target is not None:
                    raise OptionError("multiple -j flags not allowed")
                goto = key == "goto"
                current = _Pending(None, val)
                if val in STANDARD_VERDICTS:
                    current.cls = target_class("standard")
                elif not goto and (cls := target_class(val)) is not None:
                    current.cls = cls
                elif not goto and val in IPTABLES_TARGETS:
                    current.cls = None  # a real target iptexplain does not model: opaque
                else:
                    current.name = "\0chain:" + val
                target = current
                i += 2
            elif key == "counters":
                vals = need(2, tok)
                try:
                    counters = (decimal(vals[0]), decimal(vals[1]))
                except OptionError:
                    raise OptionError("-c packet counter not numeric") from None
                i += 3
            invert = False
            continue

        # A module option: find its owner, latest module first, then an implicit protocol match.
        owner = _owner(tok, current, matches, target)
        if owner is None and tok.startswith("-"):
            proto = hdr.get("proto", (None, False))[0]
            implicit = IMPLICIT_MATCH.get(proto or "")
            cls = match_class(implicit) if implicit else None
            if cls is not None and cls.knows(tok) and not any(m.cls is cls for m in matches):
                owner = _Pending(cls, implicit)  # type: ignore[arg-type]
                matches.append(owner)
        if owner is None and tok.startswith("--"):
            # getopt_long accepts an unambiguous abbreviation (`--mac` for `--mac-source`).
            found = _abbreviation(tok, matches, target)
            if found is not None:
                owner, tok = found
        if owner is None:
            if current is not None and current.cls is None and not current.name.startswith("\0"):
                # Options of a module iptexplain does not model: keep the words verbatim.
                if invert:
                    current.raw.append("!")
                current.raw.append(tok)
                invert = False
                i += 1
                continue
            if tok.startswith("-"):
                raise OptionError(f"unknown option \"{tok}\"")
            raise OptionError(f"Bad argument `{tok}'")
        nargs = owner.cls.nargs(tok)  # type: ignore[union-attr]
        vals = args[i + 1 : i + 1 + nargs]
        if len(vals) < nargs:
            raise OptionError(f"option \"{tok}\" requires an argument")
        owner.opts.append((tok, invert, list(vals)))
        invert = False
        i += 1 + nargs

    if invert:
        raise OptionError("trailing ! with no option")

    built_matches = tuple(_finish(m, "match", family) for m in matches)  # type: ignore[misc]
    built_target: Target | None = None
    if target is not None:
        if target.name.startswith("\0chain:"):
            if target.opts or target.raw:
                raise OptionError("a chain jump takes no options")
            built_target = ChainJump(chain=target.name[len("\0chain:"):])
        else:
            built_target = _finish(target, "target", family)  # type: ignore[assignment]

    def header(src, dst) -> IPHeader:
        return IPHeader(
            src=src, src_inv=hdr.get("src", (None, False))[1],
            dst=dst, dst_inv=hdr.get("dst", (None, False))[1],
            iniface=hdr.get("iniface", (None, False))[0], iniface_inv=hdr.get("iniface", (None, False))[1],
            outiface=hdr.get("outiface", (None, False))[0], outiface_inv=hdr.get("outiface", (None, False))[1],
            proto=hdr.get("proto", (None, False))[0], proto_inv=hdr.get("proto", (None, False))[1],
            fragment=hdr.get("fragment"),
        )

    srcs = src_list or [None]
    dsts = dst_list or [None]
    if (len(srcs) > 1 or len(dsts) > 1) and (hdr.get("src", (0, False))[1] or hdr.get("dst", (0, False))[1]):
        raise OptionError("! not allowed with multiple source or destination IP addresses")
    headers = [header(s, d) for s in srcs for d in dsts]
    fam = {a.family for a in src_list + dst_list}
    if len(fam) > 1:
        raise OptionError("source and destination address families differ")
    return RuleSpec(headers[0], built_matches, built_target, goto, counters, tuple(headers[1:]))


def _abbreviation(tok: str, matches: list[_Pending], target: _Pending | None) -> tuple[_Pending, str] | None:
    """The loaded module option ``tok`` abbreviates, as getopt_long resolves prefixes; an
    ambiguous abbreviation is an error, as in iptables."""
    hits: dict[tuple[int, str], tuple[_Pending, str]] = {}
    for p in [*matches, *([target] if target is not None else [])]:
        if p.cls is None:
            continue
        for flag, opt in p.cls.option_map().items():
            if flag.startswith(tok):
                hits.setdefault((id(p), opt.key), (p, flag))
    builtin = [f for f in BUILTIN_FLAGS if f.startswith(tok) and f.startswith("--")]
    if len(hits) + (1 if builtin else 0) > 1:
        raise OptionError(f"option \"{tok}\" is ambiguous")
    return next(iter(hits.values())) if hits else None


def _owner(tok: str, current: _Pending | None, matches: list[_Pending], target: _Pending | None) -> _Pending | None:
    if current is not None and current.cls is not None and current.cls.knows(tok):
        return current
    if target is not None and target.cls is not None and target.cls.knows(tok):
        return target
    for m in reversed(matches):
        if m.cls is not None and m.cls.knows(tok):
            return m
    return None
