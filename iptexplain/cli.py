"""The command line: thin click commands, each calling one function of the library.

Heavy modules (rich, the parser, the tracer) are imported inside the commands so that
``iptexplain --help`` stays fast.
"""

from __future__ import annotations

import sys
from typing import Callable, TypeVar

import click

F = TypeVar("F", bound=Callable)

EXIT_OK, EXIT_DROPPED, EXIT_USAGE, EXIT_FORKED = 0, 1, 2, 3


def _fail(message: str) -> None:
    click.echo(message, err=True)
    sys.exit(EXIT_USAGE)


def run_guarded(fn: Callable[[], int | None]) -> None:
    """Run a command body; bad input becomes one line on stderr and exit status 2."""
    from iptexplain.errors import InputError

    try:
        code = fn()
    except InputError as e:
        _fail(f"iptexplain: {e}")
    except BrokenPipeError:
        sys.exit(0)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(code or 0)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="iptexplain")
def main() -> None:
    """What does netfilter do to this packet, and why?

    \b
    Examples:
      iptexplain trace --dport 9525                 # on the live host (as root)
      iptables-save | iptexplain trace - --dport 9525
      iptexplain show rules.save
    """


FORMAT_CHOICE = click.Choice(["auto", "save", "S", "listing"])


@main.command()
@click.argument("file", default="-", required=False)
@click.option("--format", "fmt", type=FORMAT_CHOICE, default="auto", show_default=True,
              help="Input format (detected when auto).")
@click.option("-t", "--table", "table", default=None, help="Show only this table.")
@click.option("-4", "family", flag_value=4, default=None, help="IPv4 only.")
@click.option("-6", "family", flag_value=6, help="IPv6 only.")
def show(file: str, fmt: str, table: str | None, family: int | None) -> None:
    """Show a ruleset as tables and chains, with jump edges and counters.

    FILE is an iptables-save dump, iptables -S output or an iptables -L listing; '-' reads
    standard input.
    """

    def body() -> int:
        from iptexplain.parse import load
        from iptexplain.render.show import render_ruleset

        rs = load(file, fmt)
        render_ruleset(rs, table=table, family=family)
        return 0

    run_guarded(body)
