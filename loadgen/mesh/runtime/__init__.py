"""Runtimes bring a :class:`~loadgen.mesh.stages.Stage` up and report on it."""

from loadgen.mesh.runtime.base import ComponentStatus, MeshStatus, Runtime, Target

__all__ = ["ComponentStatus", "MeshStatus", "Runtime", "Target"]
