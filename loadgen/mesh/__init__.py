"""The harness: Consul and Nomad API clients, stages, runtimes, borrowing the local mesh,
subset mapping and toolchain lookup. The names below are what the rest of loadgen uses."""

from loadgen.mesh.consul_api import DEFAULT_CONSUL, ConsulClient
from loadgen.mesh.doctor import PartCheck, check_parts
from loadgen.mesh.local import borrowed_stage, down_for_user, up_for_user
from loadgen.mesh.runtime.base import SERVICE_A_URL, Runtime, Target
from loadgen.mesh.runtime.select import RUNTIMES, runtime_for
from loadgen.mesh.stages import Stage, StageBook, load_stages
from loadgen.mesh.subsets import SubsetMap, live_splitter, subset_map

__all__ = ["DEFAULT_CONSUL", "RUNTIMES", "SERVICE_A_URL", "ConsulClient", "PartCheck", "Runtime", "Stage",
           "StageBook", "SubsetMap", "Target", "borrowed_stage", "check_parts", "down_for_user", "live_splitter",
           "load_stages", "runtime_for", "subset_map", "up_for_user"]
