"""The command line's options: the checks of the flow options (click callbacks), the flow options
diff and reach share with trace, and usage errors as one line on stderr (exit status 2).

Like :mod:`iptexplain.cli`, the modules these checks need are imported inside them so that
``iptexplain --help`` stays fast.
"""

from __future__ import annotations

import sys
from typing import Callable, TypeVar

import click

F = TypeVar("F", bound=Callable)

EXIT_OK, EXIT_DROPPED, EXIT_USAGE, EXIT_FORKED, EXIT_BUG, EXIT_MEMORY = 0, 1, 2, 3, 4, 5


def _fail(message: str) -> None:
    from iptexplain.terminal import one_line

    click.echo(one_line(message), err=True)
    sys.exit(EXIT_USAGE)


class _OneLineUsage(click.Command):
    """Usage errors as one line on stderr (and exit status 2): scripts read the first line.

    iptables' negation, ``! --syn`` and ``! --tcp-flags MASK COMP``, is read too: the ``!``
    before one of these options selects its hidden negated twin (``--not-syn``…)."""

    NEGATABLE = {"--syn": "--not-syn", "--tcp-flags": "--not-tcp-flags"}

    def make_context(self, info_name, args, parent=None, **extra):  # type: ignore[no-untyped-def]
        out: list[str] = []
        it = iter(range(len(args)))
        for i in it:
            a = args[i]
            if a == "--":
                out += args[i:]
                break
            if a == "!" and i + 1 < len(args) and args[i + 1] in self.NEGATABLE:
                out.append(self.NEGATABLE[args[i + 1]])
                next(it)
                continue
            if a == "!":
                click.echo(f"iptexplain {info_name}: `!' negates only {' and '.join(self.NEGATABLE)} "
                           f"(see iptexplain {info_name} --help)", err=True)
                raise click.exceptions.Exit(EXIT_USAGE)
            out.append(a)
        args = out
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.exceptions.Exit:
            raise
        except click.UsageError as e:
            if e.ctx is None:
                raise
            from iptexplain.terminal import one_line

            click.echo(one_line(f"iptexplain {info_name}: {e.format_message()} (see iptexplain {info_name} --help)"),
                       err=True)
            raise click.exceptions.Exit(EXIT_USAGE) from None


def _check_port(ctx: click.Context, param: click.Parameter, value: str | None):  # type: ignore[no-untyped-def]
    """``--sport``/``--dport`` as the tcp match spells them: ``22``, ``1:1024``, ``:1024``,
    ``1024:`` (a one-port range is the port)."""
    if value is None:
        return None
    from iptexplain.ext.base import parse_portrange
    from iptexplain.core.errors import OptionError

    try:
        lo, hi = parse_portrange(value)
    except OptionError as e:
        raise click.BadParameter(str(e)) from None
    if lo > hi:
        raise click.BadParameter(f"invalid portrange `{value}' (the first port is above the last)")
    return lo if lo == hi else ((lo, hi),)


def _check_ports(ctx: click.Context, param: click.Parameter, value: str | None):  # type: ignore[no-untyped-def]
    """``--sports``/``--dports`` as multiport spells them: ``22,80,8000:8080``."""
    if value is None:
        return None
    from iptexplain.core.packets import normalize

    ranges = []
    for item in value.split(","):
        r = _check_port(ctx, param, item) if item else None
        if r is None:
            raise click.BadParameter(f"`{value}': an empty port in the list")
        ranges += [(r, r)] if isinstance(r, int) else list(r)
    merged = normalize(ranges)
    return merged[0][0] if len(merged) == 1 and merged[0][0] == merged[0][1] else tuple(merged)


def _check_tcp_flags(ctx: click.Context, param: click.Parameter, value: tuple[str, str] | None):  # type: ignore[no-untyped-def]
    if not value:
        return None
    from iptexplain.core.errors import OptionError
    from iptexplain.ext.libxt_tcp import parse_flags

    try:
        mask, comp = parse_flags(value[0]), parse_flags(value[1])
    except OptionError as e:
        raise click.BadParameter(str(e)) from None
    if comp & ~mask:
        raise click.BadParameter(f"`{value[0]} {value[1]}': COMP has flags outside MASK (no segment has them)")
    return (mask, comp)


def _check_addr(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    from iptexplain.core.addr import parse_address
    from iptexplain.core.errors import OptionError

    try:
        parse_address(value)
    except (OptionError, ValueError) as e:
        raise click.BadParameter(f"`{value}': {e}") from None
    return value


def _check_proto(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    from iptexplain.core.errors import OptionError
    from iptexplain.core.protocols import canonical_proto

    try:
        return canonical_proto(value)  # ASCII digits only: `-p ²' is refused, not a traceback
    except OptionError:
        raise click.BadParameter(f"unknown protocol `{value}' specified") from None


def _check_mark(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    from iptexplain.ext.base import parse_uint
    from iptexplain.core.errors import OptionError

    try:
        return parse_uint(value)
    except OptionError as e:
        raise click.BadParameter(str(e)) from None


STATES = ["NEW", "ESTABLISHED", "RELATED", "INVALID", "UNTRACKED"]


def _check_state(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if value.upper() not in STATES:
        raise click.BadParameter(f"`{value}' (expected one of {', '.join(STATES)})")
    return value.upper()


def _check_icmp_type(value: str, family: int) -> None:
    """--icmp-type is a type of the flow's family (``packet-too-big`` is ICMPv6's, 256 no type)."""
    from iptexplain.core.errors import InputError, OptionError
    from iptexplain.ext.libip6t_icmp6 import ICMPV6_TYPES
    from iptexplain.ext.libxt_icmp import ICMP_TYPES, parse_icmp_type

    try:
        parse_icmp_type(value, ICMPV6_TYPES if family == 6 else ICMP_TYPES)
    except OptionError:
        raise InputError(f"--icmp-type `{value}': not an ICMP{'v6' if family == 6 else ''} type "
                         f"(a name of `iptables -p {'ipv6-icmp' if family == 6 else 'icmp'} -h`, "
                         "TYPE or TYPE/CODE, each 0-255)", "<options>") from None


def _analysis_flow_options(fn: F) -> F:
    """The flow options diff and reach share with trace: each narrows the question."""
    options = [
        click.option("-p", "--proto", "--protocol", "proto", callback=_check_proto, metavar="PROTO",
                     help="Only this protocol (default: tcp, udp and icmp, each traced whole)."),
        click.option("-s", "--src", "--source", "src", callback=_check_addr, metavar="ADDR[/MASK]",
                     help="Only these sources."),
        click.option("-d", "--dst", "--destination", "dst", callback=_check_addr, metavar="ADDR[/MASK]",
                     help="Only these destinations."),
        click.option("--sport", "--source-port", "sport", callback=_check_port, metavar="PORT", help="Only this source port."),
        click.option("--dport", "--destination-port", "dport", callback=_check_port, metavar="PORT",
                     help="Only this destination port (tcp assumed when -p is not given)."),
        click.option("-i", "--in-interface", "iniface", metavar="IFACE", help="Only packets arriving on IFACE."),
        click.option("--state", callback=_check_state, default="NEW", show_default=True, metavar="STATE",
                     help="Conntrack state of the packets compared."),
        click.option("--mark", callback=_check_mark, metavar="VALUE", help="Packet mark on arrival."),
        click.option("--from-host", "from_host", is_flag=True, help="Only packets this host sends."),
        click.option("--from-container", "from_container", metavar="NAME|IP", help="Only packets a local container sends."),
        click.option("-4", "family", flag_value=4, default=None, help="IPv4 (the default)."),
        click.option("-6", "family", flag_value=6, help="IPv6."),
        click.option("--host", "host_files", multiple=True, type=click.Path(dir_okay=False, allow_dash=True),
                     metavar="FILE", help="Saved `ip -j addr` / `ip -j route` output (repeatable)."),
        click.option("--local", "local", multiple=True, metavar="ADDR", help="An address of this host (repeatable)."),
        click.option("--iface", "ifaces", multiple=True, metavar="NAME=ADDR/PREFIX",
                     help="An interface and its address (repeatable)."),
        click.option("--route", "routes", multiple=True, metavar="PREFIX=IFACE[,GATEWAY]",
                     help="A route, 'default' for the default route (repeatable)."),
        click.option("--ipset", "ipset_files", multiple=True, type=click.Path(dir_okay=False, allow_dash=True),
                     metavar="FILE", help="`ipset save` output, for rules with -m set (repeatable)."),
    ]
    for opt in reversed(options):
        fn = opt(fn)
    return fn


def _analysis_template(kw: dict) -> "object":
    """The user's flow options as the Flow every entry scenario is narrowed by."""
    from iptexplain.netfilter.trace import Flow

    proto = kw.get("proto")
    if (kw.get("sport") is not None or kw.get("dport") is not None) and proto is None:
        proto = "tcp"
    if proto not in (None, "tcp", "udp", "sctp", "dccp", "udplite") and (kw.get("sport") or kw.get("dport")):
        _fail(f"iptexplain: --sport/--dport need a protocol with ports, not `{proto}'")
    fams = {6 if ":" in a else 4 for a in (kw.get("src"), kw.get("dst")) if a}
    if len(fams) > 1:
        _fail("iptexplain: -s and -d are of different families (IPv4 and IPv6)")
    if (kw.get("state") or "NEW") in ("ESTABLISHED", "RELATED"):
        # A later packet keeps the NAT its connection's first packet got; over a whole set of
        # packets that is a different binding per part, which the set-wide trace cannot pair up.
        _fail(f"iptexplain: --state {kw['state']}: these analyses compare the packets that decide a "
              "connection's fate (NEW, INVALID or UNTRACKED); trace one flow with --state for later packets")
    family = kw.get("family") or next(iter(fams), 4)
    return Flow(family=family, proto=proto, src=kw.get("src"), dst=kw.get("dst"), sport=kw.get("sport"),
                dport=kw.get("dport"), iniface=kw.get("iniface"), state=kw.get("state") or "NEW",
                mark=kw.get("mark"), from_host=bool(kw.get("from_host")), from_container=kw.get("from_container"))
