"""A canary's result -- one type and one JSON schema, whether ``loadgen canary`` or the Locust
plugin produced it (``source`` says which)."""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loadgen import interrupts
from loadgen.errors import ExitCode, exit_code
from loadgen.load.health import TARGET_HELD_SLOTS
from loadgen.load.tally import Tally
from loadgen.mesh.subsets import SubsetMap
from loadgen.report.junit import TestCase, TestSuite, render
from loadgen.stats import SampleSizePlan, SplitSpec, Verdict, VerdictState
from loadgen.stats.bands import format_band

if TYPE_CHECKING:
    from loadgen.canary.worse import WorseResult

__all__ = ["GENERATOR_KEYS", "WARMUP_KEYS", "CanaryResult", "warmup_report"]

# The JSON's "generator" and "warmup" objects hold every one of these keys whoever wrote the
# result (a live run, a replay, Locust): null where a value does not apply, so one schema
# reads them all. (generator: RunStats.health(); warmup: warmup_report().)
GENERATOR_KEYS = ("valid", "problems", "late", "late_share", "max_late_ms", "dropped", "dropped_share",
                  "cpu_share", "workers", "per_worker")
WARMUP_KEYS = ("seconds", "requests", "app_id_counts", "errors")


@dataclass
class CanaryResult:
    verdict: Verdict
    spec: SplitSpec | None  # None: --expect consul stopped before Consul was read (canary.unstarted)
    mapping: SubsetMap
    plan: SampleSizePlan | None  # None with spec
    target: str
    requests: int
    duration_s: float
    rate_asked: float | None
    rate_achieved: float | None
    app_id_counts: dict[str, int]
    errors: dict[str, int]
    latency_ms: dict[str, float]
    stopped_by: str
    late_starts: int = 0
    notes: list[str] = field(default_factory=list)
    replayed_from: str | None = None
    recorded_to: str | None = None
    max_requests: int | None = None  # the budget this run had (None: a replay judges what was recorded)
    reachable: bool | None = None  # whether that budget could reach a verdict (said before sending)
    signum: int | None = None  # the signal that stopped the run early (SIGINT for Ctrl-C, SIGTERM)
    generator: dict[str, Any] | None = None  # RunStats.health(): did the generator keep its schedule?
    warmup: dict[str, Any] | None = None  # the requests of the warm-up, reported but not judged
    recording_failed: str | None = None  # why --record stopped early (e.g. a full disk)
    by_app_id: dict[str, dict[str, float]] = field(default_factory=dict)  # judged latency per backend instance
    source: str = "loadgen canary"  # or "locust"
    workers: dict[str, dict[str, Any]] | None = None  # Locust's distributed runs: each worker's counts
    three_way: dict[str, Any] | None = None  # Consul / Envoy / traffic per subset (canary.three_way)
    identity: str = "auto"  # how a response named its backend (--subset-from)
    # The order answers were judged in ("send": the complete prefix by send time) and how far that
    # prefix trailed the newest request at the last look; None where it does not apply.
    judged_prefix: dict[str, Any] | None = None
    # The code of the error that ended the canary without a verdict (4: the target or the mesh
    # unreachable, ...): its outputs are still written (canary.unstarted), and exit with it.
    error_code: ExitCode | None = None
    # Each canary's latency and error rate against the baseline's (--latency, --error-margin).
    comparisons: WorseResult | None = None

    @property
    def warnings(self) -> list[str]:
        """What makes parts of this result less than it seems (said in every output)."""
        out = []
        if self.generator is not None and not self.generator["valid"]:
            problems = "; ".join(self.generator["problems"])
            who = ("loadgen could not keep the asked rate, the target holding every connection" if TARGET_HELD_SLOTS
                   in problems else "the generator could not keep the asked rate")
            out.append(f"{who} ({problems}): latency figures are not valid (the split judged is still what was "
                       "answered)")
        if self.recording_failed:
            out.append(self.recording_failed)
        moved = self.verdict.moved()
        if moved:
            out.append(f"the observed share of {', '.join(s.name for s in moved)} lies outside the interval the "
                       "judge used: the split was not the same throughout the run")
        return out

    @property
    def exit_code(self) -> ExitCode:
        """The verdict's code. An interrupted run that the judge could not decide on what it
        collected exits 130 (Ctrl-C) or 143 (SIGTERM); a PASS or FAIL keeps its code even when
        interrupted, since the judge's guarantee holds whenever the run stops."""
        if self.error_code is not None:
            return self.error_code
        if self.signum is not None and not self.verdict.decided:
            return interrupts.exit_code(self.signum)
        return exit_code(self.verdict.state)

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.state.value,
            "reason": self.verdict.reason,
            "expected": None if self.spec is None else self.spec.as_dict(),
            "judge": self.verdict.to_json(),
            "mapping": {"app_ids": self.mapping.app_ids, "source": self.mapping.source},
            "plan": {"fixed_n": self.plan.fixed_n if self.plan else None,
                     "power": self.plan.power if self.plan else None, "max_requests": self.max_requests,
                     "reachable": self.reachable},
            "bands": {s.name: list(s.band) for s in self.verdict.subsets},
            "target": self.target,
            "requests": self.requests,
            "duration_s": round(self.duration_s, 3),
            "rate_asked": self.rate_asked,
            "rate_achieved": None if self.rate_achieved is None else round(self.rate_achieved, 1),
            "late_starts": self.late_starts,
            "stopped_by": self.stopped_by,
            "app_id_counts": self.app_id_counts,
            "errors": self.errors,
            "latency_ms": self.latency_ms,
            "by_app_id": self.by_app_id,
            "notes": self.notes,
            "replayed_from": self.replayed_from,
            "recorded_to": self.recorded_to,
            "interrupted_by": None if self.signum is None else signal.Signals(self.signum).name,
            "generator": _every_key(GENERATOR_KEYS, self.generator),
            "warmup": _every_key(WARMUP_KEYS, self.warmup),
            "warnings": self.warnings,
            "source": self.source,
            "workers": self.workers,
            "three_way": self.three_way,
            "subset_from": self.identity,
            "judged_prefix": self.judged_prefix,
            "comparisons": None if self.comparisons is None else self.comparisons.to_json(),
            "exit_code": int(self.exit_code),
        }

    def junit(self) -> str:
        suite = "loadgen canary" if self.source == "loadgen canary" else f"loadgen canary ({self.source})"
        properties = {"expected": self.spec.as_percent() if self.spec else "not read", "target": self.target}
        checks = []
        three = self.three_way or {}
        if three.get("consul"):
            properties["consul"] = _split_text(three["consul"]["shares"])
        rows = three.get("subsets") or {}
        if three.get("envoy") and any(r.get("envoy") is not None for r in rows.values()):
            envoy = {n: r["envoy"] for n, r in rows.items() if r.get("envoy") is not None}
            properties["envoy"] = _split_text(envoy)
            properties["envoy_config_version"] = str(three["envoy"]["version"])
            checks.append(("client sidecar routes as Consul compiled", three.get("stale"),
                           three.get("stale") or f"Envoy {_split_text(envoy)} = Consul "
                                                 f"{properties.get('consul', '?')}"))
        if self.error_code is not None:  # no verdict: the run could not go on (e.g. the target unreachable)
            checks.append(("canary ran", self.verdict.reason, self.verdict.reason))
        cases = _junit_cases(self.verdict, suite, checks)
        if self.comparisons is not None:
            cases[-1:-1] = _comparison_cases(self.comparisons, suite)  # before the verdict's case
        return render(TestSuite(suite, cases, time_s=self.duration_s, properties=properties))


def _junit_cases(verdict: Verdict, suite: str, checks: list[tuple[str, str | None, str]]) -> list[TestCase]:
    """One case per subset (its share within the band), one per extra check (name, failure
    message or None, text) and one for the verdict."""
    cases = []
    for s in verdict.subsets:
        text = (f"expected {s.expected * 100:.4g} %, band {format_band(s.band)}; observed "
                f"{s.share * 100:.2f} % of n={verdict.n}; true share {s.lower * 100:.2f}-{s.upper * 100:.2f} %")
        if s.status == "outside":
            cases.append(TestCase(f"subset {s.name}", suite, failure=f"{s.name} outside its band",
                                  failure_type="SplitMismatch", failure_text=text))
        elif s.status == "undecided":
            cases.append(TestCase(f"subset {s.name}", suite, skipped=f"{s.name} not decided: {text}"))
        else:
            cases.append(TestCase(f"subset {s.name}", suite, system_out=text))
    for name, failure, text in checks:
        if failure:
            cases.append(TestCase(name, suite, failure=failure, failure_type="Check", failure_text=text))
        else:
            cases.append(TestCase(name, suite, system_out=text))
    if verdict.state is VerdictState.FAIL:
        if verdict.change is not None and verdict.change.detected:
            kind = "SplitChanged"
        elif verdict.flapping is not None and verdict.flapping.detected:
            kind = "SplitMoving"  # moved back and forth (stats.flapping)
        else:
            kind = "FAIL"
        cases.append(TestCase("verdict", suite, failure=verdict.reason, failure_type=kind,
                              failure_text=verdict.reason))
    elif verdict.state is not VerdictState.PASS:
        cases.append(TestCase("verdict", suite, skipped=f"{verdict.state.value}: {verdict.reason}"))
    else:
        cases.append(TestCase("verdict", suite, system_out=verdict.reason))
    return cases


def _comparison_cases(worse: WorseResult, suite: str) -> list[TestCase]:
    """One case per comparison: "latency p99 v2 vs v1", "errors v2 vs v1"."""
    rows = [(f"latency {c.quantile} {c.subset} vs {c.baseline}", c.state, c.reason, "LatencyWorse")
            for c in worse.latency]
    rows += [(f"errors {c.subset} vs {c.baseline}", c.state, c.reason, "ErrorsWorse") for c in worse.errors]
    cases = []
    for name, state, reason, kind in rows:
        if state is VerdictState.FAIL:
            cases.append(TestCase(name, suite, failure=reason, failure_type=kind, failure_text=reason))
        elif state is VerdictState.PASS:
            cases.append(TestCase(name, suite, system_out=reason))
        else:
            cases.append(TestCase(name, suite, skipped=f"{state.value}: {reason}"))
    return cases


def latency_by_app_id(tally: Tally) -> dict[str, dict[str, float]]:
    """Each answering instance's corrected latency (HDR), for the JSON and Locust's Split tab."""
    return {a: tally.book.summary("corrected", f"app_id={a}") for a in sorted(tally.app_ids)}


def warmup_report(seconds: float, warm: Tally) -> dict[str, Any] | None:
    if seconds <= 0:
        return None
    return {"seconds": seconds, "requests": warm.sent, "app_id_counts": dict(warm.app_ids),
            "errors": dict(warm.errors)}


def _every_key(keys: tuple[str, ...], values: dict[str, Any] | None) -> dict[str, Any]:
    """``values`` with each of ``keys`` (None where missing), then anything else it holds."""
    values = values or {}
    return {**{k: values.get(k) for k in keys}, **values}


def _split_text(shares: dict[str, float]) -> str:
    return " / ".join(f"{n} {w * 100:.4g} %" for n, w in shares.items() if w)
