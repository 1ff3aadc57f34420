"""hashlimit: a token bucket per source/destination address/port group (libxt_hashlimit, rev 3).

The options reduce to the kernel's ``hashlimit_cfg3`` (average interval, burst, mode bits, table
sizes, masks) and are printed back from it exactly as iptables does, so ``--hashlimit-upto 60/min``
comes back as ``1/sec`` with an explicit ``--hashlimit-htable-expire 60000``.
"""

from __future__ import annotations

from dataclasses import dataclass

from iptexplain.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, OptType, parse_uint, types
from iptexplain.ext.rate import _atoi, parse_rate, print_rate
from iptexplain.numbers import DIGITS, MAX_DIGITS

SCALE = 1_000_000  # XT_HASHLIMIT_SCALE_v2
BYTE_SHIFT = 4
BURST_DEFAULT = 5
BURST_MAX = 1_000_000
GCINTERVAL = 1000
BYTE_EXPIRE = 15
BYTE_EXPIRE_BURST = 60
U32 = 0xFFFFFFFF
MODES = ("srcip", "srcport", "dstip", "dstport")


def cost_to_bytes(cost: int) -> int:
    r = U32 // cost if cost else U32
    return (r - 1) << BYTE_SHIFT


def bytes_to_cost(nbytes: int) -> int:
    r = (nbytes >> BYTE_SHIFT) & U32
    return U32 // (r + 1)


def _factor(ch: str) -> int:
    return {"m": 1024 * 1024, "k": 1024}.get(ch, 1)


@dataclass(frozen=True, slots=True)
class HashRate:
    """A parsed rate: kernel ``avg``, whether it counts bytes, and the unit it was given in."""

    avg: int
    bytes: bool
    mult: int  # seconds of the unit given (limit), or BYTE_EXPIRE for byte rates


def parse_hash_rate(text: str) -> HashRate:
    pos = text.find("b/s")
    if pos > 0:
        r = _atoi(text)
        if r:
            cost = bytes_to_cost(r * _factor(text[pos - 1]))
            if cost == 0:
                raise OptionError(f"Rate too high \"{text}\"")
            return HashRate(cost, True, BYTE_EXPIRE)
    try:
        from iptexplain.ext.rate import rate_unit

        mult = rate_unit(text)
        return HashRate(parse_rate(text, SCALE), False, mult)
    except OptionError:
        raise OptionError(f"hashlimit: bad value for --hashlimit-upto/--hashlimit-above `{text}'") from None


def parse_burst(text: str) -> int:
    digits = ""
    for ch in text:
        if ch not in DIGITS or len(digits) > MAX_DIGITS:
            break
        digits += ch
    rest = text[len(digits):]
    if not digits or rest not in ("", "k", "m", "kb", "mb", "b"):
        raise OptionError(f"bad value for option \"--hashlimit-burst\", or out of range (1-{BURST_MAX}).")
    v = int(digits)
    if not rest and (v < 1 or v > BURST_MAX):
        raise OptionError(f"bad value for option \"--hashlimit-burst\", or out of range (1-{BURST_MAX}).")
    return v * _factor(rest[:1])


def _modes(text: str) -> frozenset[str]:
    out = set()
    for tok in text.replace("|", ",").split(","):
        if not tok:
            continue
        if tok not in MODES:
            raise OptionError(f"hashlimit: bad --hashlimit-mode `{text}'")
        out.add(tok)
    return frozenset(out)


def _plen(text: str) -> int:
    v = parse_uint(text)
    if v > 128:
        raise OptionError(f"hashlimit: bad prefix length `{text}'")
    return v


hashrate = OptType("hashrate", lambda a: parse_hash_rate(a[0]), lambda v: [str(v.avg)])
modes = OptType("modes", lambda a: _modes(a[0]), lambda v: [",".join(m for m in MODES if m in v)])
plen = OptType("plen", lambda a: _plen(a[0]), lambda v: [str(v)])
burst = OptType("burst", lambda a: parse_burst(a[0]), lambda v: [str(v)])


@dataclass(frozen=True, slots=True)
class HashlimitCfg:
    """``struct hashlimit_cfg3`` as the kernel receives it."""

    above: bool
    bytes: bool
    avg: int
    burst: int
    modes: frozenset[str]
    size: int
    max: int
    gc_interval: int
    expire: int
    srcmask: int
    dstmask: int
    rate_match: bool
    interval: int


@register
class Hashlimit(Match):
    name = "hashlimit"
    family_sensitive = True
    options = (
        Opt("upto", "--hashlimit-upto", hashrate, aliases=("--hashlimit",)),
        Opt("above", "--hashlimit-above", hashrate),
        Opt("burst", "--hashlimit-burst", burst, invert=False),
        Opt("mode", "--hashlimit-mode", modes, invert=False),
        Opt("name", "--hashlimit-name", types.word, invert=False),
        Opt("size", "--hashlimit-htable-size", types.uint32, invert=False),
        Opt("max", "--hashlimit-htable-max", types.uint32, invert=False),
        Opt("gcinterval", "--hashlimit-htable-gcinterval", types.uint32, invert=False),
        Opt("expire", "--hashlimit-htable-expire", types.uint32, invert=False),
        Opt("srcmask", "--hashlimit-srcmask", plen, invert=False),
        Opt("dstmask", "--hashlimit-dstmask", plen, invert=False),
        Opt("rate_match", "--hashlimit-rate-match", types.flag, invert=False),
        Opt("rate_interval", "--hashlimit-rate-interval", types.uint32, invert=False),
    )

    def check(self) -> None:
        if self.has("upto") == self.has("above"):
            raise OptionError("hashlimit: You have to specify --hashlimit")
        if not self.has("name"):
            raise OptionError("hashlimit: --hashlimit-name is required")
        if len(self.value("name")) > 254:
            raise OptionError("hashlimit: --hashlimit-name too long")
        rate = self._rate
        b = self.value("burst")
        if rate.bytes and b is not None and b < cost_to_bytes(rate.avg):
            raise OptionError(f"burst cannot be smaller than {cost_to_bytes(rate.avg)}b")
        if not rate.bytes and b is not None and b > BURST_MAX:
            raise OptionError(f"bad value for option \"--hashlimit-burst\", or out of range (1-{BURST_MAX}).")

    @property
    def _rate(self) -> HashRate:
        return self.value("upto") or self.value("above")

    @property
    def cfg(self) -> HashlimitCfg:
        """The kernel configuration the options amount to (libxt_hashlimit's parse + check)."""
        rate = self._rate
        key = "upto" if self.has("upto") else "above"
        above = (key == "above") != self.get(key).invert  # type: ignore[union-attr]
        avg = rate.avg
        expire = self.value("expire")
        if rate.bytes:
            b = self.value("burst")
            burst = 0
            if b is not None:
                per = cost_to_bytes(avg)
                burst = b // per + (1 if b % per else 0)
                if expire is None:
                    expire = BYTE_EXPIRE_BURST * 1000
        else:
            burst = self.value("burst", BURST_DEFAULT)
        if expire is None:
            expire = rate.mult * 1000
        interval = self.value("rate_interval", 0)
        if self.has("rate_match"):
            if not rate.bytes:
                avg //= rate.mult
            if interval == 0:
                interval = 1 if rate.bytes else rate.mult
        full = 128 if self.nfproto == 6 else 32
        return HashlimitCfg(
            above, rate.bytes, avg, burst, self.value("mode", frozenset()), self.value("size", 0),
            self.value("max", 0), self.value("gcinterval", GCINTERVAL), expire,
            self.value("srcmask", full), self.value("dstmask", full), self.has("rate_match"), interval,
        )

    @property
    def table_name(self) -> str:
        return self.value("name")

    @property
    def modes(self) -> frozenset[str]:
        return self.value("mode", frozenset())

    def save_args(self) -> list[str]:
        c = self.cfg
        out = ["--hashlimit-above" if c.above else "--hashlimit-upto"]
        if c.bytes:
            text, quantum = _print_bytes(c.avg, c.burst)
            out += text
        else:
            text, unit = print_rate(c.avg, SCALE)
            quantum = unit * 1000
            out += [text.replace("inf", "inf"), "--hashlimit-burst", str(c.burst)]
        if c.modes:
            out += ["--hashlimit-mode", ",".join(m for m in MODES if m in c.modes)]
        out += ["--hashlimit-name", self.table_name]
        if c.size:
            out += ["--hashlimit-htable-size", str(c.size)]
        if c.max:
            out += ["--hashlimit-htable-max", str(c.max)]
        if c.gc_interval != GCINTERVAL:
            out += ["--hashlimit-htable-gcinterval", str(c.gc_interval)]
        if c.expire != quantum:
            out += ["--hashlimit-htable-expire", str(c.expire)]
        dmask = 128 if self.nfproto == 6 else 32
        if c.srcmask != dmask:
            out += ["--hashlimit-srcmask", str(c.srcmask)]
        if c.dstmask != dmask:
            out += ["--hashlimit-dstmask", str(c.dstmask)]
        if c.rate_match:
            out.append("--hashlimit-rate-match")
            if c.interval != 1:
                out += ["--hashlimit-rate-interval", str(c.interval)]
        return out

    def decide(self, pkts, ctx):
        """A per-flow token bucket: its state is in the kernel, so a fork.  A first packet
        finds its bucket full: under the rate (upto matches, above does not) comes first."""
        from iptexplain.netfilter.packets import Decision

        name = self.value("name")
        under, over = f"under the rate of hashlimit {name}", f"over the rate of hashlimit {name}"
        above = self.cfg.above if hasattr(self.cfg, "above") else self.has("above")
        if above:
            d = Decision.fork(pkts, f"hashlimit {name}", over, under)
        else:
            d = Decision.fork(pkts, f"hashlimit {name}", under, over)
        return d


    # -- the -L face (hashlimit_mt_print) -------------------------------------------------------
    # " limit: up to|above RATE burst N mode srcip-dstport htable-... srcmask N ...".  The table
    # name (--hashlimit-name) is not printed: read back as LISTING_NAME, and said so.
    listing_keywords = ("limit:",)
    LISTING_NAME = "(not-listed)"

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        out: list[str] = []
        words = self.save_args()
        i = 0
        while i < len(words):
            w = words[i]
            if w in ("--hashlimit-upto", "--hashlimit-above"):
                out += ["limit:", "up to" if w == "--hashlimit-upto" else "above", words[i + 1]]
                i += 2
            elif w == "--hashlimit-name":
                i += 2
            elif w == "--hashlimit-mode":
                out += ["mode", words[i + 1].replace(",", "-")]
                i += 2
            elif w in ("--hashlimit-rate-match",):
                out.append("rate-match")
                i += 1
            else:
                out.append(w[len("--hashlimit-"):] if w.startswith("--hashlimit-") else w)
                i += 1
        return " ".join(out)

    @classmethod
    def from_listing(cls, tail) -> "Hashlimit":
        tail.expect("limit:")
        w = tail.take()
        if w == "up":
            tail.expect("to")
            flag = "--hashlimit-upto"
        elif w == "above":
            flag = "--hashlimit-above"
        elif w == "avg":  # revision 0
            flag = "--hashlimit-upto"
        else:
            raise OptionError("not a hashlimit")
        opts: list = [(flag, False, [tail.take()])]
        if tail.take_if("burst"):
            opts.append(("--hashlimit-burst", False, [tail.take()]))
        if w == "avg" and tail.peek() != "mode":  # "limit: avg R burst N" alone is limit's
            raise OptionError("a limit, not a hashlimit")
        if tail.take_if("mode"):
            opts.append(("--hashlimit-mode", False, [tail.take().replace("-", ",")]))
        for word in ("htable-size", "htable-max", "htable-gcinterval", "htable-expire", "srcmask", "dstmask"):
            if tail.take_if(word):
                opts.append(("--hashlimit-" + word, False, [tail.take()]))
        if tail.take_if("rate-match"):
            opts.append(("--hashlimit-rate-match", False, []))
        if tail.take_if("rate-interval"):
            opts.append(("--hashlimit-rate-interval", False, [tail.take()]))
        opts.append(("--hashlimit-name", False, [cls.LISTING_NAME]))
        tail.losses.append("hashlimit: -L does not print the table name (--hashlimit-name)")
        return cls.build(opts, spelled="hashlimit", family=tail.family)  # type: ignore[return-value]


_UNITS = (("m", 1024 * 1024), ("k", 1024), ("", 1))


def _print_bytes(avg: int, burst: int) -> tuple[list[str], int]:
    r = cost_to_bytes(avg)
    i = 0
    while i < len(_UNITS) - 1:
        thresh = _UNITS[i][1]
        if r >= thresh and bytes_to_cost(r & ~(thresh - 1)) == avg:
            break
        i += 1
    out = [f"{r // _UNITS[i][1]}{_UNITS[i][0]}b/s"]
    if burst == 0:
        return out, BYTE_EXPIRE * 1000
    r *= burst
    i = 0
    while i < len(_UNITS) - 1:
        if r >= _UNITS[i][1]:
            break
        i += 1
    out += ["--hashlimit-burst", f"{r // _UNITS[i][1]}{_UNITS[i][0]}b"]
    return out, BYTE_EXPIRE_BURST * 1000
