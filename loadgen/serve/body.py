"""A posted canary (JSON) -> the :class:`CanaryOptions` `loadgen canary` builds from the same values.

The keys are `loadgen canary`'s long options without the dashes (``max_time`` or ``max-time`` for
``--max-time``, ``map`` for ``--map``, ``header`` for ``--header``, ``request`` for ``-X``). Each
value is handed to that command's own click parameter and the result to the functions the command
calls (:func:`loadgen.commands.canary.canary_options`, :func:`loadgen.canary.validate`), so the API
accepts and refuses exactly what the CLI does, with the same one line. On top of that a server
refuses what a client must not choose on it: any option naming a file on the server (``record``,
``replay``, ``json``, ``junit``, ``cacert``, ``data`` as ``@FILE``), the server's Consul (its token
would go where the client says), the local mesh (``stage``, ``runtime``), and a ``target`` or
``envoy_admin`` outside the allow-list.
"""

from __future__ import annotations

import ipaddress
import json
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import click

from loadgen.canary import CanaryOptions, validate
from loadgen.errors import LoadgenError

__all__ = ["REFUSED_KEYS", "BodyError", "PostedCanary", "TargetAllowList", "parse_canary"]

# Options a client may not give, and why (said in the 400's one line).
REFUSED_KEYS: dict[str, str] = {
    "record": "names a file on the server",
    "replay": "names a file on the server",
    "json": "names a file on the server (GET /v1/canaries/{id} is the JSON)",
    "junit": "names a file on the server",
    "cacert": "names a file on the server (start the server with SSL_CERT_FILE for a private CA)",
    "consul": "would send the server's Consul token where a client says: the server reads the Consul it was "
              "started with (loadgen serve --consul)",
    "stage": "the server judges the target you name, not its local mesh",
    "runtime": "the server judges the target you name, not its local mesh",
    "plan": "plans are a CLI affair (loadgen canary --plan)",
    "quiet": "a server prints no progress",
    "inconclusive_exit": "an HTTP answer has no exit code (the state says INCONCLUSIVE)",
    "metrics_listen": "would open a port on the server: its /metrics is the server's own",
    "metrics_allow_remote": "would open a port on the server: its /metrics is the server's own",
    "metrics_linger": "would keep a port of the server open: its /metrics is the server's own, and keeps every "
                      "kept run",
    "nomad_workers": "would dispatch jobs to the server's Nomad with its token: the server sends the load itself",
    "nomad_driver": "goes with nomad_workers, which the server refuses",
    "help": "not an option",
    "version": "not an option",
}


class BodyError(Exception):
    """A posted canary the server refuses: one line, and the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class TargetAllowList:
    """Where a posted canary may send traffic (``--allow-target``): URL prefixes like
    ``http://service-a:3000/`` and hosts or networks like ``10.0.0.0/8`` or ``service-a``. Empty:
    anywhere (the default, since the server binds loopback unless given a token)."""

    entries: tuple[str, ...] = ()

    def allows(self, url: str) -> bool:
        if not self.entries:
            return True
        parts = _url_parts(url if "://" in url else f"http://{url}")
        if parts is None:
            return False
        host = parts[1]
        for entry in self.entries:
            if "://" in entry:
                if _under_prefix(parts, entry):
                    return True
                continue
            try:
                network = ipaddress.ip_network(entry, strict=False)
            except ValueError:
                if host == entry.lower():
                    return True
                continue
            try:
                if ipaddress.ip_address(host) in network:
                    return True
            except ValueError:
                continue
        return False


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _url_parts(url: str) -> tuple[str, str, int | None, str] | None:
    """(scheme, host, port, path) as compared: scheme and host lower-cased, the scheme's default
    port filled in; None for what is not a URL (a port that is not a number)."""
    try:
        split = urlsplit(url)
        scheme = split.scheme.lower()
        port = split.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:
        return None
    # The path as a server resolves it (%2e%2e and .. segments): /api/../admin is not under /api/.
    path = posixpath.normpath(unquote(split.path or "/"))
    path = "/" if path in (".", "//") else path + ("/" if split.path.endswith("/") and path != "/" else "")
    return scheme, (split.hostname or "").lower(), port, path


def _under_prefix(parts: tuple[str, str, int | None, str], entry: str) -> bool:
    """A URL-prefix entry allows its own origin (scheme, host and port, exactly: the text
    ``http://service-a`` is not a prefix of ``http://service-a.evil.example/``) and paths under its
    path, by whole segments (``/api`` allows ``/api`` and ``/api/x``, not ``/api-admin``)."""
    allowed = _url_parts(entry)
    if allowed is None or parts[:3] != allowed[:3]:
        return False
    base, path = allowed[3], parts[3]
    return base == "/" or path == base or path.startswith(base if base.endswith("/") else base + "/")


@dataclass(frozen=True)
class PostedCanary:
    """A checked posted canary: its options, and the body as normalised (the key of a run, for reuse)."""

    options: CanaryOptions
    given: dict[str, Any]  # the options as posted, keys normalised (shown back in GET)

    @property
    def key(self) -> str:
        """What makes two posts one canary (the gate reuses an ended run of the same key): the
        options as parsed, which are all a run is made from. So ``5``, ``"5"`` and ``"5.0"`` are
        one tolerance, as ``30`` and ``"30s"`` are one max_time: Flagger sends every value as a
        string, another client may send numbers."""
        return repr(self.options)

    def shown(self) -> dict[str, Any]:
        """The options as answered back: header values and the request body hidden (either may
        hold a credential for the target, like `Authorization: Bearer ...`)."""
        shown = dict(self.given)
        if "header" in shown:
            headers = shown["header"] if isinstance(shown["header"], list) else [shown["header"]]
            shown["header"] = [f"{str(h).partition(':')[0].strip()}: …" for h in headers]
        if "data" in shown:
            shown["data"] = f"… ({len(str(shown['data']).encode())} bytes)"
        return shown


def _canary_command() -> click.Command:
    from loadgen.commands.canary import canary

    return canary


def _option_keys(command: click.Command) -> dict[str, click.Option]:
    """``max_time`` -> the --max-time option, for each long option of the command."""
    keys: dict[str, click.Option] = {}
    for param in command.params:
        if isinstance(param, click.Option):
            for opt in param.opts:
                if opt.startswith("--"):
                    keys[opt[2:].replace("-", "_")] = param
    return keys


def parse_canary(body: object, allow: TargetAllowList = TargetAllowList(), max_time_limit: float | None = None,
                 strings_only: bool = False) -> PostedCanary:
    """``body`` (parsed JSON) -> :class:`PostedCanary`, or :class:`BodyError` with one line.

    ``strings_only``: every value is a string (Flagger's metadata is a map of strings): flags take
    "true"/"false", ``header`` one 'Name: value' string."""
    if not isinstance(body, Mapping):
        raise BodyError("the body must be a JSON object of canary options, like {\"expect\": \"85/15\", "
                        "\"target\": \"http://service-a:3000/hello_a\"}")
    command = _canary_command()
    keys = _option_keys(command)
    given: dict[str, Any] = {}
    argv: list[str] = []
    for raw_key, value in body.items():
        key = str(raw_key).replace("-", "_")
        if key in given:
            raise BodyError(f"{key!r} is given twice (as {raw_key!r} too)")
        if key in REFUSED_KEYS:
            raise BodyError(f"{key!r} is not accepted by the server: it {REFUSED_KEYS[key]}")
        if key not in keys:
            raise BodyError(f"unknown option {str(raw_key)[:60]!r}: the keys are `loadgen canary`'s options without "
                            "the dashes, like expect, target, map, tolerance, max_time")
        if value is None:
            continue  # JSON null: not given (the CLI's default)
        given[key] = value
        argv += _arguments(key, keys[key], value, strings_only)
    if "target" not in given:
        raise BodyError("'target' is required: the server judges the deployment you name (service-a's URL, like "
                        "http://service-a:3000/hello_a)")
    data = given.get("data")
    if isinstance(data, str) and data.startswith("@"):
        raise BodyError("'data' @FILE reads a file on the server: post the request body's text itself")
    try:
        ctx = command.make_context("canary", argv, resilient_parsing=False)
    except click.UsageError as exc:  # BadParameter, MissingParameter, ...: click's own one line
        raise BodyError(_api_words(exc.format_message())) from None
    from loadgen.commands.canary import canary_options

    try:
        options = canary_options(ctx.params)
        validate(options)
    except LoadgenError as exc:
        raise BodyError(exc.message) from None
    if max_time_limit is not None and options.max_time > max_time_limit:
        raise BodyError(f"max_time {options.max_time:g}s is over this server's limit of {max_time_limit:g}s "
                        "(loadgen serve --max-run-time)")
    for name, address in (("target", options.target), ("envoy_admin", options.envoy_admin)):
        if address is not None and not allow.allows(address):
            raise BodyError(f"{name} {address[:200]!r} is not in this server's allow-list (loadgen serve "
                            "--allow-target)", status=403)
    return PostedCanary(options, given)


def _arguments(key: str, option: click.Option, value: object, strings_only: bool) -> list[str]:
    """One option's command-line form (``--max-time=30s``), from a JSON value."""
    flag = f"--{key.replace('_', '-')}"
    if option.is_flag:
        if value is True or (isinstance(value, str) and value.strip().lower() == "true"):
            return [flag]
        if value is False or (isinstance(value, str) and value.strip().lower() == "false"):
            return []
        raise BodyError(f"{key!r} is a flag: give true or false, not {_brief(value)}")
    values: Sequence[object] = value if option.multiple and isinstance(value, list) else [value]
    if option.multiple and strings_only and isinstance(value, str):
        values = [v for v in value.split("\n") if v.strip()]  # several headers in one metadata string
    out = []
    for item in values:
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise BodyError(f"{key!r} takes a {'list of strings' if option.multiple else 'string or a number'}, "
                            f"not {_brief(item)}")
        out.append(f"{flag}={item}")
    return out


def _brief(value: object) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _api_words(message: str) -> str:
    """click's message names options as the CLI spells them; the same line suits the API's keys."""
    return message.replace("Missing option '--expect'", "'expect' is required (like \"85/15\" or \"consul\")")

