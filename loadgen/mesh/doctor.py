"""`loadgen doctor`'s checks: is each real part here, which version, and how to fix it."""

from __future__ import annotations

from dataclasses import dataclass, field

from loadgen.errors import LoadgenError
from loadgen.mesh import toolchain


@dataclass(frozen=True)
class PartCheck:
    """One part and what was found of it (the fields are `doctor --json`'s keys)."""

    part: str
    required: bool  # every runtime needs it (a missing one exits 5)
    found: str | None  # where it is: a path, a socket
    source: str | None  # how it was found: PATH, cache, wheel, socket, ...
    version: str | None
    wanted: str  # the version series that works, or what is needed
    compatible: bool
    fix: str | None  # the command that fixes it, when not compatible
    problems: list[str] = field(default_factory=list)


def check_parts() -> list[PartCheck]:
    """Consul, Envoy, Nomad, Go (to build them), the Docker engine and bridge networking."""
    rows = []
    for name in toolchain.PARTS:
        f = toolchain.find(name)
        rows.append(PartCheck(
            part=name, required=f.part.required, found=str(f.path) if f.path else None,
            source=f.source or None, version=f.version, wanted=f.part.series,
            compatible=f.ok, fix=None if f.ok else f.part.fix, problems=f.problems,
        ))
    rows += [_go(), _docker(), _bridge_networking()]
    return rows


def _go() -> PartCheck:
    path, version = toolchain.go_version()
    return PartCheck(part="go", required=False, found=path, source="PATH" if path else None, version=version,
                     wanted="any", compatible=path is not None,
                     fix=None if path else "apt-get install golang-go (only needed to build consul and nomad)")


def _docker() -> PartCheck:
    """The Docker engine: needed by the docker runtime only, so not required."""
    from loadgen.mesh.images import DOCKERD_HINT, docker_client

    try:
        version = docker_client().version().get("Version")
        return PartCheck(part="docker engine", required=False, found="unix:///var/run/docker.sock",
                         source="socket", version=version, wanted="any", compatible=True, fix=None)
    except LoadgenError as exc:
        return PartCheck(part="docker engine", required=False, found=None, source=None, version=None,
                         wanted="any", compatible=False, fix=DOCKERD_HINT, problems=[exc.message])


def _bridge_networking() -> PartCheck:
    """Root, CNI plugins and iptables: needed by the nomad runtime only, so not required."""
    from loadgen.mesh.nomad_agent import networking_problems

    problems = networking_problems()
    return PartCheck(part="bridge networking", required=False, found="/usr/lib/cni" if not problems else None,
                     source="CNI", version=None, wanted="root + CNI", compatible=not problems,
                     fix=problems[0] if problems else None, problems=problems[1:])
