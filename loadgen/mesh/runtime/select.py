"""Which runtime runs (or should run) the local mesh.

Light to import (the runtimes are imported when one is chosen): ``loadgen up --help`` lists
:data:`RUNTIMES` and :data:`NOMAD_DRIVERS` from here.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from loadgen.errors import EnvironmentProblem, UsageError
from loadgen.paths import run_dir

if TYPE_CHECKING:
    from loadgen.mesh.runtime.base import Runtime
    from loadgen.mesh.state import RunDir

RUNTIMES = ("process", "docker", "nomad")
# The nomad runtime's task drivers for the services and their sidecars (the first is its default).
NOMAD_DRIVERS = ("raw_exec", "docker")


def runtime_for(name: str | None = None, run: RunDir | None = None, **kwargs: Any) -> Runtime:
    """The runtime ``name``; without one, the runtime the running mesh was brought up with, or
    when nothing runs, $LOADGEN_RUNTIME (default: process)."""
    from loadgen.mesh.state import RunDir

    run = run or RunDir(run_dir())
    state = run.load()
    current = None if state.empty else state.runtime
    if name is not None and current is not None and name != current:
        raise EnvironmentProblem(f"the local mesh runs on the {current} runtime; `loadgen down` before "
                                 f"bringing it up on {name}")
    default = os.environ.get("LOADGEN_RUNTIME") or "process"
    if default not in RUNTIMES:
        raise EnvironmentProblem(f"LOADGEN_RUNTIME={default} is not one of {', '.join(RUNTIMES)}")
    chosen = name or current or default
    driver = kwargs.pop("driver", None)
    if driver and chosen != "nomad":
        raise UsageError(f"--driver is for the nomad runtime (Nomad task drivers), not the {chosen} runtime")
    if chosen == "docker":
        from loadgen.mesh.runtime.docker import DockerRuntime

        return DockerRuntime(run, **kwargs)
    if chosen == "nomad":
        from loadgen.mesh.runtime.nomad import NomadRecord, NomadRuntime

        running = None if state.empty else NomadRecord(state).driver
        if driver and running and driver != running:
            raise EnvironmentProblem(f"the local mesh's Nomad jobs run with the {running} driver; `loadgen down` "
                                     f"before bringing them up with {driver}")
        return NomadRuntime(run, driver=driver or running or "raw_exec", **kwargs)
    from loadgen.mesh.runtime.process import ProcessRuntime

    return ProcessRuntime(run, **kwargs)
