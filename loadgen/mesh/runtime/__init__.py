"""Runtimes bring a :class:`~loadgen.mesh.stages.Stage` up and report on it.

:class:`Runtime` (base.py) is the contract; process, docker and nomad implement it as peers.
"""

from loadgen.mesh.runtime.base import SERVICE_A_URL, ComponentStatus, MeshStatus, Runtime, Target
from loadgen.mesh.runtime.select import RUNTIMES, runtime_for

__all__ = ["RUNTIMES", "SERVICE_A_URL", "ComponentStatus", "MeshStatus", "Runtime", "Target",
           "runtime_for"]
