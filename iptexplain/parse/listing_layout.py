"""The layout the deferred listing reader (:mod:`iptexplain.parse.listing_deferred`) confirms
before it keeps a listing's rows as text: the patterns of a chain block, of a row's target column,
of rounded counters and of what a row requires (destination, port); the phrases a row's free text
may hold -- those whose modules read them back whole -- and the modules that read them.

A phrase is here only when the listing reader reads it back with nothing left unread, nothing lost
and no note (tests/test_listing_deferred.py reads each), so that a listing whose rows hold only
these phrases carries none of what the listing reader reports over all rows.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import import_module

from iptexplain.graph import STANDARD_VERDICTS
from iptexplain.parse.lazy import _OCTET
from iptexplain.parse.listing_tail import TailReader
from iptexplain.parse.rulespec import IPTABLES_TARGETS

# -- the layout --------------------------------------------------------------------------------
# A row's free text: phrases whose modules read them back whole (tests/test_listing_deferred.py
# reads each through the listing reader: nothing unread, nothing lost, no note).
_COMMENT = r"/\*(?: [^ *\n]++)*+ \*/"  # kube-proxy's comments; no `*' inside, single blanks
_PORT = r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}|0)(?![0-9])"
_HOST = rf"{_OCTET}(?:\.{_OCTET}){{3}}(?![0-9])"
_PHRASE = (rf"(?:{_COMMENT}"
           rf"|(?:tcp|udp|sctp)(?: (?:dpt|spt):{_PORT}| (?:dpts|spts):{_PORT}:{_PORT})*+"
           r"|statistic mode random probability 0\.[0-9]{1,11}+"
           r"|ADDRTYPE match (?:src|dst)-type (?:LOCAL|UNICAST|BROADCAST|MULTICAST)"
           r"|mark match (?:! )?0x[0-9a-f]{1,8}+(?:/0x[0-9a-f]{1,8}+)?"
           r"|(?:! )?ctstate (?:NEW|RELATED|ESTABLISHED|INVALID|UNTRACKED|SNAT|DNAT)(?:,(?:NEW|RELATED|ESTABLISHED|INVALID|UNTRACKED|SNAT|DNAT))*+"
           r"|(?:! )?state (?:NEW|RELATED|ESTABLISHED|INVALID|UNTRACKED)(?:,(?:NEW|RELATED|ESTABLISHED|INVALID|UNTRACKED))*+"
           rf"|multiport dports {_PORT}(?:[,:]{_PORT})*+)")
_V4 = r"[0-9]{1,3}+(?:\.[0-9]{1,3}+){3}+(?:/[0-9]{1,2}+)?"
_ADDR = rf"!?(?:{_V4}|anywhere)"
_PROTO = r"!?(?:all|tcp|udp|icmp|sctp|udplite|esp|ah|gre|[0-9]{1,2}+|1[0-9]{2}+|2[0-4][0-9]|25[0-5])"
# Targets whose words end the row; any other target word must be a chain of the listing or a
# standard verdict (checked over the target column).
_TARGET_WORDS = {
    "DNAT": rf"to:{_HOST}(?::{_PORT}(?:-{_PORT})?)?",
    "SNAT": rf"to:{_HOST}(?::{_PORT}(?:-{_PORT})?)?",
    "MARK": r"MARK (?:(?:or|xor|and|set) 0x[0-9a-f]{1,8}+|xset 0x[0-9a-f]{1,8}+/0x[0-9a-f]{1,8}+)",
    "REJECT": r"reject-with (?:icmp-port-unreachable|icmp-host-unreachable|icmp-net-unreachable"
              r"|icmp-proto-unreachable|icmp-net-prohibited|icmp-host-prohibited|icmp-admin-prohibited|tcp-reset)",
}
ALLOWED_TARGETS = frozenset(STANDARD_VERDICTS | {"MASQUERADE", *_TARGET_WORDS})
# Words before the address columns: the proto, opt and (-v) in/out columns.
_NOT_A_TARGET = "(?!(?:" + "|".join(sorted(ALLOWED_TARGETS - STANDARD_VERDICTS)) + ") )"


@lru_cache(maxsize=8)
def _block_re(num: bool, verbose: bool) -> re.Pattern[str]:
    """One chain block of a layout: the ``Chain`` header, the heading, the rows, blank lines."""
    pre = r" *+" + (r"[0-9]{1,12}+ ++" if num else "") + (r"[0-9]{1,20}+[KMGT]? ++[0-9]{1,20}+[KMGT]? ++" if verbose else "")
    mid = rf" ++{_PROTO} ++[-!][-f]" + (r" ++[^ \n]++ ++[^ \n]++" if verbose else "") + rf" ++{_ADDR} ++{_ADDR}"
    free = rf"(?: ++{_PHRASE})*+ *+"

    # Before a target's own words: comments and the protocol's match (kube-proxy's, Docker's).
    small = rf"(?:{_COMMENT}|(?:tcp|udp|sctp)(?: (?:dpt|spt):{_PORT}| (?:dpts|spts):{_PORT}:{_PORT})*+)"

    def ending(words: str) -> str:
        return rf" ++(?:{small} ++)*+{words} *+"

    alts = [f"{name}{mid}{ending(words)}" for name, words in _TARGET_WORDS.items()]
    alts.append(rf"MASQUERADE{mid}(?: ++(?:{small} ++)*+(?:masq ports: {_PORT}(?:-{_PORT})? ?)?(?:random-fully|random)?)? *+")
    alts.append(rf"(?:{_NOT_A_TARGET}[^ \n!>][^ \n]*+ ++)?{mid[3:]}{free}")  # a chain, a verdict, none
    row = pre + "(?:" + "|".join(alts) + r")\n"
    heading = (r" *+(" + (r"num ++" if num else "") + (r"pkts ++bytes ++" if verbose else "")
               + r"target ++prot ++opt ++" + (r"in ++out ++" if verbose else "") + r"source ++destination) *+\n")
    return re.compile(
        r"Chain (\S++) \((?:policy ([^\s)]++)(?: ([0-9]{1,20}+[KMGT]?) packets, ([0-9]{1,20}+[KMGT]?) bytes)?"
        r"|([0-9]{1,20}+) references?)\) *+\n" + heading + "((?:" + row + r")*+)\n*+")


@lru_cache(maxsize=8)
def _target_re(num: bool, verbose: bool) -> re.Pattern[str]:
    """The target column of every row of a layout (rows without a target do not match)."""
    pre = r"\n *+" + (r"[0-9]{1,12}+ ++" if num else "") + (r"[0-9]{1,20}+[KMGT]? ++[0-9]{1,20}+[KMGT]? ++" if verbose else "")
    if not num and not verbose:
        pre = r"\n(?!target )"
    return re.compile(pre + rf"([^ \n]++) ++{_PROTO} ++[-!][-f] ")


@lru_cache(maxsize=2)
def _rounded_row(num: bool) -> re.Pattern[str]:
    """A row's counter printed with a K/M/G/T suffix (-v without -x), which the listing reader
    reports as rounded.  (Each pattern starts with a literal: a search skips to its places.)"""
    return re.compile(r"\n *+" + (r"[0-9]++ ++" if num else "") + r"[0-9]++(?:[KMGT] | ++[0-9]++[KMGT] )")


_ROUNDED_POLICY = re.compile(r"\(policy [^\s)]++ (?:[0-9]++[KMGT] packets|[0-9]++ packets, [0-9]++[KMGT] bytes)")


_LINE_BREAKS = ("\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\t")
_S_LINE = re.compile(r"^\s*(?:\[\d+:\d+\]\s*)?-[APN] \S+")



_COMMENT_SPAN = re.compile(_COMMENT)


# The modules a row the scan takes may use, and the words that show each (a target: its name in
# the target column; a match: the word its listing starts with).  A module not here is used by
# no row of a deferred listing (tests/test_listing_deferred.py holds the phrases to it).
VOCABULARY: dict[str, tuple[str, ...]] = {
    "comment": ("/*",), "tcp": ("tcp",), "udp": ("udp",), "sctp": ("sctp",), "statistic": ("statistic",),
    "addrtype": ("ADDRTYPE",), "mark": ("mark",), "conntrack": ("ctstate",), "state": ("state",),
    "multiport": ("multiport",), "DNAT": ("DNAT",), "SNAT": ("SNAT",), "MASQUERADE": ("MASQUERADE",),
    "MARK": ("MARK",), "REJECT": ("REJECT",),
    "standard": tuple(sorted(STANDARD_VERDICTS)),
}
# The modules that read those phrases back (each the only one with its listing keyword): loaded
# for the rows a deferred listing reads, instead of all ~90 (tests/test_listing_deferred.py).
TAIL_MODULES = ("libxt_addrtype", "libxt_comment", "libxt_conntrack", "libxt_mark", "libxt_multiport", "libxt_sctp",
                "libxt_state", "libxt_statistic", "libxt_tcp", "libxt_udp")


@lru_cache(maxsize=8)
def _listing_words(names: frozenset[str]) -> tuple[tuple[str, ...], re.Pattern[str] | None]:
    """The words by which a row shows that it uses a module of ``names`` (:data:`VOCABULARY`),
    and a pattern that finds one as a word -- outside comments, which the caller removes
    (kube-proxy's say "cluster IP", and ``cluster`` is a module)."""
    words = sorted({w for n in names for w in VOCABULARY.get(n, ())}, key=len, reverse=True)
    if not words:
        return (), None
    alts = "|".join(re.escape(w) for w in words)
    return tuple(words), re.compile(rf"(?<![^ \n!])(?:{alts})(?![^ \n:])")


class _PhraseTails(TailReader):
    """The listing reader's reader of a row's free text, with the index of the phrases a
    deferred listing's rows hold: their modules only (:data:`TAIL_MODULES`)."""

    def _load(self) -> None:
        for name in TAIL_MODULES:
            import_module(f"iptexplain.ext.{name}")


# Target column words that are no chain jump: the listing reader's verdicts, the targets it knows
# (a registered target is one of IPTABLES_TARGETS: tests/test_listing_deferred.py) and the rest.
_NOT_JUMPS = frozenset(STANDARD_VERDICTS | IPTABLES_TARGETS | {"standard", ""})


def _jump_of(word: str) -> str | None:
    """The chain a target column's word jumps to, as the listing reader decides it."""
    return None if word in _NOT_JUMPS else word


_IFACES = re.compile(r" *+(?:[0-9]++ ++)?[0-9]++[KMGT]? ++[0-9]++[KMGT]? ++(?:\S++ ++)??\S++ ++[-!][-f] ++(\S++) ++(\S++) ")


@lru_cache(maxsize=4)
def _keys_re(num: bool, verbose: bool) -> re.Pattern[str]:
    """A row's destination column and, when its free text is only ``[comment] tcp|udp|sctp
    dpt:N``, the port (:meth:`ListingRow.raw_keys`)."""
    pre = r" *+" + (r"[0-9]++ ++" if num else "") + (r"[0-9]++[KMGT]? ++[0-9]++[KMGT]? ++" if verbose else "")
    return re.compile(pre + rf"(?:[^ \n]++ ++)??{_PROTO} ++[-!][-f] ++" + (r"[^ \n]++ ++[^ \n]++ ++" if verbose else "")
                      + rf"{_ADDR} ++(?:({_OCTET}(?:\.{_OCTET}){{3}})(?:/32)?(?= |$)|[^ \n]++)"
                      + rf"(?: ++(?:{_COMMENT} ++)?(?:tcp|udp|sctp) dpt:([0-9]{{1,5}}) *+$)?")


_PHRASE_TAILS = _PhraseTails()
