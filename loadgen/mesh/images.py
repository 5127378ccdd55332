"""Container images for the docker runtime, built here with no registry, tagged by their inputs.

* ``loadgen/base`` -- a Debian root filesystem made by debootstrap (python3, python3-aiohttp)
  and imported with the Docker API: nothing is pulled, so air-gapped users can build it too.
* ``loadgen/service-a``, ``loadgen/service-b`` -- the apps, FROM the base (their Dockerfiles sit
  next to them in services/).
* ``loadgen/consul-envoy`` -- the seed's sidecar image: the pinned consul and envoy binaries,
  FROM the base (consul/sidecar.Dockerfile).
* ``loadgen/pause`` -- the nomad runtime's ``--driver docker`` infra container, which holds each
  allocation's network namespace (nomad/pause.Dockerfile).

Every tag is a hash of the image's inputs (packages, Dockerfile, files, binaries, base tag), so
an image is rebuilt exactly when something it is made of changed, and never otherwise.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadgen.errors import EnvironmentProblem, ExitCode, LoadgenError
from loadgen.mesh import toolchain
from loadgen.paths import cache_dir, project_root

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = ("python3", "python3-aiohttp")
DOCKERD_HINT = "start it with: dockerd --bridge=none --iptables=false --ip-masq=false (scripts/dockerd.sh does)"


@dataclass(frozen=True)
class Built:
    name: str
    tag: str
    built: bool  # False: an image with these exact inputs already existed
    seconds: float


def docker_client() -> Any:
    try:
        import docker
    except ImportError:
        raise EnvironmentProblem("the docker Python package is missing (pip install docker)") from None
    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except Exception as exc:  # the SDK raises several types for "no daemon"
        raise EnvironmentProblem(f"the Docker engine is not reachable ({type(exc).__name__}); {DOCKERD_HINT}") from None
    return client


def content_hash(parts: Iterable[str | bytes | Path]) -> str:
    """sha256 over strings, bytes and files (directories walked in sorted order, paths included)."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            files = sorted(p for p in part.rglob("*") if p.is_file() and "__pycache__" not in p.parts) \
                if part.is_dir() else [part]
            for f in files:
                h.update(str(f.relative_to(part.parent)).encode())
                with f.open("rb") as fh:
                    for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                        h.update(chunk)
        else:
            h.update(part if isinstance(part, bytes) else part.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def _exists(client: Any, ref: str) -> bool:
    import docker

    try:
        client.images.get(ref)
        return True
    except docker.errors.ImageNotFound:
        return False


def build_base(client: Any, say: Callable[[str], None]) -> Built:
    tag = content_hash([SUITE, MIRROR, *BASE_PACKAGES])
    ref = f"loadgen/base:{tag}"
    if _exists(client, ref):
        return Built("base", ref, False, 0.0)
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise EnvironmentProblem("debootstrap is missing (apt-get install debootstrap); it builds the base image")
    start = time.monotonic()
    work = cache_dir() / "images" / f"rootfs-{tag}"
    shutil.rmtree(work, ignore_errors=True)
    work.parent.mkdir(parents=True, exist_ok=True)
    say(f"base image: debootstrap {SUITE} with {', '.join(BASE_PACKAGES)} (a minute or two)")
    proc = subprocess.run([debootstrap, "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", SUITE,
                           str(work), MIRROR], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise LoadgenError("debootstrap failed", ExitCode.ENVIRONMENT, (proc.stdout + proc.stderr)[-1500:])
    tarball = work.with_suffix(".tar")
    subprocess.run(["tar", "-C", str(work), "-cf", str(tarball), "."], check=True)
    with tarball.open("rb") as fh:
        client.api.import_image_from_data(fh.read(), repository="loadgen/base", tag=tag)
    tarball.unlink()
    shutil.rmtree(work, ignore_errors=True)
    return Built("base", ref, True, time.monotonic() - start)


def _build(client: Any, name: str, dockerfile: Path, files: dict[str, Path], base: str, extra: Iterable[str | Path],
           say: Callable[[str], None]) -> Built:
    tag = content_hash([base, dockerfile, *files.values(), *extra])
    ref = f"loadgen/{name}:{tag}"
    if _exists(client, ref):
        return Built(name, ref, False, 0.0)
    start = time.monotonic()
    say(f"{name} image: building from {dockerfile.relative_to(project_root())}")
    with tempfile.TemporaryDirectory(prefix=f"loadgen-{name}-") as ctx:
        root = Path(ctx)
        shutil.copy(dockerfile, root / "Dockerfile")
        for dest, src in files.items():
            target = root / dest
            target.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(src, target)
        client.images.build(path=str(root), tag=ref, buildargs={"BASE": base}, rm=True, forcerm=True)
    return Built(name, ref, True, time.monotonic() - start)


def build_all(say: Callable[[str], None] = lambda _m: None) -> list[Built]:
    """Build (or find) every image the docker runtime and the nomad runtime's docker driver need."""
    client = docker_client()
    root = project_root()
    base = build_base(client, say)
    out = [base]
    for app in ("service_a", "service_b"):
        out.append(_build(client, app.replace("_", "-"), root / "services" / app / "Dockerfile",
                          {"services/__init__.py": root / "services" / "__init__.py",
                           f"services/{app}": root / "services" / app}, base.tag, [], say))
    consul, envoy = toolchain.require("consul"), toolchain.require("envoy")
    out.append(_build(client, "consul-envoy", root / "consul" / "sidecar.Dockerfile",
                      {"consul": consul, "envoy": envoy}, base.tag, [], say))
    out.append(_build(client, "pause", root / "nomad" / "pause.Dockerfile", {}, base.tag, [], say))
    return out
