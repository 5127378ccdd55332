"""The options that shape each request and how its answer is read, shared by the commands
that send load (`loadgen run`, `loadgen canary`): the method, a body, TLS for an https://
target, and ``--subset-from``.

``@request_options`` adds them; :func:`build_request_options` turns what click parsed into one
typed :class:`RequestOptions`, checking everything before a run starts (one line, exit 2),
and :meth:`RequestOptions.apply` puts it into a :class:`LoadPlan`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, overload

import click

from loadgen.commands.options import request_body, tls_options
from loadgen.errors import UsageError
from loadgen.load.client import Endpoint, TlsOptions
from loadgen.load.engine import LoadPlan
from loadgen.load.identity import AUTO, IdentityRule

__all__ = ["METHOD_FLAGS", "RequestOptions", "build_request_options", "request_options"]

F = TypeVar("F", bound=Callable[..., Any])

# `loadgen canary` already has a --method (the judge's): it passes method_flags=("-X", "--request").
METHOD_FLAGS = ("-X", "--method", "--request")

SUBSET_FROM_HELP = (
    "How an answer names the backend that sent it: auto (an X-App-Id header, else a JSON body's app_id), "
    "header:NAME (a response header, any case), json:PATH (a dotted path into a JSON body, like "
    "json:upstream.app_id or json:items.0.id), or envoy (the canary judges the client sidecar's per-cluster "
    "counters instead, which count every request through that sidecar, not only loadgen's; each answer is "
    "still read as auto). An answer without the identity is an error (no_app_id), never a guess."
)


@dataclass(frozen=True)
class RequestOptions:
    """What each request is and how its answer names a backend."""

    method: str = "GET"
    body: bytes | None = None
    tls: TlsOptions | None = None  # https:// targets; None: the system's trust store
    identity: IdentityRule = AUTO

    def apply(self, plan: LoadPlan) -> LoadPlan:
        """``plan`` sending these requests and reading answers by this rule."""
        return dataclasses.replace(plan, method=self.method, body=self.body, tls=self.tls, identity=self.identity)

    def check_target(self, url: str | None) -> None:
        """--cacert / --insecure are only for an https:// target (``url`` None: the local mesh,
        which is plain HTTP); silently ignoring them would hide a typo'd URL scheme."""
        if self.tls is not None and (url is None or Endpoint.parse(url).scheme != "https"):
            raise UsageError("--cacert and --insecure are for an https:// --target")


def build_request_options(request_method: str | None, data: str | None, cacert: Path | str | None,
                          insecure: bool, subset_from: str, target: str | None = None) -> RequestOptions:
    """The typed form of the values ``@request_options`` parsed, checked now: a method that is not
    one, an unreadable ``--data @FILE`` or ``--cacert`` file, a malformed ``--subset-from``, or
    TLS options for a target that is not https:// are each one line (UsageError, exit 2).
    ``target`` None means the local mesh."""
    body = request_body(data)
    # As curl: a body without a method is a POST.
    method = (request_method or ("POST" if body is not None else "GET")).strip().upper()
    # ASCII letters only (a token, RFC 9110): "GÉT" would go out as raw latin-1 bytes.
    if not (method.isascii() and method.isalpha()) or not (request_method or "").isascii():
        raise UsageError(f"the method {request_method!r} is not an HTTP method (GET, POST, PUT, ...)")
    tls = tls_options(Path(cacert) if cacert is not None else None, insecure)
    identity = IdentityRule.parse(subset_from)
    options = RequestOptions(method=method, body=body, tls=tls, identity=identity)
    options.check_target(target)
    if tls is not None:
        tls.context()  # a CA file that is missing or not PEM: one line before anything starts
    return options


@overload
def request_options(func: F) -> F: ...
@overload
def request_options(func: None = None, *, method_flags: Sequence[str] = METHOD_FLAGS) -> Callable[[F], F]: ...
def request_options(func: F | None = None, *, method_flags: Sequence[str] = METHOD_FLAGS) -> F | Callable[[F], F]:
    """Add --method (``method_flags``), --data, --cacert, --insecure and --subset-from; the command
    receives ``request_method``, ``data``, ``cacert``, ``insecure`` and ``subset_from``, for
    :func:`build_request_options`. Use as ``@request_options``, or
    ``@request_options(method_flags=("-X", "--request"))`` where --method means something else."""

    def decorate(f: F) -> F:
        # click shows options in the order they are listed: the last applied comes first.
        options = [
            click.option(*method_flags, "request_method", default=None, metavar="METHOD",
                         help="The HTTP method of each request.  [default: GET, or POST with --data]"),
            click.option("--data", metavar="TEXT|@FILE",
                         help="A request body: the text, or @FILE for a file's bytes (sent with a "
                              "Content-Length; give its type with --header 'Content-Type: ...')."),
            # No click.Path(exists=True): click's error is three lines, ours is one.
            click.option("--cacert", metavar="FILE",
                         help="https:// --target: the CA certificate (PEM) that signs its certificate "
                              "(default: the system's trust store)."),
            click.option("--insecure", is_flag=True, help="https:// --target: do not verify its certificate."),
            click.option("--subset-from", "subset_from", default="auto", show_default=True, metavar="RULE",
                         help=SUBSET_FROM_HELP),
        ]
        for option in reversed(options):
            f = option(f)
        return f

    return decorate(func) if func is not None else decorate
