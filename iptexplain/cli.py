"""The command line: thin click commands, each calling one function of the library.

Heavy modules (rich, the parser, the tracer) are imported inside the commands so that
``iptexplain --help`` stays fast.
"""

from __future__ import annotations

import sys
from typing import Callable

import click

# The exit statuses, the usage errors and the options' checks live in cli_options.py; the exit
# statuses are named here too (cli.EXIT_*).
from iptexplain.cli_options import (EXIT_BUG, EXIT_DROPPED, EXIT_FORKED, EXIT_MEMORY, EXIT_OK, EXIT_USAGE, STATES,
                                    _analysis_flow_options, _analysis_template, _check_addr, _check_icmp_type,
                                    _check_mark, _check_port, _check_ports, _check_proto, _check_state,
                                    _check_tcp_flags, _fail, _OneLineUsage)


def _waiting_for_stdin(command: str) -> None:
    """``FILE`` is ``-`` and standard input is a terminal: say what is awaited rather than
    seem to hang (the user may mean to paste a dump)."""
    if sys.stdin.isatty():
        click.echo(f"iptexplain {command}: reading a dump from standard input (a terminal): paste it, "
                   "then Ctrl-D -- or pipe it: sudo iptables-save | iptexplain "
                   f"{command} - …", err=True)


def run_guarded(fn: Callable[[], int | None]) -> None:
    """Every command's body runs here, so each answers a problem the same way: bad input is one
    line on stderr and exit 2; running out of memory is one line and exit 5 (the input is too big
    for this machine, not a bug); anything else unexpected is a bug: one line and exit 4, the
    traceback only with IPTEXPLAIN_DEBUG set."""
    import os

    from iptexplain.core.errors import InputError
    from iptexplain.terminal import one_line

    try:
        code = fn()
    except InputError as e:
        _fail(f"iptexplain: {e}")
    except MemoryError:
        click.echo("iptexplain: out of memory: the input is too large for the memory available "
                   "to this process", err=True)
        sys.exit(EXIT_MEMORY)
    except BrokenPipeError:
        sys.exit(0)
    except KeyboardInterrupt:
        sys.exit(130)
    except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit):
        raise
    except Exception as e:  # noqa: BLE001 -- the last line of defence
        if os.environ.get("IPTEXPLAIN_DEBUG"):
            raise
        click.echo(one_line(f"iptexplain: internal error: {type(e).__name__}: {e} "
                            f"(a bug: please report it; IPTEXPLAIN_DEBUG=1 shows the traceback)"), err=True)
        sys.exit(EXIT_BUG)
    sys.exit(code or 0)


class _GuardedGroup(click.Group):
    """The group's dispatch — option parsing and its callbacks included — runs under the same
    guard as each command's body: no input reaches the user as a traceback."""

    def invoke(self, ctx: click.Context):  # type: ignore[no-untyped-def]
        return run_guarded(lambda: super(_GuardedGroup, self).invoke(ctx))


@click.group(cls=_GuardedGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="iptexplain")
def main() -> None:
    """What does netfilter do to this packet, and why?

    \b
    Examples:
      iptexplain trace --dport 9525                 # on the live host (as root)
      iptables-save | iptexplain trace - --dport 9525
      iptexplain show rules.save
    """


FORMAT_CHOICE = click.Choice(["auto", "save", "S", "listing", "nft", "nft-json"])
TABLE_CHOICES = ["raw", "mangle", "nat", "filter", "security"]


@main.command()
@click.argument("files", nargs=-1)
@click.option("--input-format", "fmt", type=FORMAT_CHOICE, default="auto", show_default=True,
              help="Format of FILE (detected when auto), as for trace.")
# `--format' is the output format in trace; show's older spelling of --input-format is kept for
# scripts, hidden, so that one word has one meaning in the helps.
@click.option("--format", "old_fmt", type=FORMAT_CHOICE, default=None, hidden=True)
@click.option("-t", "--table", "table", type=click.Choice(TABLE_CHOICES), default=None,
              help="Show only this table; also the table of -S / -L text that does not name its own.")
@click.option("-4", "family", flag_value=4, default=None, help="IPv4 only.")
@click.option("-6", "family", flag_value=6, help="IPv6 only.")
@click.option("--chain", "chain", default=None, metavar="NAME", help="Show only this chain.")
def show(files: tuple[str, ...], fmt: str, old_fmt: str | None, table: str | None, family: int | None,
         chain: str | None) -> None:
    """Show a ruleset as tables and chains, with jump edges and counters.

    FILE is an iptables-save dump (with or without -c), iptables -S output, an iptables -L
    listing or an iptexplain snapshot; '-' reads standard input, and so does no FILE when
    standard input is not a terminal (unlike trace, show never reads the live host: pipe
    `sudo iptables-save` to it); several FILEs are pieces of one ruleset, read as one.  Each
    chain is a table of its rules: number, counters
    when present, rule text, target (-> CHAIN for a jump, ↪ CHAIN for a goto); user chains
    list the rules that reach them; modules iptexplain does not understand are highlighted.

    \b
    Examples:
      iptables-save -c | iptexplain show -
      iptexplain show rules.save -t nat --chain DOCKER
    """

    fmt = old_fmt or fmt
    if not files and sys.stdin.isatty():
        _fail("iptexplain show: no FILE given and standard input is a terminal: "
              "pass a file, or pipe a dump: sudo iptables-save | iptexplain show -")
    file = files[0] if files else "-"
    if "-" in files:
        _waiting_for_stdin("show")

    def body() -> int:
        from iptexplain.inputs.files import load
        from iptexplain.render.show import render_ruleset

        if len(files) > 1:
            from iptexplain.inputs.sources import read_files

            render_ruleset(read_files(files, fmt, table, save_ok=True), table=table, family=family, chain=chain)
            return 0
        # -t names the table of -S / -L text without one (an iptables-save dump names its own).
        # -S output and listings may not show their family: when one is asked for, read them
        # as that family straight away (a dump says its family itself).
        rs = load(file, fmt, table=table)
        if family is not None and family not in rs.families() and rs.format != "save":
            rs = load(file, fmt, family=family, table=table) if file != "-" else rs
        render_ruleset(rs, table=table, family=family, chain=chain)
        return 0

    run_guarded(body)


@main.command()
@click.option("-o", "--output", "output", default="-", show_default=True, metavar="FILE",
              help="Write the snapshot here ('-': standard output).")
@click.option("-4", "family", flag_value=4, default=None, help="IPv4 only.")
@click.option("-6", "family", flag_value=6, help="IPv6 only.")
@click.option("--backend", type=click.Choice(["auto", "nft", "legacy"]), default="auto", show_default=True,
              help="iptables backend to read (detected when auto).")
def snapshot(output: str, family: int | None, backend: str) -> None:
    """Save this host's running ruleset and host model to one file (run as root; read-only).

    Attach the file to a ticket; `iptexplain trace FILE ...` and `iptexplain show FILE` read it
    on any machine.
    """

    def body() -> int:
        from iptexplain.inputs.snapshot import dumps, make_snapshot

        doc = make_snapshot(family, None if backend == "auto" else backend)
        text = dumps(doc)
        if output == "-":
            click.echo(text, nl=False)
        else:
            from iptexplain.inputs.snapshot import write_file

            write_file(output, text)
            from iptexplain.inputs.live import count_rules

            rules = sum(count_rules(r["text"]) for r in doc["rulesets"].values())
            click.echo(f"iptexplain: snapshot of {doc['hostname']} ({', '.join(f'IPv{k} {v}' for k, v in doc['backend'].items())}, "
                       f"{rules} rules, {len(doc['host']['interfaces'])} interfaces) written to {output}", err=True)
        return 0

    run_guarded(body)


# ---------------------------------------------------------------------------------------------
# trace


EXAMPLES = ["docker", "kube"]


def _trace_epilog() -> str:
    return """\b
Examples:
  iptexplain trace --example docker -p tcp -s 203.0.113.7 -i eth0 --dport 9525
  iptexplain trace --example kube -p udp -s 10.244.0.5 -i cni0 -d 10.96.0.10 --dport 53
  sudo iptexplain trace -p tcp --dport 443                # the live host
  sudo iptables-save | iptexplain trace - -p tcp -d 10.0.0.5 --dport 22 -v
  iptexplain trace rules.save --from-host -p udp -d 8.8.8.8 --dport 53 --json
  iptexplain trace host.snap --from-container web -p tcp -d 1.1.1.1 --dport 443
  iptexplain trace rules.save -p tcp --dport 80 --format dot | dot -Tsvg > trace.svg

\b
Exit status:
  0  every way the flow can go is delivered, forwarded or sent
  1  every way is dropped or rejected
  2  usage or input error (one line on stderr: FILE:LINE: what is wrong)
  3  the ways disagree (a fork), or the outcome is queued or undecided
  4  internal error (a bug: please report it; IPTEXPLAIN_DEBUG=1 shows the traceback)
  5  out of memory (the input is too large for the memory available)

\b
Colour only on a terminal; NO_COLOR=1 or --color never turns it off.
Shell completion: eval "$(_IPTEXPLAIN_COMPLETE=bash_source iptexplain)" (zsh_source, fish_source).
JSON schema: docs/trace-json.md (iptexplain.trace/1)."""


@main.command(cls=_OneLineUsage, epilog=_trace_epilog(), short_help="Trace a flow through the ruleset.")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, allow_dash=True))
@click.option("-t", "--table", "table", type=click.Choice(TABLE_CHOICES), default=None,
              help="The table of -S / -L text that does not name its own (iptables -S and -L "
                   "print filter without -t).")
@click.option("--chain", "start_chain", metavar="[TABLE:]CHAIN", default=None,
              help="Start in this user chain, as if every built-in chain of its table jumped to it "
                   "(for a chain the input shows without its callers).")
@click.option("--example", type=click.Choice(EXAMPLES), help="Trace on a bundled example ruleset instead of FILE.")
@click.option("-p", "--proto", "--protocol", "proto", callback=_check_proto, metavar="PROTO",
              help="Protocol: tcp, udp, icmp, ipv6-icmp, sctp, a name or number.")
@click.option("-s", "--src", "--source", "src", callback=_check_addr, metavar="ADDR[/MASK]", help="Source address.")
@click.option("-d", "--dst", "--destination", "dst", callback=_check_addr, metavar="ADDR[/MASK]",
              help="Destination address.")
@click.option("--sport", "--source-port", "sport", callback=_check_port, metavar="PORT[:PORT]",
              help="Source port or range (1024:65535).")
@click.option("--dport", "--destination-port", "dport", callback=_check_port, metavar="PORT[:PORT]",
              help="Destination port or range (1:1024); tcp assumed when -p is not given.")
@click.option("--sports", "--source-ports", "sports", callback=_check_ports, metavar="PORT[,PORT|,PORT:PORT]",
              help="Source ports, a list as multiport spells it.")
@click.option("--dports", "--destination-ports", "dports", callback=_check_ports,
              metavar="PORT[,PORT|,PORT:PORT]", help="Destination ports, a list as multiport spells it (22,80,443).")
@click.option("--syn", "syn", is_flag=True,
              help="The TCP segment is a SYN: --tcp-flags FIN,SYN,RST,ACK SYN ('! --syn': any other).")
@click.option("--not-syn", "not_syn", is_flag=True, hidden=True)
@click.option("--tcp-flags", "tcp_flags", nargs=2, callback=_check_tcp_flags, metavar="MASK COMP",
              help="The TCP segment's flags: of MASK, those in COMP are set, the others clear "
                   "(SYN,ACK,FIN,RST,URG,PSH,ALL,NONE; '! --tcp-flags' negates). Default: a SYN for "
                   "NEW, an ACK without SYN otherwise. With --reply: the reply's.")
@click.option("--not-tcp-flags", "not_tcp_flags", nargs=2, callback=_check_tcp_flags, hidden=True)
@click.option("-i", "--in-interface", "iniface", metavar="IFACE", help="Interface the packet arrives on.")
@click.option("-o", "--out-interface", "outiface", metavar="IFACE", help="Interface it leaves by (else routed).")
@click.option("--state", callback=_check_state, default="NEW", show_default=True, metavar="STATE",
              shell_complete=lambda ctx, param, incomplete: [s for s in STATES if s.startswith(incomplete.upper())],
              help="Conntrack state: NEW, ESTABLISHED, RELATED, INVALID or UNTRACKED.")
@click.option("--mark", callback=_check_mark, metavar="VALUE", help="Packet mark (fwmark) on arrival.")
@click.option("--icmp-type", "icmp_type", metavar="TYPE", help="ICMP type (echo-request, 8, …).")
@click.option("--from-host", "from_host", is_flag=True, help="Locally generated by this host (OUTPUT path).")
@click.option("--from-container", "from_container", metavar="NAME|IP",
              help="Sent by a local container (its bridge is the in-interface).")
@click.option("--reply", is_flag=True,
              help="Trace the answer to this flow: its connection's reply, NAT undone by conntrack.")
@click.option("-4", "family", flag_value=4, default=None, help="IPv4 (default unless an address is IPv6).")
@click.option("-6", "family", flag_value=6, help="IPv6.")
@click.option("--input-format", "input_format", type=FORMAT_CHOICE, default="auto", show_default=True,
              help="Format of FILE (detected when auto).")
@click.option("--backend", type=click.Choice(["auto", "nft", "legacy"]), default="auto", show_default=True,
              help="iptables backend: the one to read live, or the one FILE's rules came from "
                   "(nft runs the security table after nat INPUT). Detected when auto.")
@click.option("--ipset", "ipset_files", multiple=True, type=click.Path(dir_okay=False, allow_dash=True),
              metavar="FILE", help="`ipset save` output, for rules with -m set (repeatable).")
@click.option("--host", "host_files", multiple=True, type=click.Path(dir_okay=False, allow_dash=True),
              metavar="FILE", help="Saved `ip -j addr` / `ip -j route` / `ip addr` / `ip route` output (repeatable).")
@click.option("--local", "local", multiple=True, metavar="ADDR", help="An address of this host (repeatable).")
@click.option("--iface", "ifaces", multiple=True, metavar="NAME=ADDR/PREFIX",
              help="An interface and its address (repeatable).")
@click.option("--route", "routes", multiple=True, metavar="PREFIX=IFACE[,GATEWAY]",
              help="A route, 'default' for the default route (repeatable).")
@click.option("--format", "out_format", type=click.Choice(["rich", "json", "dot"]), default="rich",
              show_default=True, help="Output: the rich view, JSON, or Graphviz.")
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option("-v", "--verbose", is_flag=True, help="Show every rule looked at, and why it did not match.")
@click.option("--color", "color", type=click.Choice(["auto", "always", "never"]), default="auto",
              show_default=True, help="Colour (auto: only on a terminal, and not with NO_COLOR).")
@click.option("--width", type=click.IntRange(40, 1000), default=None, help="Width of the view (default: the terminal's).")
@click.option("--why", "why", metavar="RULE",
              help="Why RULE (CHAIN:N, TABLE:CHAIN:N, a line number of FILE, or rule text) did or did not "
                   "decide this flow: never reached, reached but not matched, or matched but overridden.")
def trace(files: tuple[str, ...], table: str | None, start_chain: str | None, example: str | None,  # type: ignore[no-untyped-def]
          proto: str | None, src: str | None, dst: str | None, sport, dport, sports, dports, syn: bool,
          not_syn: bool, tcp_flags: tuple[int, int] | None, not_tcp_flags: tuple[int, int] | None,
          iniface: str | None, outiface: str | None, state: str,
          mark: int | None, icmp_type: str | None, from_host: bool, from_container: str | None, reply: bool,
          family: int | None, input_format: str, backend: str, ipset_files: tuple[str, ...],
          host_files: tuple[str, ...],
          local: tuple[str, ...], ifaces: tuple[str, ...], routes: tuple[str, ...], out_format: str,
          as_json: bool, verbose: bool, color: str, width: int | None, why: str | None) -> None:
    """Trace a flow through netfilter's hooks: the path, why each rule matched or not, the outcome.

    FILE is an iptables-save dump, iptables -S output, an iptables -L/-nvL listing or an
    iptexplain snapshot; '-' reads standard input.  Several FILEs are pieces of one host's
    ruleset (`iptables -S` in one, `iptables -t nat -nvL` in another) read as one.  Without FILE
    (and without --example) the live host's ruleset is read (as root) -- unlike show, which reads
    standard input.  Flow options are spelled as iptables spells them.
    """
    file = files[0] if len(files) == 1 else None
    if files and example is not None:
        _fail("iptexplain trace: give FILE or --example, not both (see iptexplain trace --help)")
    # options that contradict each other are refused, never silently resolved one way
    ctx = click.get_current_context()
    explicit_format = ctx.get_parameter_source("out_format") == click.core.ParameterSource.COMMANDLINE
    if as_json and explicit_format and out_format != "json":
        _fail(f"iptexplain trace: --json and --format {out_format} contradict each other: give one "
              "(see iptexplain trace --help)")
    if from_host and iniface is not None:
        _fail("iptexplain trace: --from-host and -i contradict each other: a locally generated packet "
              "arrives on no interface (use -o for the way out)")
    if from_host and from_container is not None:
        _fail("iptexplain trace: --from-host and --from-container contradict each other: give one")
    if from_container is not None and iniface is not None:
        _fail("iptexplain trace: --from-container and -i contradict each other: the container's "
              "bridge is the in-interface")
    if icmp_type is not None and proto not in (None, "icmp", "ipv6-icmp"):
        _fail(f"iptexplain trace: --icmp-type needs -p icmp (or ipv6-icmp), not `{proto}'")
    if as_json:
        out_format = "json"
    for one, many, name in ((sport, sports, "--sport and --sports"), (dport, dports, "--dport and --dports")):
        if one is not None and many is not None:
            _fail(f"iptexplain trace: give one of {name} (see iptexplain trace --help)")
    sport = sport if sport is not None else sports
    dport = dport if dport is not None else dports
    flag_opts = [f for f, given in (("--syn", syn), ("! --syn", not_syn), ("--tcp-flags", tcp_flags),
                                    ("! --tcp-flags", not_tcp_flags)) if given]
    if len(flag_opts) > 1:
        _fail(f"iptexplain trace: give one of {', '.join(flag_opts)} (see iptexplain trace --help)")
    from iptexplain.ext.libxt_tcp import SYN_FLAGS

    flags = (SYN_FLAGS + (False,) if syn else SYN_FLAGS + (True,) if not_syn else
             tcp_flags + (False,) if tcp_flags else not_tcp_flags + (True,) if not_tcp_flags else None)
    if flags is not None and proto not in (None, "tcp"):
        _fail(f"iptexplain trace: {flag_opts[0]} describes a TCP segment, not `{proto}'")
    if (sport is not None or dport is not None or flags is not None) and proto is None:
        proto = "tcp"
        assumed = ["proto tcp assumed (" + ("--sport/--dport" if sport is not None or dport is not None else flag_opts[0]) + " given without -p)"]
    else:
        assumed = []
    if proto not in (None, "tcp", "udp", "sctp", "dccp", "udplite") and (sport is not None or dport is not None):
        _fail(f"iptexplain trace: --sport/--dport need a protocol with ports, not `{proto}'")
    addr_families = {6 if ":" in a else 4 for a in (src, dst) if a}
    if len(addr_families) > 1:
        _fail("iptexplain trace: -s and -d are of different families (IPv4 and IPv6)")
    if family is not None and addr_families and addr_families != {family}:
        _fail(f"iptexplain trace: -{family} given with an IPv{10 - family} address")
    fam = family or next(iter(addr_families), None)
    if "-" in files:
        _waiting_for_stdin("trace")

    def body() -> int:
        from iptexplain.netfilter.trace import Flow
        from iptexplain.netfilter.tracer import trace_flow
        from iptexplain.inputs.sources import resolve

        given = resolve(files or None, example, fam, input_format, backend=None if backend == "auto" else backend,
                        host_files=host_files, local=local, ifaces=ifaces, routes=routes,
                        ipset_files=ipset_files, table=table)
        if icmp_type is not None:
            _check_icmp_type(icmp_type, given.family)
        if start_chain is not None:
            from iptexplain.parse.partial import enter_chain

            enter_chain(given.ruleset, start_chain, given.family)
        flow = Flow(family=given.family, proto=proto or ("icmp" if icmp_type is not None else None), src=src, dst=dst, sport=sport, dport=dport,
                    iniface=iniface, outiface=outiface, state=state.upper(), mark=mark,
                    icmp_type=icmp_type, from_host=from_host, from_container=from_container, reply=reply,
                    tcp_flags=flags)
        # trace_flow completes the host model from the ruleset where it says nothing (noted)
        result = trace_flow(given.ruleset, flow, given.host, ipsets=given.ipsets, verbose=True,
                            backend=given.backend)
        result.notes[:0] = [n for n in assumed if n not in result.notes]
        if why is not None:
            return _render_why(result, given.ruleset, why, out_format)
        return _render_trace(result, given.ruleset, out_format, verbose, color, width)

    run_guarded(body)


def _render_why(result, ruleset, spec: str, out_format: str) -> int:  # type: ignore[no-untyped-def]
    """trace --why: the answer for each way the flow goes, instead of the whole trace."""
    from iptexplain.analysis.why import explain, find_rules
    from iptexplain.render.json_out import exit_status
    from iptexplain.render.why_view import why_json, why_text

    res = explain(result, find_rules(ruleset, spec, result.flow.family), ruleset)
    if out_format == "json":
        import json

        click.echo(json.dumps({"schema": "iptexplain.why/1", "flow": result.flow.describe(),
                               "why": why_json(res), "notes": result.notes}, indent=2))
    else:
        click.echo(f"flow: {result.flow.describe()}")
        click.echo(why_text(res), nl=False)
    return exit_status(result)


def _render_trace(result, ruleset, out_format: str, verbose: bool, color: str, width: int | None) -> int:  # type: ignore[no-untyped-def]
    from iptexplain.render.json_out import exit_status

    if out_format == "json":
        from iptexplain.render.json_out import dumps

        click.echo(dumps(result, ruleset), nl=False)
    elif out_format == "dot":
        from iptexplain.render.dot import render_dot

        click.echo(render_dot(result, ruleset), nl=False)
    else:
        from rich.console import Console

        from iptexplain.render.trace_view import TraceView

        # rich decides the rest: colour only on a terminal, NO_COLOR, FORCE_COLOR, the width
        console = Console(
            force_terminal=True if color == "always" else None,
            no_color=False if color == "always" else None,
            color_system=None if color == "never" else "auto",
            width=width, highlight=False, emoji=False, soft_wrap=False,
        )
        console.print(TraceView(result, ruleset, verbose=verbose))
    return exit_status(result)


# ---------------------------------------------------------------------------------------------
# Beyond one packet: diff, reach, lint (iptexplain.analysis).

LIVE = "@live"


def _analysis_input(file: str | list[str] | None, family: int, kw: dict):  # type: ignore[no-untyped-def]
    from iptexplain.inputs.sources import resolve

    if isinstance(file, list) and file == [LIVE]:
        file = None
    return resolve(None if file in (None, LIVE) else file, None, family, "auto",
                   host_files=kw.get("host_files", ()), local=kw.get("local", ()), ifaces=kw.get("ifaces", ()),
                   routes=kw.get("routes", ()), ipset_files=kw.get("ipset_files", ()))


@main.command(cls=_OneLineUsage, short_help="The packets whose fate differs between two rulesets.")
@click.argument("old", type=click.Path(dir_okay=False, allow_dash=True))
@click.argument("new", type=click.Path(dir_okay=False, allow_dash=True))
@_analysis_flow_options
@click.option("--json", "as_json", is_flag=True, help="JSON output (schema iptexplain.diff/1).")
def diff(old: str, new: str, as_json: bool, **kw) -> None:  # type: ignore[no-untyped-def]
    """The packets whose fate differs between the rulesets OLD and NEW, as classes.

    OLD and NEW are iptables-save dumps, -S output, listings or snapshots ('-' reads standard
    input for one of them, @live the running host's ruleset, as root).  Both are traced over
    whole sets of packets -- arriving on each interface, and sent by the host -- on one host
    model; each class says its packets in words, one example, the fate before and after, and
    the rules responsible on each side.  Flow options narrow the question.

    \b
    Examples:
      iptexplain diff before.save after.save
      iptexplain diff before.save after.save -p tcp --dport 22 --json
      sudo iptexplain diff yesterday.snap @live

    \b
    Exit status: 0 nothing changes, 1 some packets change fate (as diff(1)), 2 usage or input error.
    """
    template = _analysis_template(kw)

    def body() -> int:
        from iptexplain.analysis.diff import Side, diff_rulesets
        from iptexplain.render.diff_view import diff_json, diff_text

        a = _analysis_input(old, template.family, kw)
        b = _analysis_input(new, template.family, kw)
        host = a.host if a.host is not None else b.host
        res = diff_rulesets(Side(a.ruleset, a.ipsets, a.backend), Side(b.ruleset, b.ipsets, b.backend),
                            template, host)
        names = (old, new)
        click.echo(diff_json(res, *names) if as_json else diff_text(res, *names), nl=False)
        return 1 if res.changed else 0

    run_guarded(body)


@main.command(cls=_OneLineUsage, short_help="Who can reach what on this host, and by which rule.")
@click.argument("file", required=False, type=click.Path(dir_okay=False, allow_dash=True))
@_analysis_flow_options
@click.option("--format", "out_format", type=click.Choice(["rich", "json", "dot"]), default="rich",
              show_default=True, help="Output: the table, JSON (iptexplain.reach/1), or Graphviz.")
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option("--color", "color", type=click.Choice(["auto", "always", "never"]), default="auto",
              show_default=True, help="Colour (auto: only on a terminal, and not with NO_COLOR).")
@click.option("--width", type=click.IntRange(40, 1000), default=None, help="Width of the table.")
def reach(file: str | None, out_format: str, as_json: bool, color: str, width: int | None, **kw) -> None:  # type: ignore[no-untyped-def]
    """The host's reachability table: for each published port (DNAT target), each port of the
    host and each forwarded destination, which sources on each interface get through, which are
    dropped or rejected, and by which rule.

    FILE is a dump, a listing or a snapshot ('-': standard input); without FILE the live host's
    ruleset (as root).  Computed over whole sets of packets, not by sampling.  A published port
    that the host's INPUT rules would refuse is flagged: DNAT sends its packets to FORWARD.

    \b
    Examples:
      iptexplain reach rules.save --iface eth0=198.51.100.10/24 --route default=eth0
      iptexplain reach host.snap -p tcp --json
      iptexplain reach rules.save --format dot | dot -Tsvg > reach.svg
    """
    template = _analysis_template(kw)
    if as_json:
        out_format = "json"

    def body() -> int:
        from iptexplain.analysis.diff import Side
        from iptexplain.analysis.reach import reach as reach_table

        given = _analysis_input(file, template.family, kw)
        res = reach_table(Side(given.ruleset, given.ipsets, given.backend), template, given.host)
        if out_format == "json":
            from iptexplain.render.reach_view import reach_json

            click.echo(reach_json(res, given.ruleset.source), nl=False)
        elif out_format == "dot":
            from iptexplain.render.reach_view import reach_dot

            click.echo(reach_dot(res), nl=False)
        else:
            from rich.console import Console

            from iptexplain.render.reach_view import reach_renderable

            Console(force_terminal=True if color == "always" else None,
                    no_color=False if color == "always" else None,
                    color_system=None if color == "never" else "auto", width=width or 140,
                    highlight=False, emoji=False).print(reach_renderable(res))
        return 0

    run_guarded(body)


@main.command(cls=_OneLineUsage, short_help="Rules that can never match, chains nothing reaches, accepts undone.")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, allow_dash=True))
@click.option("-4", "family", flag_value=4, default=None, help="IPv4 only.")
@click.option("-6", "family", flag_value=6, help="IPv6 only.")
@click.option("--json", "as_json", is_flag=True, help="JSON output (schema iptexplain.lint/1).")
@click.option("--host", "host_files", multiple=True, type=click.Path(dir_okay=False, allow_dash=True),
              metavar="FILE", help="Saved `ip -j addr` / `ip -j route` output (repeatable).")
@click.option("--local", "local", multiple=True, metavar="ADDR", help="An address of this host (repeatable).")
@click.option("--iface", "ifaces", multiple=True, metavar="NAME=ADDR/PREFIX",
              help="An interface and its address (repeatable).")
@click.option("--route", "routes", multiple=True, metavar="PREFIX=IFACE[,GATEWAY]",
              help="A route, 'default' for the default route (repeatable).")
@click.option("--ipset", "ipset_files", multiple=True, type=click.Path(dir_okay=False, allow_dash=True),
              metavar="FILE", help="`ipset save` output, for rules with -m set (repeatable).")
def lint(files: tuple[str, ...], family: int | None, as_json: bool, **kw) -> None:  # type: ignore[no-untyped-def]
    """Findings about the ruleset: rules that can never match (every packet they would match is
    taken earlier in their chain -- "redundant" when by rules with the same target), chains
    no built-in chain reaches, ACCEPTs (and translations) that a later table or nft base chain
    undoes, and nat rules for a conntrack state the nat table never sees; each with the rules
    involved and, across tables, the packets in words.

    FILES are a dump, a listing or a snapshot ('-': standard input), or one host's iptables-save
    dump and its nft ruleset together; without FILES the live host's ruleset (as root).
    Computed over packet sets; a rule is judged only when each of its tests is decided by the
    packet's header and conntrack state.  The host options tell the interfaces the ACCEPTs
    undone across tables are traced from.

    \b
    Exit status: 0 no findings, 1 findings, 2 usage or input error.
    """

    def body() -> int:
        from iptexplain.analysis.lint import lint as run_lint
        from iptexplain.render.lint_view import lint_json, lint_text

        given = _analysis_input(list(files) or None, family or 4, kw)
        res = run_lint(given.ruleset, family, given.host, given.ipsets, given.backend)
        src = given.ruleset.source
        click.echo(lint_json(res, src) if as_json else lint_text(res, src), nl=False)
        return 1 if res.findings else 0

    run_guarded(body)
