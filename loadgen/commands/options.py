"""Parsing shared by the commands: durations, rates, run ids, extra request headers, the runtime option.

Everything here is checked before a run starts and fails with one line (UsageError, or
click's "Invalid value for '--option'" for the ParamTypes), never deep in the HTTP stack.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from loadgen.errors import ExitCode, UsageError
from loadgen.load.client import TlsOptions
from loadgen.load.schedule import parse_duration
from loadgen.mesh.runtime.select import RUNTIMES
from loadgen.shown import shown as shown_value

_ZERO_DURATION = re.compile(r"^\s*0+(?:\.0+)?\s*(?:ms|s|m|h)?\s*$")


class Duration(click.ParamType):
    """30s, 2m, 250ms or a plain number of seconds: finite and more than 0 (or 0 itself with
    ``allow_zero``, for options like --warmup where 0 means "none")."""

    name = "DURATION"

    def __init__(self, allow_zero: bool = False) -> None:
        self.allow_zero = allow_zero

    def convert(self, value: Any, param: Any, ctx: Any) -> float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            # A default given as a number never went through parse_duration: check it the same way.
            seconds = float(value)
            if math.isfinite(seconds) and (seconds > 0 or (seconds == 0 and self.allow_zero)):
                return seconds
            self.fail(f"duration {value!r} must be a finite number of seconds, more than 0"
                      + (" (or 0)" if self.allow_zero else ""), param, ctx)
        text = str(value)
        if self.allow_zero and _ZERO_DURATION.match(text):
            return 0.0
        try:
            return parse_duration(text)
        except UsageError as exc:
            self.fail(exc.message, param, ctx)


def parse_rate(value: str | float, option: str = "--rate") -> float:
    """A request rate in requests/s: a finite number more than 0.

    Raises UsageError naming ``option`` otherwise: click's FloatRange lets ``nan`` through
    (every comparison with nan is false), and a nan or infinite rate would schedule nothing
    or everything at once."""
    problem = _rate_problem(value)
    if problem:
        raise UsageError(f"{option}: {problem}")
    return float(value)


def _rate_problem(value: object) -> str | None:
    """Why ``value`` is not a request rate, or None when it is one."""
    try:
        if isinstance(value, bool):
            raise TypeError
        rate = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return f"{value!r} is not a number of requests per second"
    if not math.isfinite(rate):
        return f"{value!r} is not a finite number of requests per second"
    if rate <= 0:
        return f"rates must be more than 0, got {value}"
    return None


class Rate(click.ParamType):
    """A request rate for ``type=``: what :func:`parse_rate` accepts, within [min, max] when given.

    Use instead of ``click.FloatRange(min, max)``: the same bounds, but nan, inf and rates
    of 0 or less are refused with one line."""

    name = "RATE"

    def __init__(self, min: float | None = None, max: float | None = None) -> None:
        self.min = min
        self.max = max

    def convert(self, value: Any, param: Any, ctx: Any) -> float:
        problem = _rate_problem(value)
        if problem:
            self.fail(problem, param, ctx)
        rate = float(value)
        if (self.min is not None and rate < self.min) or (self.max is not None and rate > self.max):
            self.fail(f"{value} is not in the range {self._range()} requests per second", param, ctx)
        return rate

    def _range(self) -> str:
        if self.min is not None and self.max is not None:
            return f"{self.min:g} to {self.max:g}"
        return f">= {self.min:g}" if self.min is not None else f"<= {self.max:g}"


_RUN_ID = re.compile(r"^[A-Za-z0-9._-]{1,100}$")


def parse_run_id(value: str) -> str:
    """--run-id: the name of one directory under --out, so a single safe path component.

    Letters, digits, '.', '_' and '-' only, 1 to 100 characters, not '.' or '..' -- a
    '../../x' would otherwise write reports outside --out. Raises UsageError."""
    if not _RUN_ID.match(value) or value in (".", ".."):
        raise UsageError(f"--run-id {_RUN_ID_RULE.format(value=value)}")
    return value


_RUN_ID_RULE = ("{value!r} must be one directory name: 1-100 letters, digits, '.', '_' or '-' (not '.' or '..'), "
                "like nightly-42")


class RunId(click.ParamType):
    """--run-id for ``type=``: :func:`parse_run_id` as a click type (a None default stays None)."""

    name = "RUN_ID"

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        try:
            return parse_run_id(str(value))
        except UsageError:
            self.fail(_RUN_ID_RULE.format(value=str(value)), param, ctx)


# RFC 9110 section 5.6.2: a field name is a token.
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# The client writes these itself (a GET has no body; connections are its own to manage):
# one from --header would contradict its framing, or break the keep-alive pool.
MANAGED_HEADERS = frozenset({
    "content-length", "transfer-encoding", "connection", "upgrade", "keep-alive", "te", "trailer",
    "proxy-connection",
})


def parse_headers(values: tuple[str, ...] | list[str]) -> dict[str, str]:
    """--header 'Name: value' options as a dict, each checked so the request stays well formed.

    * the name must be an RFC 9110 token (no spaces, colons or control characters); spaces
      and tabs around it and around the value are dropped;
    * the value must be ASCII without control characters (a tab is allowed): a CR or LF
      would inject header lines of its own, and a NUL or non-ASCII text is not sent as
      the user meant; an empty value is allowed;
    * the headers the client manages itself -- Content-Length, Transfer-Encoding,
      Connection, Upgrade, Keep-Alive, TE, Trailer, Proxy-Connection -- are refused;
      Host is allowed (it can route a request through a proxy or gateway);
    * a name given twice (in any letter case) is refused rather than one silently winning:
      give one header with the values joined by ', ' when a list is meant.

    Raises UsageError with one line naming --header and the offending option.
    """
    headers: dict[str, str] = {}
    seen: dict[str, str] = {}
    for value in values:
        shown = f"--header {shown_value(value)}"
        name, sep, content = value.partition(":")
        name, content = name.strip(" \t"), content.strip(" \t")
        if not sep or not name:
            raise UsageError(f"{shown} is not 'Name: value'")
        if not _TOKEN.match(name):
            raise UsageError(f"{shown}: {name!r} is not a header name (letters, digits and !#$%&'*+-.^_`|~ only, "
                             "no spaces)")
        # From here on the value is not shown: it may be a credential (Authorization, a token).
        shown = f"--header '{name}: …'"
        if name.lower() in MANAGED_HEADERS:
            raise UsageError(f"{shown}: loadgen sends GET requests and manages {name} itself; leave it out")
        bad = next((c for c in content if (ord(c) < 0x20 and c != "\t") or ord(c) >= 0x7F), None)
        if bad is not None:
            what = "non-ASCII text" if ord(bad) > 0x7F else "a control character (CR, LF, NUL, ...)"
            raise UsageError(f"{shown}: the value contains {what} {bad!r} at character {content.index(bad) + 1}; "
                             "header values are printable ASCII")
        if name.lower() in seen:
            raise UsageError(f"{shown}: {seen[name.lower()]} is given twice; give it once (join several values "
                             "with ', ')")
        seen[name.lower()] = name
        headers[name] = content
    return headers


def runtime_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """--runtime for commands that borrow the local mesh (it is brought up there when needed)."""
    return click.option(
        "--runtime", type=click.Choice(list(RUNTIMES)), default=None,
        help="Runtime to bring the local mesh up on when it is not running: process, docker or nomad. "
             "Default: what already runs, else $LOADGEN_RUNTIME, else process.",
    )(func)


def nomad_workers_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """--nomad-workers and --nomad-driver for `run` and `canary`: the load from N workers dispatched
    as Nomad jobs."""
    func = click.option(
        "--nomad-driver", type=click.Choice(["raw_exec", "docker"]), default=None,
        help="The workers' Nomad task driver: raw_exec (this checkout's virtualenv, for the local agent; the "
             "default) or docker (the loadgen image on the host network: $LOADGEN_NOMAD_IMAGE, an image your "
             "nodes can pull, else the image `loadgen images build` makes here; "
             "nomad/loadgen-worker-docker.nomad.hcl).",
    )(func)
    return click.option(
        "--nomad-workers", type=click.IntRange(1, 256), default=None, metavar="N",
        help="Send the load from N workers dispatched as Nomad jobs (nomad/loadgen-worker.nomad.hcl; NOMAD_ADDR, "
             "NOMAD_TOKEN and the TLS variables as the nomad CLI reads them), each an interleaved share of one "
             "schedule, merged exactly. The workers report to this process at LOADGEN_COORDINATOR_BIND "
             "(default 127.0.0.1:0: workers on this machine).",
    )(func)


def comparison_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--latency, --latency-margin, --error-margin, --baseline: is the canary worse than the baseline
    (canary.worse), for `canary` and each step of `shift`."""
    options = [
        click.option("--latency", metavar="pQ", default=None,
                     help="Also judge whether each canary is slower than the baseline at this latency quantile "
                          "(p50, p90, p99, p99.9, ...): FAIL when proved more than --latency-margin above the "
                          "baseline's, PASS when proved within it. Failed requests count as infinitely slow."),
        click.option("--latency-margin", metavar="PCT%|TIME", default=None,
                     help="How much slower than the baseline a canary may be at --latency: a share (10%, the "
                          "default) or a time (5ms, 0.5s)."),
        click.option("--error-margin", metavar="POINTS", default=None,
                     help="Also judge each canary's error rate against the baseline's: FAIL when proved more than "
                          "POINTS above it (0.5 = half a percentage point), PASS when proved within."),
        click.option("--baseline", metavar="SUBSET", default=None,
                     help="The subset --latency and --error-margin compare the others with (default: the one "
                          "with the largest weight; for shift, at the start)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def request_body(data: str | None) -> bytes | None:
    """--data TEXT, or --data @FILE for a file's bytes (as curl reads them)."""
    if data is None:
        return None
    if not data.startswith("@"):
        return data.encode()
    path = Path(data[1:])
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"--data {data}: cannot read {path} ({exc.strerror or exc})") from None


def tls_options(cacert: Path | None, insecure: bool) -> TlsOptions | None:
    """--cacert / --insecure for an https:// target (None: the system's trust store)."""
    if cacert is None and not insecure:
        return None
    return TlsOptions(cacert=str(cacert) if cacert else None, insecure=insecure)


# Codes --inconclusive-exit may not take: each already means something else to a controller
# reading only the exit code (2 usage, 4 unreachable, 5 environment, 6 an output lost, 70 a bug);
# 126-255 are the shell's (not executable, not found, killed by a signal). 0 and 1 are allowed on
# purpose: "an undecided run passes" and "an undecided run fails" are both real choices.
RESERVED_EXIT_CODES = frozenset({2, 4, 5, 6, 70})


def parse_inconclusive_exit(value: object, option: str = "--inconclusive-exit") -> int:
    """The exit code an INCONCLUSIVE run leaves with instead of 3: an integer 0-125 other than
    :data:`RESERVED_EXIT_CODES`. Raises UsageError naming ``option``."""
    text = str(value).strip()
    if isinstance(value, bool) or not re.fullmatch(r"\d{1,3}", text):
        raise UsageError(f"{option} {shown_value(str(value))} is not an exit code: give an integer 0-125")
    code = int(text)
    if code > 125:
        raise UsageError(f"{option} {code}: exit codes above 125 are the shell's (126 not executable, 127 not "
                         "found, 128+N killed by signal N): give 0-125")
    if code in RESERVED_EXIT_CODES:
        raise UsageError(f"{option} {code} already means something else (2 usage, 4 unreachable, 5 environment, "
                         "6 an output lost, 70 internal error): pick another code")
    return code


class InconclusiveExit(click.ParamType):
    """--inconclusive-exit for ``type=``: :func:`parse_inconclusive_exit` as a click type."""

    name = "CODE"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        try:
            return parse_inconclusive_exit(value)
        except UsageError as exc:
            self.fail(exc.message.removeprefix("--inconclusive-exit "), param, ctx)


def inconclusive_exit_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """--inconclusive-exit CODE for `canary` and `shift`: controllers that read only an exit code."""
    return click.option(
        "--inconclusive-exit", type=InconclusiveExit(), default=None,
        help="Exit with CODE instead of 3 when the verdict is INCONCLUSIVE (for `shift`: instead of 1 when the "
             "shift stopped only because a step's split was undecided, and was rolled back). 0-125, not 2, 4, 5, "
             "6 or 70 (they mean something else). PASS stays 0 and FAIL 1; an interrupted run keeps 130/143. "
             "Argo Rollouts' Job provider fails the analysis on any non-zero code: 0 lets an undecided run "
             "through, so prefer the Web provider over `loadgen serve`, which keeps Inconclusive.",
    )(func)


def inconclusive_exit_code(code: int, inconclusive_exit: int | None) -> int:
    """``code`` (a result's), with INCONCLUSIVE's 3 turned into ``inconclusive_exit`` when given."""
    if inconclusive_exit is not None and code == ExitCode.INCONCLUSIVE:
        return inconclusive_exit
    return code
