"""The harness: Consul and Nomad API clients, stages, runtimes, borrowing the local mesh,
subset mapping and toolchain lookup. The names below are what the rest of loadgen uses.

They are imported on first use (PEP 562), not here: `loadgen stages` reads stage files and
`loadgen down` on an empty machine reads the run state, and neither should pay for every
runtime, the Consul and Nomad clients (httpx) and the liveness checks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loadgen.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from loadgen.mesh.consul_api import ConsulClient
    from loadgen.mesh.consul_settings import DEFAULT_CONSUL
    from loadgen.mesh.doctor import PartCheck, check_parts
    from loadgen.mesh.local import borrowed_stage, down_for_user, up_for_user
    from loadgen.mesh.runtime.base import SERVICE_A_URL, Runtime, Target
    from loadgen.mesh.runtime.select import RUNTIMES, runtime_for
    from loadgen.mesh.stages import Stage, StageBook, load_stages
    from loadgen.mesh.subsets import SubsetMap, live_splitter, subset_map

_WHERE = {
    "ConsulClient": "consul_api",
    "DEFAULT_CONSUL": "consul_settings",
    "PartCheck": "doctor", "check_parts": "doctor",
    "borrowed_stage": "local", "down_for_user": "local", "up_for_user": "local",
    "SERVICE_A_URL": "runtime.base", "Runtime": "runtime.base", "Target": "runtime.base",
    "RUNTIMES": "runtime.select", "runtime_for": "runtime.select",
    "Stage": "stages", "StageBook": "stages", "load_stages": "stages",
    "SubsetMap": "subsets", "live_splitter": "subsets", "subset_map": "subsets",
}

__all__ = ["DEFAULT_CONSUL", "RUNTIMES", "SERVICE_A_URL", "ConsulClient", "PartCheck", "Runtime", "Stage",
           "StageBook", "SubsetMap", "Target", "borrowed_stage", "check_parts", "down_for_user", "live_splitter",
           "load_stages", "runtime_for", "subset_map", "up_for_user"]

__getattr__, __dir__ = lazy_exports(__name__, _WHERE, globals())
