"""The ``loadgen`` command line: parse, call, print, exit code. Logic lives in the packages.

Commands load lazily: ``loadgen status`` imports the mesh commands only, never the canary's
statistics or the plots, so a command that does not judge starts at once.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
from typing import Any

import click

from loadgen import __version__, interrupts, stdio
from loadgen.errors import ExitCode, LoadgenError
from loadgen.safe_text import describe_exception

# Every command: its module, the click object there, and its short help (the first sentence of
# its docstring, which `loadgen --help` lists without importing the command; a unit test checks
# each is the command's own).
COMMANDS: dict[str, tuple[str, str, str]] = {
    "canary": ("loadgen.commands.canary", "canary",
               "Send traffic through service-a and decide whether service-b's split matches SPLIT."),
    "doctor": ("loadgen.commands.mesh", "doctor",
               "Check the real parts: Consul, Envoy, Nomad (and Go, to build them)."),
    "down": ("loadgen.commands.mesh", "down",
             "Stop every process `up` started and remove what it registered and wrote in Consul."),
    "images": ("loadgen.commands.mesh", "images_group",
               "Container images for the docker runtime (built locally, no registry)."),
    "intentions": ("loadgen.commands.probes", "intentions",
                   "Time how long a deny intention (service-a -> service-b) takes to bite, and its removal to heal."),
    "logs": ("loadgen.commands.mesh", "logs",
             "Print the last lines of COMPONENT's log (names as in `loadgen status`)."),
    "propagation": ("loadgen.commands.probes", "propagation",
                    "Time how long a service-splitter weight change takes to move real traffic."),
    "report": ("loadgen.commands.report", "report",
               "Write one self-contained HTML page comparing the stages of a run in RUN_DIR (reports/<run-id>)."),
    "run": ("loadgen.commands.run", "run", "Drive load through service-a and write latency reports per stage."),
    "serve": ("loadgen.commands.serve", "serve",
              "Serve the canary over HTTP: POST /v1/canaries, GET and DELETE /v1/canaries/{id}, POST /v1/gate."),
    "shift": ("loadgen.commands.shift", "shift",
              "Shift traffic to a subset step by step, proving each step in the data plane."),
    "split": ("loadgen.commands.mesh", "split",
              "Send N requests through service-a and show how service-b's APP_IDs shared them."),
    "stages": ("loadgen.commands.mesh", "stages", "List the stages defined in consul/stages.toml."),
    "status": ("loadgen.commands.mesh", "status",
               "Show every component (pid, port, health), the config entries in force and the commands using "
               "the mesh (canary, run, probes: `down` waits for them)."),
    "toolchain": ("loadgen.commands.mesh", "toolchain_group", "Build and cache the pinned Consul and Nomad binaries."),
    "up": ("loadgen.commands.mesh", "up",
           "Bring the local mesh to STAGE (starting or reusing what runs) and wait until it is live."),
    "worker": ("loadgen.commands.worker", "worker",
               "Run one share of a coordinator's schedule and report it back."),
}
HIDDEN = {"worker"}  # started by `run|canary --nomad-workers`, not by people: not in --help


def _err(*objects: Any, **options: Any) -> None:
    """Print on stderr through rich, imported only when there is something to say."""
    from rich.console import Console

    Console(stderr=True, soft_wrap=True).print(*objects, **options)

EXIT_CODES_HELP = (
    "Exit codes: 0 ok/PASS, 1 FAIL or violation, 2 usage or input error, 3 INCONCLUSIVE, "
    "4 target or mesh unreachable (or a component failed to come up), 5 environment "
    "(a required binary missing or a port taken), 6 the run ended (a PASS, a finished load) but an output "
    "(stdout, --json, --junit) could not be written, 70 internal error (a bug), 130 interrupted (Ctrl-C), "
    "143 terminated (SIGTERM); interrupted or terminated, what was collected is still reported."
)


def _interrupted(exc: BaseException | None) -> None:
    signum = getattr(exc, "signum", signal.SIGINT)
    _err(f"loadgen: {'terminated' if signum == signal.SIGTERM else 'interrupted'}", highlight=False)
    sys.exit(interrupts.exit_code(signum))


class LoadgenGroup(click.Group):
    """Turns every error into one line on stderr and a distinct exit code -- never a traceback.

    Its commands are :data:`COMMANDS`, each imported when it is run or its own help asked."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module, attribute, _ = COMMANDS[cmd_name]
            self.add_command(getattr(importlib.import_module(module), attribute), cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list as click writes it, from :data:`COMMANDS`' short help: nothing imported."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = []
        for name in names:
            loaded = self.commands.get(name)
            if name in HIDDEN or (loaded is not None and loaded.hidden):
                continue
            # A command not loaded shortens its listed help as click would: by a stand-in.
            shown = loaded or click.Command(name, help=COMMANDS[name][2])
            rows.append((name, shown.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def main(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs["standalone_mode"] = False
        stdio.guard()  # a closed stdout gets /dev/null before any socket can take its number
        interrupts.install()
        try:
            rv = super().main(*args, **kwargs)
        except click.exceptions.NoArgsIsHelpError as exc:  # `loadgen` alone
            click.echo(exc.ctx.get_help() if exc.ctx else "")
            sys.exit(ExitCode.OK)
        except click.UsageError as exc:
            cmd = exc.ctx.command_path if exc.ctx else "loadgen"
            _err(f"loadgen: error: {exc.format_message()} (see `{cmd} --help`)", highlight=False)
            sys.exit(ExitCode.USAGE)
        except click.exceptions.Abort as exc:  # click's wrapper of a KeyboardInterrupt
            _interrupted(exc.__cause__)
        except LoadgenError as exc:
            _err(f"loadgen: error: {exc.message}", highlight=False, markup=False)
            if exc.detail:
                _err(exc.detail, style="dim", highlight=False, markup=False)
            sys.exit(exc.code)
        except KeyboardInterrupt as exc:
            _interrupted(exc)
        except Exception as exc:  # a bug: still one line, and a distinct code
            if os.environ.get("LOADGEN_DEBUG"):
                raise
            _err(f"loadgen: internal error: {describe_exception(exc)} (set LOADGEN_DEBUG=1 for the "
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



def main() -> None:
    cli(prog_name="loadgen")


if __name__ == "__main__":
    main()
