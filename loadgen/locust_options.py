"""The Locust plugin's options, checked when Locust starts (its ``init`` event, before the first
user spawns): a bad ``--expect``, ``--map``, ``--tolerance``, ``--confidence``, ``--host``,
``--envoy-admin`` or output path is one line and exit 2 (errors.ExitCode.USAGE) at once, never
after a whole ``-t`` of load.

Also where the plugin decides which Envoy admin to read when none is given: service-a's sidecar
on the local mesh only when the test is aimed at the local mesh's service-a (see
:func:`aimed_at_local_mesh`); against any other deployment a local sidecar says nothing about
the proxies in the path, and reading it could report a false stale proxy.

Pure except for :func:`local_mesh_up` (reads the run directory's state.json) and the output
checks (report.files.check_output probes the directories).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from loadgen.addresses import check_admin_address, check_consul_address
from loadgen.canary.expectation import mapping_from_option
from loadgen.canary.options import CanaryOptions, validate
from loadgen.errors import LoadgenError, UsageError
from loadgen.report.files import check_output
from loadgen.shown import shown
from loadgen.stats import JudgeConfig, Tolerance

__all__ = ["LOCAL_ENVOY_ADMIN", "LOCAL_SERVICE_A", "PluginSettings", "aimed_at_local_mesh", "compares",
           "local_mesh_up", "settings_from"]

LOCAL_SERVICE_A = "http://127.0.0.1:3000"  # MeshUser's default host: the local mesh's service-a
LOCAL_ENVOY_ADMIN = "127.0.0.1:19000"  # service-a's sidecar admin on the local mesh (a fixed port)
_LOCAL_HOSTS = ("127.0.0.1", "localhost")
_LOCAL_PORT = 3000
PATH = "/hello_a"  # what MeshUser requests under the host


@dataclass(frozen=True)
class PluginSettings:
    """What the plugin was asked to do, every option checked."""

    expect: str | None
    config: JudgeConfig
    map_text: str | None
    consul: str
    envoy_admin: str | None  # None: no Envoy column
    json_path: Path | None
    junit_path: Path | None
    stop_on_verdict: bool
    # Is the canary worse? (canary.worse): --latency, --latency-margin, --error-margin, --baseline
    latency: str | None = None
    latency_margin: str | None = None
    error_margin: str | None = None
    baseline: str | None = None

    @property
    def compares(self) -> bool:
        return self.latency is not None or self.error_margin is not None


def settings_from(opts: Any, host: str, local_mesh: bool | None = None) -> PluginSettings:
    """Check Locust's parsed options (the plugin's and the outputs it shares the disk with) for a
    run against ``host``. Raises LoadgenError (UsageError for bad input) with one line.

    ``local_mesh``: whether a local mesh is up (None: look at the run directory, only when the
    answer matters, i.e. no --envoy-admin was given and the host is the local service-a's).
    Workers check everything too: the children of ``--processes`` get the master's options, and
    one that refused nothing would wait a minute for a master that has already gone."""
    try:
        tolerance = Tolerance.parse(opts.tolerance)
    except LoadgenError as exc:
        raise UsageError(f"--tolerance: {exc.message}") from None
    confidence = float(opts.confidence)
    if not math.isfinite(confidence) or not 50 < confidence < 100:
        raise UsageError(f"--confidence must be a percentage above 50 and below 100, like 99; got {confidence:g}")
    config = JudgeConfig(tolerance=tolerance, alpha=1 - confidence / 100)
    expect = (getattr(opts, "expect", "") or "").strip() or None
    map_text = opts.map if opts.map else None
    if map_text is not None and not map_text.strip():
        raise UsageError("--map is empty: give APP_ID=SUBSET pairs like 1=v1,2=v2, or leave it out to read the map "
                         "from Consul")
    target = _target_url(host)
    worse = {key: _given(opts, key) for key in ("latency", "latency_margin", "error_margin", "baseline")}
    if expect is not None:
        # The same checks as `loadgen canary` makes before it sends anything (canary.options).
        validate(CanaryOptions(expect=expect, target=target, mapping=map_text, config=config, **worse))
    else:
        if any(value is not None for value in worse.values()):
            raise UsageError("--latency, --latency-margin, --error-margin and --baseline compare the canary with the "
                             "baseline of a split: give the split with --expect (e.g. 85/15)")
        if map_text is not None:
            mapping_from_option(map_text)
    check_consul_address(opts.consul)
    json_path, junit_path = _outputs(opts)
    return PluginSettings(expect=expect, config=config, map_text=map_text, consul=opts.consul,
                          envoy_admin=_envoy_admin(opts.envoy_admin, host, local_mesh),
                          json_path=json_path, junit_path=junit_path, stop_on_verdict=bool(opts.stop_on_verdict),
                          **worse)


def compares(opts: Any) -> bool:
    """The options ask to compare canaries with the baseline (a worker reads this at each test
    start: Locust hands workers the master's options only then, with the spawn message)."""
    return _given(opts, "latency") is not None or _given(opts, "error_margin") is not None


def _given(opts: Any, key: str) -> str | None:
    """An option of the comparisons: None when not given (or empty)."""
    value = getattr(opts, key, None)
    return (value.strip() or None) if isinstance(value, str) else None


def _target_url(host: str) -> str:
    """The URL MeshUser requests, checked as `loadgen canary --target` checks its URL."""
    parts = urlsplit(host)
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise UsageError(f"--host {shown(host)} must be a base URL like http://10.0.0.5:3000 (the plugin requests "
                         f"{PATH} under it)")
    return host.rstrip("/") + PATH


def aimed_at_local_mesh(host: str) -> bool:
    """The host is the local mesh's service-a: http://127.0.0.1:3000 or http://localhost:3000."""
    try:
        parts = urlsplit(host)
        port = parts.port
    except ValueError:
        return False
    return (parts.scheme == "http" and parts.hostname in _LOCAL_HOSTS and port == _LOCAL_PORT
            and parts.path in ("", "/"))


def local_mesh_up() -> bool:
    """A local mesh is up: the run directory's state.json names a stage with parts running."""
    from loadgen.mesh.state import RunDir
    from loadgen.paths import run_dir

    try:
        state = RunDir(run_dir()).load()
    except LoadgenError:  # an unreadable state: nothing to take a sidecar from
        return False
    return state.stage is not None and not state.empty


def _envoy_admin(given: str | None, host: str, local_mesh: bool | None) -> str | None:
    """--envoy-admin as given (empty: none); not given: the local sidecar only for the local mesh."""
    if given is None:
        if not aimed_at_local_mesh(host):
            return None
        up = local_mesh_up() if local_mesh is None else local_mesh
        return LOCAL_ENVOY_ADMIN if up else None
    if not given.strip():
        return None
    return check_admin_address(given).removeprefix("http://").rstrip("/")


def _outputs(opts: Any) -> tuple[Path | None, Path | None]:
    """--canary-json and --canary-junit: writable (checked now, not after the run) and not the same
    file as each other or as an output of Locust's own."""
    paths: dict[str, str] = {}
    mine: list[Path | None] = []
    for option, value in (("--canary-json", opts.canary_json), ("--canary-junit", opts.canary_junit)):
        if not value:
            mine.append(None)
            continue
        check_output(value)
        _not_twice(paths, option, value)
        mine.append(Path(value))
    # Locust's own files: only a clash with ours is the plugin's business.
    # (Locust writes --json-file's name with .json added; --html may hold {u}/{r}/{t} tags.)
    json_file = getattr(opts, "json_file", None)
    for option, value in (("--json-file", f"{json_file}.json" if json_file else None),
                          ("--html", getattr(opts, "html_file", None)), ("--logfile", getattr(opts, "logfile", None))):
        if value and paths:
            _not_twice(paths, option, value)
    return mine[0], mine[1]


def _not_twice(paths: dict[str, str], option: str, value: str) -> None:
    key = os.path.realpath(value) if value != "-" else "-"
    for other, seen in paths.items():
        if seen == key:
            raise UsageError(f"{option} and {other} name the same file {shown(value)}: each output needs its own path")
    paths[option] = key
