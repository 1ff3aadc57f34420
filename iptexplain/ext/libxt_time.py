"""time: the time of day, weekday, day of month and date range of the packet's arrival (libxt_time).

The options reduce to ``xt_time_info``: ``! --weekdays Sat,Sun`` is stored as the other five days,
and iptables-save prints the stored form.  A trace with no time given forks on it.
"""

from __future__ import annotations

import calendar
import time as _time
from dataclasses import dataclass

from iptexplain.errors import OptionError
from iptexplain.ext import register
from iptexplain.ext.base import Match, Opt, OptType, types
from iptexplain.numbers import decimal, is_decimal, shown

WEEK_DAYS = ("", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
ALL_WEEKDAYS = 0xFE
ALL_MONTHDAYS = 0xFFFFFFFE
MAX_DAYTIME = 24 * 60 * 60 - 1
INT_MAX = 0x7FFFFFFF


def parse_daytime(text: str) -> int:
    parts = text.split(":")
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        h, m = decimal(parts[0], maximum=23), decimal(parts[1], maximum=59)
        s = decimal(parts[2], maximum=59) if len(parts) == 3 else 0
    except (ValueError, OptionError):
        raise OptionError(f"invalid time \"{text}\" specified, should be hh:mm[:ss] format") from None
    return h * 3600 + m * 60 + s


def parse_date(text: str) -> int:
    """``YYYY[-MM[-DD[Thh[:mm[:ss]]]]]`` in UTC -> seconds since the epoch."""
    import re

    m = re.fullmatch(r"([0-9]{1,4})(?:-([0-9]{1,2})(?:-([0-9]{1,2})(?:T([0-9]{1,2})(?::([0-9]{1,2})(?::([0-9]{1,2}))?)?)?)?)?", text)
    bad = OptionError(f"Invalid date \"{text}\" specified. Should be YYYY[-MM[-DD[Thh[:mm[:ss]]]]]")
    if not m:
        raise bad
    year = int(m.group(1))
    month, day, hour, minute, second = (int(g) if g is not None else d for g, d in zip(m.groups()[1:], (1, 1, 0, 0, 0)))
    if not (1970 <= year <= 2038 and month <= 12 and day <= 31 and hour <= 23 and minute <= 59 and second <= 59):
        raise bad
    return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))


def parse_weekdays(text: str) -> int:
    mask = 0
    for tok in text.split(","):
        if is_decimal(tok) and len(tok) == 1 and 1 <= int(tok) <= 7:
            mask |= 1 << int(tok)
            continue
        for i in range(1, 8):
            full = _time.strftime("%A", (2024, 1, i, 0, 0, 0, i - 1, 0, 0))
            if tok.lower() in (WEEK_DAYS[i].lower(), full.lower()):
                mask |= 1 << i
                break
        else:
            raise OptionError(f"No, {tok} is not a valid day.")
    return mask


def parse_monthdays(text: str) -> int:
    mask = 0
    for tok in text.split(","):
        if not is_decimal(tok) or len(tok) > 2 or not 1 <= int(tok) <= 31:
            raise OptionError(f"invalid date `{shown(tok)}' specified")
        mask |= 1 << int(tok)
    return mask


def fmt_daytime(v: int) -> str:
    return f"{v // 3600:02d}:{v // 60 % 60:02d}:{v % 60:02d}"


def fmt_date(v: int) -> str:
    t = _time.gmtime(v)
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"


@dataclass(frozen=True, slots=True)
class TimeInfo:
    """``struct xt_time_info``."""

    daytime_start: int
    daytime_stop: int
    weekdays: int  # bit i = weekday i (1 Mon … 7 Sun)
    monthdays: int  # bit d = day of month d
    date_start: int
    date_stop: int
    kerneltz: bool
    contiguous: bool


daytime = OptType("daytime", lambda a: parse_daytime(a[0]), lambda v: [fmt_daytime(v)])
date = OptType("date", lambda a: parse_date(a[0]), lambda v: [fmt_date(v)])
weekdays = OptType("weekdays", lambda a: parse_weekdays(a[0]), lambda v: [str(v)])
monthdays = OptType("monthdays", lambda a: parse_monthdays(a[0]), lambda v: [str(v)])


@register
class Time(Match):
    name = "time"
    options = (
        Opt("datestart", "--datestart", date, invert=False),
        Opt("datestop", "--datestop", date, invert=False),
        Opt("timestart", "--timestart", daytime, invert=False),
        Opt("timestop", "--timestop", daytime, invert=False),
        Opt("contiguous", "--contiguous", types.flag, invert=False),
        Opt("weekdays", "--weekdays", weekdays),
        Opt("monthdays", "--monthdays", monthdays),
        Opt("localtz", "--localtz", types.flag, invert=False),
        Opt("utc", "--utc", types.flag, invert=False),
        Opt("kerneltz", "--kerneltz", types.flag, invert=False),
    )

    def check(self) -> None:
        if self.has("utc") and (self.has("localtz") or self.has("kerneltz")):
            raise OptionError("time: --utc cannot be combined with --kerneltz/--localtz")

    @property
    def info(self) -> TimeInfo:
        wd = self.get("weekdays")
        md = self.get("monthdays")
        weekdays_ = ALL_WEEKDAYS if wd is None else (wd.value ^ ALL_WEEKDAYS if wd.invert else wd.value)
        monthdays_ = ALL_MONTHDAYS if md is None else (md.value ^ ALL_MONTHDAYS if md.invert else md.value)
        return TimeInfo(
            self.value("timestart", 0), self.value("timestop", MAX_DAYTIME), weekdays_, monthdays_,
            self.value("datestart", 0), self.value("datestop", INT_MAX),
            self.has("kerneltz") or self.has("localtz"), self.has("contiguous"),
        )

    def save_args(self) -> list[str]:
        i = self.info
        out: list[str] = []
        if i.daytime_start != 0 or i.daytime_stop != MAX_DAYTIME:
            out += ["--timestart", fmt_daytime(i.daytime_start), "--timestop", fmt_daytime(i.daytime_stop)]
        if i.monthdays != ALL_MONTHDAYS:
            out += ["--monthdays", ",".join(str(d) for d in range(1, 32) if i.monthdays & (1 << d))]
        if i.weekdays != ALL_WEEKDAYS:
            out += ["--weekdays", ",".join(WEEK_DAYS[d] for d in range(1, 8) if i.weekdays & (1 << d))]
        # time_print_date skips 0 and LONG_MAX only: the INT_MAX default of datestop is printed.
        if i.date_start != 0:
            out += ["--datestart", fmt_date(i.date_start)]
        if i.date_stop != 0:
            out += ["--datestop", fmt_date(i.date_stop)]
        if i.kerneltz:
            out.append("--kerneltz")
        if i.contiguous:
            out.append("--contiguous")
        return out

    def decide(self, pkts, ctx):
        """The time the packet arrives decides: a fork."""
        from iptexplain.netfilter.packets import Decision

        what = self.describe()
        return Decision.fork(pkts, what, f"at a time within {what}", "at another time")

    # -- the -L face (time_print) --------------------------------------------------------------
    # " TIME from HH:MM:SS to HH:MM:SS on Mon,Tue on 1st,22nd starting from YYYY-MM-DD HH:MM:SS
    #   until date YYYY-MM-DD HH:MM:SS UTC contiguous" (UTC unless --kerneltz).
    listing_keywords = ("TIME",)

    def listing(self, numeric: bool = True, *, family: int = 4, proto: str | None = None) -> str:
        i = self.info
        out = ["TIME"]
        if i.daytime_start != 0 or i.daytime_stop != MAX_DAYTIME:
            out += ["from", fmt_daytime(i.daytime_start), "to", fmt_daytime(i.daytime_stop)]
        if i.weekdays != ALL_WEEKDAYS:
            out += ["on", ",".join(WEEK_DAYS[d] for d in range(1, 8) if i.weekdays & (1 << d))]
        if i.monthdays != ALL_MONTHDAYS:
            out += ["on", ",".join(f"{d}{_ordinal(d)}" for d in range(1, 32) if i.monthdays & (1 << d))]
        if i.date_start != 0:
            out += ["starting", "from"] + fmt_date(i.date_start).split("T")
        if i.date_stop not in (0, 0x7FFFFFFF):
            out += ["until", "date"] + fmt_date(i.date_stop).split("T")
        if not i.kerneltz:
            out.append("UTC")
        if i.contiguous:
            out.append("contiguous")
        return " ".join(out)

    @classmethod
    def from_listing(cls, tail) -> "Time":
        tail.expect("TIME")
        opts: list = []
        if tail.take_if("from"):
            opts.append(("--timestart", False, [tail.take()]))
            tail.expect("to")
            opts.append(("--timestop", False, [tail.take()]))
        while tail.take_if("on"):
            days = tail.take()
            if is_decimal(days[:1]):
                opts.append(("--monthdays", False, [",".join(d.rstrip("stndrh") for d in days.split(","))]))
            else:
                opts.append(("--weekdays", False, [days]))
        if tail.peek() == "starting" and tail.peek(1) == "from":
            tail.pos += 2
            opts.append(("--datestart", False, [f"{tail.take()}T{tail.take()}"]))
        if tail.peek() == "until" and tail.peek(1) == "date":
            tail.pos += 2
            opts.append(("--datestop", False, [f"{tail.take()}T{tail.take()}"]))
        if not tail.take_if("UTC"):
            opts.append(("--kerneltz", False, []))
        if tail.take_if("contiguous"):
            opts.append(("--contiguous", False, []))
        return cls.build(opts, spelled="time")  # type: ignore[return-value]


def _ordinal(d: int) -> str:
    """time_print_monthdays' suffix: by the last digit only, as iptables prints (11st, 12nd)."""
    return {1: "st", 2: "nd", 3: "rd"}.get(d % 10, "th")
