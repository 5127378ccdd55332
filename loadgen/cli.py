"""The ``loadgen`` command line: parse, call, print, exit code. Logic lives in the packages."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import click
from rich.console import Console

from loadgen import __version__, interrupts
from loadgen.commands import mesh
from loadgen.commands.canary import canary
from loadgen.commands.probes import intentions, propagation
from loadgen.commands.report import report
from loadgen.commands.run import run
from loadgen.commands.shift import shift
from loadgen.errors import ExitCode, LoadgenError

err = Console(stderr=True, soft_wrap=True)

EXIT_CODES_HELP = (
    "Exit codes: 0 ok/PASS, 1 FAIL or violation, 2 usage or input error, 3 INCONCLUSIVE, "
    "4 target or mesh unreachable (or a component failed to come up), 5 environment "
    "(a required binary missing or a port taken), 70 internal error (a bug), 130 interrupted (Ctrl-C), "
    "143 terminated (SIGTERM); interrupted or terminated, what was collected is still reported."
)


def _interrupted(exc: BaseException | None) -> None:
    signum = getattr(exc, "signum", signal.SIGINT)
    err.print(f"loadgen: {'terminated' if signum == signal.SIGTERM else 'interrupted'}", highlight=False)
    sys.exit(interrupts.exit_code(signum))


class LoadgenGroup(click.Group):
    """Turns every error into one line on stderr and a distinct exit code -- never a traceback."""

    def main(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs["standalone_mode"] = False
        interrupts.install()
        try:
            rv = super().main(*args, **kwargs)
        except click.exceptions.NoArgsIsHelpError as exc:  # `loadgen` alone
            click.echo(exc.ctx.get_help() if exc.ctx else "")
            sys.exit(ExitCode.OK)
        except click.UsageError as exc:
            cmd = exc.ctx.command_path if exc.ctx else "loadgen"
            err.print(f"loadgen: error: {exc.format_message()} (see `{cmd} --help`)", highlight=False)
            sys.exit(ExitCode.USAGE)
        except click.exceptions.Abort as exc:  # click's wrapper of a KeyboardInterrupt
            _interrupted(exc.__cause__)
        except LoadgenError as exc:
            err.print(f"loadgen: error: {exc.message}", highlight=False, markup=False)
            if exc.detail:
                err.print(exc.detail, style="dim", highlight=False, markup=False)
            sys.exit(exc.code)
        except KeyboardInterrupt as exc:
            _interrupted(exc)
        except Exception as exc:  # a bug: still one line, and a distinct code
            if os.environ.get("LOADGEN_DEBUG"):
                raise
            err.print(f"loadgen: internal error: {type(exc).__name__}: {exc} (set LOADGEN_DEBUG=1 for the "
                      "traceback, and please report it)", highlight=False, markup=False)
            sys.exit(ExitCode.INTERNAL)
        sys.exit(rv if isinstance(rv, int) else ExitCode.OK)


@click.group(cls=LoadgenGroup, no_args_is_help=True, epilog=EXIT_CODES_HELP)
@click.version_option(__version__, prog_name="loadgen")
def cli() -> None:
    """Load generator and canary verifier for Consul service mesh.

    Bring up the reference mesh (`loadgen up --stage splitter`), drive traffic through
    service-a and see how service-b's instances share it.
    """


for command in mesh.COMMANDS:
    cli.add_command(command)
for name, group in mesh.GROUPS.items():
    cli.add_command(group, name)
cli.add_command(canary)
cli.add_command(run)
cli.add_command(report)
cli.add_command(intentions)
cli.add_command(propagation)
cli.add_command(shift)


def main() -> None:
    cli(prog_name="loadgen")


if __name__ == "__main__":
    main()
