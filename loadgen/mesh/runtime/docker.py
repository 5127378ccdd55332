"""The docker runtime: the services and their Envoy sidecars as containers on the host network.

Like the seed's setup: service-a, service-b (twice) and a consul-envoy sidecar per service, each
a container with ``--network host``; the Consul agent is the same dev agent (a process) as in
the process runtime, or ``--consul ADDR``. Everything else -- registration, config entries,
liveness checks, down -- is the process runtime's, unchanged: only how a part is started,
stopped and read differs. Containers carry labels, so ``down`` removes exactly what loadgen
started (and nothing else a user runs), even when the run directory was lost.

A container is recorded with the host pid of its main process, so liveness and port ownership
checks work the same way as for processes.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import psutil

from loadgen.errors import UnreachableError
from loadgen.mesh import procs
from loadgen.mesh.images import build_all, docker_client
from loadgen.mesh.runtime.process import ProcessRuntime
from loadgen.mesh.stages import Instance

LABEL = "loadgen.mesh"


class DockerRuntime(ProcessRuntime):
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
                                argv=[image], log=f"docker logs {name}", port=port, container=box.id)

    def _launch_app(self, inst: Instance) -> procs.ProcRecord:
        image = self.tags()[inst.app.replace("_", "-")]
        return self._run(inst.id, image, inst.port, environment=inst.app_env())

    def _launch_sidecar(self, inst: Instance, args: list[str], consul_bin: object, envoy_bin: object
                        ) -> procs.ProcRecord:
        return self._run(f"{inst.id}-sidecar", self.tags()["consul-envoy"], inst.envoy_admin_port, command=args)

    def _stop(self, rec: procs.ProcRecord) -> None:
        if rec.container is None:
            procs.stop(rec)
            return
        with contextlib.suppress(Exception):
            box = self.client.containers.get(rec.container)
            box.stop(timeout=10)
            box.remove(force=True)

    def _tail(self, rec: procs.ProcRecord, lines: int = 15) -> str:
        if rec.container is None:
            return procs.tail(rec.log, lines)
        try:
            return self.client.containers.get(rec.container).logs(tail=lines).decode(errors="replace")
        except Exception as exc:
            return f"(no logs: {type(exc).__name__})"

    def _describe(self, rec: procs.ProcRecord) -> str:
        return f"container {rec.container[:12]}" if rec.container else f"pid {rec.pid}"

    def down(self, progress: Any = None) -> list[str]:
        warnings = super().down(progress)
        # Anything labelled for this run directory that the state no longer knows about.
        with contextlib.suppress(Exception):
            for box in self.client.containers.list(all=True, filters={"label": f"{LABEL}={self.run.path}"}):
                box.remove(force=True)
        return warnings
