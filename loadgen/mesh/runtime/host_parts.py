"""Starting a stage's apps and Envoy sidecars as parts on this host (the process runtime's
processes, the docker runtime's containers): each one recorded in the run state, registered
with Consul by loadgen, and waited for (the app's /healthz, the sidecar's Envoy LIVE).

A runtime using this implements :class:`HostParts`: how one part starts, stops and is named.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Protocol

import httpx

from loadgen.errors import UnreachableError
from loadgen.interrupts import signals_held
from loadgen.mesh import envoy_admin, procs
from loadgen.mesh.consul_api import ConsulClient
from loadgen.mesh.runtime.base import Progress
from loadgen.mesh.secure import SecureFiles
from loadgen.mesh.stages import Instance, Stage
from loadgen.mesh.state import MeshState, RunDir


class HostParts(Protocol):
    run: RunDir

    def launch_app(self, inst: Instance) -> procs.ProcRecord:
        """Start the instance's app, listening on ``inst.port`` with ``inst.app_env()``."""
        ...

    def launch_sidecar(self, inst: Instance, args: list[str], consul_bin: Path, envoy_bin: Path
                       ) -> procs.ProcRecord:
        """Start ``consul connect envoy ARGS`` for the instance."""
        ...

    def part_log(self, rec: procs.ProcRecord, lines: int = 15) -> str: ...

    def describe(self, rec: procs.ProcRecord) -> str:
        """How people see the part: "pid 123", "container 3f2a…"."""
        ...


def start_host_workloads(parts: HostParts, stage: Stage, state: MeshState, consul: ConsulClient, grpc: str,
                         consul_bin: Path, envoy_bin: Path, say: Progress) -> None:
    """Apps (waited for on /healthz), their registrations, then their sidecars (waited for LIVE)."""
    _start_apps(parts, stage, state, say)
    _register(parts.run, stage, state, consul, say)
    _start_sidecars(parts, stage, state, consul, grpc, consul_bin, envoy_bin, say)


def host_ports_of_parts(stage: Stage) -> list[tuple[int, str]]:
    """The host ports the stage's parts listen on when each runs on the host network."""
    wanted: list[tuple[int, str]] = []
    for inst in stage.instances:
        wanted.append((inst.port, inst.id))
        wanted.append((inst.envoy_admin_port, f"{inst.id}'s Envoy admin"))
        wanted += [(p, f"{inst.id}'s upstream listener") for p in inst.upstream_ports()]
        if inst.sidecar_port:
            wanted.append((inst.sidecar_port, f"{inst.id}'s sidecar listener"))
    return wanted


def _start_apps(parts: HostParts, stage: Stage, state: MeshState, say: Progress) -> None:
    started: list[Instance] = []
    for inst in stage.instances:
        rec = state.processes.get(inst.id)
        if rec and procs.alive(rec):
            continue
        with signals_held():
            rec = parts.launch_app(inst)
            state.processes[inst.id] = rec
            parts.run.save(state)
        started.append(inst)
        say(f"started {inst.id} on :{inst.port} ({parts.describe(rec)})")
    for inst in started:
        _wait_http(parts, inst.id, f"http://127.0.0.1:{inst.port}/healthz", state)


def _wait_http(parts: HostParts, name: str, url: str, state: MeshState, timeout: float = 20.0) -> None:
    rec = state.processes[name]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not procs.alive(rec):
            raise UnreachableError(f"{name} exited during start-up", parts.part_log(rec))
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise UnreachableError(f"{name} did not answer {url} within {timeout:.0f}s", parts.part_log(rec))


def _register(run: RunDir, stage: Stage, state: MeshState, consul: ConsulClient, say: Progress) -> None:
    for inst in stage.instances:
        consul.register_service(inst.registration)
        if inst.id not in state.services:
            state.services.append(inst.id)
    run.save(state)
    say(f"registered {', '.join(i.id for i in stage.instances)} with Consul")


def _start_sidecars(parts: HostParts, stage: Stage, state: MeshState, consul: ConsulClient, grpc: str,
                    consul_bin: Path, envoy_bin: Path, say: Progress) -> None:
    started: list[Instance] = []
    for inst in stage.instances:
        name = f"{inst.id}-sidecar"
        rec = state.processes.get(name)
        if rec and procs.alive(rec):
            continue
        args = [
            "-sidecar-for", inst.id,
            "-admin-bind", f"127.0.0.1:{inst.envoy_admin_port}",
            "-http-addr", consul.address,
            "-grpc-addr", grpc,
        ]
        if state.secure:  # its own service-identity token, and the CA both Consul ports present
            files = SecureFiles(parts.run.path)
            args += ["-token-file", str(files.token_file(inst.service)), "-ca-file", str(files.ca),
                     "-grpc-ca-file", str(files.ca)]
        with signals_held():
            rec = parts.launch_sidecar(inst, args, consul_bin, envoy_bin)
            state.processes[name] = rec
            parts.run.save(state)
        started.append(inst)
        say(f"started Envoy sidecar for {inst.id} (admin :{inst.envoy_admin_port}, {parts.describe(rec)})")
    deadline = time.monotonic() + 30
    for inst in started:
        rec = state.processes[f"{inst.id}-sidecar"]
        while not envoy_admin.ready(inst.envoy_admin_port):
            if not procs.alive(rec):
                how = procs.how_it_ended(rec)
                raise UnreachableError(f"the Envoy sidecar of {inst.id} exited{f' ({how})' if how else ''}",
                                       parts.part_log(rec))
            if time.monotonic() > deadline:
                raise UnreachableError(
                    f"the Envoy sidecar of {inst.id} is not LIVE after 30s: it got no config from Consul's "
                    f"xDS at {grpc} (log: {rec.log})",
                    parts.part_log(rec),
                )
            time.sleep(0.1)
