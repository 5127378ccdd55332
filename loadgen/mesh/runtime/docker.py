"""The docker runtime: the services and their Envoy sidecars as containers on the host network.

Like the seed's setup: service-a, service-b (twice) and a consul-envoy sidecar per service, each
a container with ``--network host``; the Consul agent is the same dev agent (a process) as in
the process runtime, or ``--consul ADDR``. Registration, config entries, liveness checks and
`down` are the shared ones (loadgen/mesh/runtime/host_parts.py, recorded.py, base.py): only
how a part is started, stopped and read differs. Containers carry labels, so ``down`` removes
exactly what loadgen started (and nothing else a user runs), even when the run directory was lost.

A container is recorded with the host pid of its main process, so liveness and port ownership
checks work the same way as for processes.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import psutil

from loadgen.errors import UnreachableError
from loadgen.mesh import entries, procs, toolchain
from loadgen.mesh.consul_api import ConsulClient
from loadgen.mesh.images import build_all, docker_client
from loadgen.mesh.runtime.base import ComponentStatus, Progress, Runtime
from loadgen.mesh.runtime.host_parts import host_ports_of_parts, start_host_workloads
from loadgen.mesh.runtime.recorded import recorded_components, stop_recorded
from loadgen.mesh.secure import SecureFiles, forget_secure
from loadgen.mesh.stages import Instance, Stage
from loadgen.mesh.state import MeshState

LABEL = "loadgen.mesh"


class DockerRuntime(Runtime):
    name = "docker"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._client: Any = None
        self._tags: dict[str, str] | None = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = docker_client()
        return self._client

    def tags(self) -> dict[str, str]:
        if self._tags is None:
            self._tags = {b.name: b.tag for b in build_all()}  # cached: instant when inputs are unchanged
        return self._tags

    # -- the runtime contract ------------------------------------------------------------------
    def check_prerequisites(self) -> None:
        # The sidecar image carries Envoy; the pinned one is what it is built from.
        toolchain.require("envoy")

    def host_ports(self, stage: Stage) -> list[tuple[int, str]]:
        return host_ports_of_parts(stage)  # host networking: the same ports as processes

    def start_workloads(self, stage: Stage, state: MeshState, consul: ConsulClient, grpc: str, consul_bin: Path,
                        say: Progress) -> None:
        start_host_workloads(self, stage, state, consul, grpc, consul_bin, toolchain.require("envoy"), say)

    def teardown(self, say: Progress) -> list[str]:
        state = self.run.load()
        warnings: list[str] = []
        if state.empty:
            self.run.state_file.unlink(missing_ok=True)
            say("nothing to stop")
        else:
            warnings = entries.release(state, say, self.run.path)
            stop_recorded(self.run, state, say, stop=self.stop_part, describe=self.describe)
            forget_secure(self.run.path, say)
        # Anything labelled for this run directory that the state no longer knows about.
        with contextlib.suppress(Exception):
            for box in self.client.containers.list(all=True, filters={"label": f"{LABEL}={self.run.path}"}):
                box.remove(force=True)
        return warnings

    def components(self, state: MeshState, checks: dict[str, dict[str, Any]],
                   consul_reachable: bool) -> list[ComponentStatus]:
        return recorded_components(state, checks, consul_reachable, self.describe)

    def part_log(self, rec: procs.ProcRecord, lines: int = 15) -> str:
        if rec.container is None:
            return procs.tail(rec.log, lines)
        try:
            return self.client.containers.get(rec.container).logs(tail=lines).decode(errors="replace")
        except Exception as exc:
            return f"(no logs: {type(exc).__name__})"

    # -- HostParts: how one part starts, stops and is named ----------------------------------
    def launch_app(self, inst: Instance) -> procs.ProcRecord:
        image = self.tags()[inst.app.replace("_", "-")]
        return self._run(inst.id, image, inst.port, environment=inst.app_env())

    def launch_sidecar(self, inst: Instance, args: list[str], consul_bin: Path, envoy_bin: Path
                       ) -> procs.ProcRecord:
        # A secure mesh's CA and token files, at the same path and read-only (the container runs
        # as root, as the host's files are owner-only).
        secure = SecureFiles(self.run.path).dir
        volumes = {str(secure): {"bind": str(secure), "mode": "ro"}} if "-token-file" in args else None
        return self._run(f"{inst.id}-sidecar", self.tags()["consul-envoy"], inst.envoy_admin_port, command=args,
                         volumes=volumes)

    def stop_part(self, rec: procs.ProcRecord) -> None:
        if rec.container is None:
            procs.stop(rec)
            return
        with contextlib.suppress(Exception):
            box = self.client.containers.get(rec.container)
            box.stop(timeout=10)
            box.remove(force=True)

    def describe(self, rec: procs.ProcRecord) -> str:
        return f"container {rec.container[:12]}" if rec.container else f"pid {rec.pid}"

    # -- containers ------------------------------------------------------------------------
    def _labels(self, component: str) -> dict[str, str]:
        return {LABEL: str(self.run.path), f"{LABEL}.component": component}

    def _run(self, component: str, image: str, port: int | None, **kwargs: Any) -> procs.ProcRecord:
        name = f"loadgen-{component}"
        with contextlib.suppress(Exception):  # a leftover container of the same name from a lost run
            self.client.containers.get(name).remove(force=True)
        box = self.client.containers.run(image, name=name, detach=True, network_mode="host",
                                         labels=self._labels(component), **kwargs)
        deadline = time.monotonic() + 20
        pid = 0
        while time.monotonic() < deadline:
            box.reload()
            pid = int(box.attrs["State"].get("Pid") or 0)
            if pid or box.status == "exited":
                break
            time.sleep(0.05)
        if not pid:
            logs = box.logs(tail=15).decode(errors="replace")
            raise UnreachableError(f"container {name} did not start", logs)
        return procs.ProcRecord(name=component, pid=pid, create_time=psutil.Process(pid).create_time(),
                                argv=[image], log=f"docker logs {name}", port=port, container=box.id,
                                start_ticks=procs.start_ticks(pid))
