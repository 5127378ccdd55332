"""The embedded default runtime: Consul, the services and their Envoy sidecars as local processes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loadgen.mesh import procs
from loadgen.mesh.runtime.base import ComponentStatus, Progress, Runtime
from loadgen.mesh.runtime.recorded import describe_pid, recorded_components, stop_recorded
from loadgen.paths import project_root

if TYPE_CHECKING:
    # What starting and releasing need (httpx, Envoy admin) is imported there: `loadgen status`
    # and `loadgen down` with nothing up use neither.
    from loadgen.mesh.consul_api import ConsulClient
    from loadgen.mesh.stages import Instance, Stage
    from loadgen.mesh.state import MeshState

__all__ = ["ProcessRuntime"]


class ProcessRuntime(Runtime):
    """Runs every part of a stage as a local process, tracked in a run directory."""

    name = "process"

    def check_prerequisites(self) -> None:
        from loadgen.mesh import toolchain

        toolchain.require("envoy")

    def host_ports(self, stage: Stage) -> list[tuple[int, str]]:
        from loadgen.mesh.runtime.host_parts import host_ports_of_parts

        return host_ports_of_parts(stage)

    def start_workloads(self, stage: Stage, state: MeshState, consul: ConsulClient, grpc: str, consul_bin: Path,
                        say: Progress) -> None:
        from loadgen.mesh import toolchain
        from loadgen.mesh.runtime.host_parts import start_host_workloads

        start_host_workloads(self, stage, state, consul, grpc, consul_bin, toolchain.require("envoy"), say)

    def teardown(self, say: Progress) -> list[str]:
        state = self.run.load()
        if state.empty:
            self.run.state_file.unlink(missing_ok=True)
            say("nothing to stop")
            return []
        from loadgen.mesh import entries
        from loadgen.mesh.secure import forget_secure

        warnings = entries.release(state, say, self.run.path)
        stop_recorded(self.run, state, say, stop=self.stop_part, describe=self.describe)
        forget_secure(self.run.path, say)
        return warnings

    def components(self, state: MeshState, checks: dict[str, dict[str, Any]],
                   consul_reachable: bool) -> list[ComponentStatus]:
        return recorded_components(state, checks, consul_reachable, self.describe)

    # -- HostParts: how one part starts, stops and is named ----------------------------------
    def launch_app(self, inst: Instance) -> procs.ProcRecord:
        argv = [sys.executable, "-m", f"services.{inst.app}.app"]
        return procs.spawn(inst.id, argv, self.run.log(inst.id), inst.app_env(), project_root(), inst.port)

    def launch_sidecar(self, inst: Instance, args: list[str], consul_bin: Path, envoy_bin: Path
                       ) -> procs.ProcRecord:
        name = f"{inst.id}-sidecar"
        argv = [str(consul_bin), "connect", "envoy", *args, "-envoy-binary", str(envoy_bin)]
        return procs.spawn(name, argv, self.run.log(name), port=inst.envoy_admin_port)

    def stop_part(self, rec: procs.ProcRecord) -> None:
        procs.stop(rec)

    def describe(self, rec: procs.ProcRecord) -> str:
        return describe_pid(rec)

