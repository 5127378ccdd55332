"""``loadgen canary``: drive traffic through service-a and judge the split of service-b's subsets.

One core, :class:`SplitCheck` (expectation + judge + tallies), driven by a live run
(:func:`run_live`), a replay of a recording (:func:`replay`) and the Locust plugin
(loadgen.locust); all of them produce a :class:`CanaryResult` with one JSON schema.
"""

from loadgen.canary.check import SplitCheck
from loadgen.canary.expectation import (
    Expectation,
    expects_consul,
    mapping_from_option,
    resolve_expectation,
    resolve_mapping,
    resolve_spec,
)
from loadgen.canary.live import LOOK_EVERY_S, run_live
from loadgen.canary.options import DEFAULT_WARMUP_S, CanaryOptions, budget, reachability, validate
from loadgen.canary.progress import Snapshot
from loadgen.canary.replay import REPLAY_LOOK_EVERY, replay
from loadgen.canary.result import CanaryResult
from loadgen.canary.split_tally import SplitTally

__all__ = [
    "DEFAULT_WARMUP_S", "LOOK_EVERY_S", "REPLAY_LOOK_EVERY", "CanaryOptions", "CanaryResult", "Expectation",
    "Snapshot", "SplitCheck", "SplitTally", "budget", "expects_consul", "mapping_from_option", "reachability",
    "replay", "resolve_expectation", "resolve_mapping", "resolve_spec", "run_live", "validate",
]
