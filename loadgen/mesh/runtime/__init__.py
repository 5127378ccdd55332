"""Runtimes bring a :class:`~loadgen.mesh.stages.Stage` up and report on it.

:class:`Runtime` (base.py) is the contract; process, docker and nomad implement it as peers.
The names below are imported on first use (PEP 562): ``loadgen up --help`` needs the list of
runtimes (select.py), not the contract and what it imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loadgen.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from loadgen.mesh.runtime.base import SERVICE_A_URL, ComponentStatus, MeshStatus, Runtime, Target
    from loadgen.mesh.runtime.select import RUNTIMES, runtime_for

_WHERE = {
    "SERVICE_A_URL": "base", "ComponentStatus": "base", "MeshStatus": "base", "Runtime": "base", "Target": "base",
    "RUNTIMES": "select", "runtime_for": "select",
}

__all__ = ["RUNTIMES", "SERVICE_A_URL", "ComponentStatus", "MeshStatus", "Runtime", "Target",
           "runtime_for"]

__getattr__, __dir__ = lazy_exports(__name__, _WHERE, globals())
