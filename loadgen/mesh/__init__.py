"""The harness: Consul API, stages, runtimes and toolchain lookup.

Callers outside mesh/ use these names; the runtimes' contract is loadgen.mesh.runtime.base.
"""

from loadgen.mesh.consul_api import DEFAULT_CONSUL, ConsulClient
from loadgen.mesh.local import borrowed_stage
from loadgen.mesh.runtime.base import SERVICE_A_URL, Runtime, Target
from loadgen.mesh.runtime.select import runtime_for
from loadgen.mesh.stages import Stage, StageBook, load_stages
from loadgen.mesh.subsets import SubsetMap, live_splitter, subset_map

__all__ = [
    "DEFAULT_CONSUL", "SERVICE_A_URL", "ConsulClient", "Runtime", "Stage", "StageBook", "SubsetMap", "Target",
    "borrowed_stage", "live_splitter", "load_stages", "runtime_for", "subset_map",
]
