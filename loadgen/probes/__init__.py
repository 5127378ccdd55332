"""Time-to-apply probes: how long a config change in Consul takes to reach the data plane.

``measure_intentions`` and ``measure_propagation`` are what ``loadgen intentions`` and
``loadgen propagation`` call: each resolves its target (the local mesh, borrowed and put back,
or a deployment given by :class:`TargetOptions`), runs its probe and returns a typed result
whose ``to_json()`` is the command's ``--json``. The pure analyses (``analyse``,
``change_point``, ``cusum_alarm``) and the watchers they read are listed for tests and bench.
Names are imported on first use (PEP 562): the intention probe does not pay for the
propagation probe's statistics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loadgen.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from loadgen.probes.intention_phase import PhaseResult, analyse, outcome, when_all_sidecars_showed
    from loadgen.probes.intention_report import Distribution, IntentionCycle, IntentionsReport, ProtocolResult
    from loadgen.probes.intentions import IntentionProbe, measure_intentions, protocols_to_probe
    from loadgen.probes.propagation import (
        ChangeResult,
        PropagationProbe,
        PropagationResult,
        change_point,
        cusum_alarm,
        measure_propagation,
    )
    from loadgen.probes.target import ProbeTarget, TargetOptions, probe_target
    from loadgen.probes.watch import LOCAL_UPSTREAM, EnvoyWatcher, Observation, ProbeTraffic

_WHERE = {
    "PhaseResult": "intention_phase", "analyse": "intention_phase", "outcome": "intention_phase",
    "when_all_sidecars_showed": "intention_phase",
    "Distribution": "intention_report", "IntentionCycle": "intention_report", "IntentionsReport": "intention_report",
    "ProtocolResult": "intention_report",
    "IntentionProbe": "intentions", "measure_intentions": "intentions", "protocols_to_probe": "intentions",
    "ChangeResult": "propagation", "PropagationProbe": "propagation", "PropagationResult": "propagation",
    "change_point": "propagation", "cusum_alarm": "propagation", "measure_propagation": "propagation",
    "ProbeTarget": "target", "TargetOptions": "target", "probe_target": "target",
    "LOCAL_UPSTREAM": "watch", "EnvoyWatcher": "watch", "Observation": "watch", "ProbeTraffic": "watch",
}

__all__ = [
    "LOCAL_UPSTREAM",
    "ChangeResult",
    "Distribution",
    "EnvoyWatcher",
    "IntentionCycle",
    "IntentionProbe",
    "IntentionsReport",
    "Observation",
    "PhaseResult",
    "ProbeTarget",
    "ProbeTraffic",
    "PropagationProbe",
    "PropagationResult",
    "ProtocolResult",
    "TargetOptions",
    "analyse",
    "change_point",
    "cusum_alarm",
    "measure_intentions",
    "measure_propagation",
    "outcome",
    "probe_target",
    "protocols_to_probe",
    "when_all_sidecars_showed",
]

__getattr__, __dir__ = lazy_exports(__name__, _WHERE, globals())
