"""Parsing shared by the commands: durations, extra request headers, the runtime option."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from loadgen.errors import UsageError
from loadgen.load.schedule import parse_duration
from loadgen.mesh.runtime.select import RUNTIMES


class Duration(click.ParamType):
    """30s, 2m, 250ms or a plain number of seconds."""

    name = "DURATION"

    def convert(self, value: Any, param: Any, ctx: Any) -> float:
        if isinstance(value, int | float):
            return float(value)
        try:
            return parse_duration(str(value))
        except UsageError as exc:
            self.fail(exc.message, param, ctx)


def parse_headers(values: tuple[str, ...]) -> dict[str, str]:
    """--header 'Name: value' options as a dict."""
    headers = {}
    for value in values:
        name, sep, content = value.partition(":")
        if not sep or not name.strip():
            raise UsageError(f"--header {value!r} is not 'Name: value'")
        headers[name.strip()] = content.strip()
    return headers


def runtime_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """--runtime for commands that borrow the local mesh (it is brought up there when needed)."""
    return click.option(
        "--runtime", type=click.Choice(list(RUNTIMES)), default=None,
        help="Runtime to bring the local mesh up on when it is not running: process, docker or nomad. "
             "Default: what already runs, else $LOADGEN_RUNTIME, else process.",
    )(func)
