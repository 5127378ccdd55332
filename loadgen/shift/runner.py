"""ShiftRun: a progressive weight shift, each step proved in the data plane, rolled back on its own.

For each step: write the weights (a whole service-splitter entry with CAS, or the user's
``--apply-cmd``), time when Consul's compiled chain and the client sidecar's Envoy route show
them, then verify the step with the canary's core (``--expect consul``: the three-way check,
so a stale sidecar FAILs) and the latency/error gate per subset; ``--hold`` soaks the step under
load that much longer. Any failure, a concurrent write or Ctrl-C/SIGTERM writes the rollback
point back (CAS on what the shift itself last wrote, so someone else's later write is never
undone), waits for Consul and Envoy to show it, and verifies it the same way.

Every wait is bounded by ``step_timeout`` and every verification by ``verify_time``.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from loadgen.canary.consul_view import chain_request, client_upstream, consul_view
from loadgen.canary.live import run_live
from loadgen.canary.options import CanaryOptions, judged_by_time
from loadgen.canary.progress import Snapshot
from loadgen.canary.result import CanaryResult
from loadgen.canary.three_way import WEIGHT_SLACK, ThreeWay
from loadgen.errors import LoadgenError, UsageError
from loadgen.interrupts import Interrupted, Terminated
from loadgen.load.sample import Sample
from loadgen.mesh.consul_api import ConsulClient
from loadgen.mesh.programmed import EnvoyAdmin
from loadgen.shift.gate import LatencyGate, SubsetHealth
from loadgen.shift.splitter import SPLITTER, ConcurrentChange, SplitterWriter, StartPoint, read_start
from loadgen.shift.steps import ShiftStep, plan_steps
from loadgen.shift.timeline import Look, PhaseRecord, ShiftReport, traffic_followed
from loadgen.stats import FixedJudge, JudgeConfig, SplitSpec, Verdict, VerdictState
from loadgen.stats.plan import fewest_to_decide

__all__ = ["ShiftRun", "ShiftSettings", "ShiftWhere"]

POLL_S = 0.1
START_CHECK_S = 15.0  # the budget of the check that the live split is the starting point
ERRORS_NOT_JUDGED = 0.99  # the canary's errors guard, set where errors are the gate's or not judged
VERIFY_WARMUP_S = 0.5  # of each verification: requests sent as the step settles are reported, not judged


@dataclass(frozen=True)
class ShiftSettings:
    steps: str
    subset: str | None = None
    service: str = "service-b"
    rate: float = 200.0
    config: JudgeConfig = field(default_factory=JudgeConfig)
    verify_time: float = 60.0  # each step's verification budget
    step_timeout: float = 60.0  # each wait for Consul / Envoy / --apply-cmd
    hold: float = 0.0
    gate: LatencyGate = field(default_factory=LatencyGate)
    rollback: bool = True
    force: bool = False
    apply_cmd: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 5.0  # per request
    warmup: float = VERIFY_WARMUP_S
    # Each step's verification also compares the canary with the baseline (canary.worse):
    latency: str | None = None  # --latency p99
    latency_margin: str | None = None
    error_margin: str | None = None
    baseline: str | None = None  # default: the subset with the largest weight at the start


def comparison_options(settings: ShiftSettings, baseline: str | None, weights: Mapping[str, float]
                       ) -> dict[str, str | None]:
    """The canary options of a step's latency/error comparison: none unless one was asked for, and
    none where the baseline or every other subset gets no traffic (a step to 100/0, say)."""
    asked = settings.latency is not None or settings.error_margin is not None
    if not asked or baseline is None or weights.get(baseline, 0) <= 0:
        return {}
    if not any(w > 0 for name, w in weights.items() if name != baseline):
        return {}
    return {"latency": settings.latency, "latency_margin": settings.latency_margin,
            "error_margin": settings.error_margin, "baseline": baseline}


@dataclass(frozen=True)
class ShiftWhere:
    """Where the shift runs: service-a's URL, Consul (writes and reads) and the client sidecar."""

    target_url: str
    consul_write: ConsulClient
    consul_read: ConsulClient
    envoy_admin: str | None  # host:port of the client sidecar whose traffic is judged (None: not watched)
    more_admins: tuple[str, ...] = ()  # other client sidecars that must show each step too


class ShiftRun:
    def __init__(self, settings: ShiftSettings, where: ShiftWhere, say: Callable[[str], None],
                 on_look: Callable[[Snapshot], None] | None = None,
                 on_sample: Callable[[Sample, str | None], None] | None = None,
                 on_result: Callable[[CanaryResult], None] | None = None) -> None:
        """``on_sample`` / ``on_result``: every verification's samples (as run_live gives them) and
        its result, for the Prometheus page (--metrics-listen)."""
        self.settings = settings
        self.where = where
        self.say = say
        self.on_look = on_look
        self.on_sample = on_sample
        self.on_result = on_result
        self.t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self.t0

    # -- the whole shift -----------------------------------------------------------------
    def plan(self) -> tuple[StartPoint, list[ShiftStep]]:
        """The rollback point and the steps: every bad input is found here, before any write."""
        start = read_start(self.where.consul_write, self.settings.service)
        steps = plan_steps(self.settings.steps, start.weights, self.settings.subset)
        for step in steps:
            self._check_verify_budget(step)
        return start, steps

    def _check_verify_budget(self, step: ShiftStep) -> None:
        """A step whose verification could only end INCONCLUSIVE (--verify-time too short at --rate for
        the judge to decide its split even in the clearest cases) is refused before anything is written."""
        s = self.settings
        options = CanaryOptions(expect="consul", rate=s.rate, max_time=s.verify_time, warmup=s.warmup, config=s.config)
        needed = fewest_to_decide(step.spec, s.config)
        can = judged_by_time(options)
        if can < needed:
            raise UsageError(f"--verify-time {s.verify_time:g}s at --rate {s.rate:g}/s judges at most {can:,} "
                             f"request{'' if can == 1 else 's'} after each verification's {s.warmup:g}s warm-up; "
                             f"step {step.index} ({step.label()}) needs at least {needed:,} for the judge to decide "
                             "it at all")

    def run(self, start: StartPoint, steps: list[ShiftStep]) -> ShiftReport:
        s = self.settings
        report = ShiftReport(service=s.service, subset=s.subset, start=dict(start.weights),
                             start_entry=start.entry, planned=[dict(st.weights) for st in steps])
        writer = SplitterWriter(self.where.consul_write, start)
        self._baseline = s.baseline or max(start.weights, key=lambda name: start.weights[name])
        self.say(f"start: {start.describe()} (the rollback point)")
        try:
            if not s.force:
                check = self._verify_only("start", start.weights, START_CHECK_S)
                report.phases.append(check)
                if not check.passed and check.verdict == VerdictState.INCONCLUSIVE.value:
                    # Not shown to differ, only not proved in the check's short budget: go on.
                    self.say(f"start: the live split could not be told apart from the splitter in "
                             f"{START_CHECK_S:g} s ({check.failure}); going on")
                    check.passed, check.failure = True, None
                    check.reason = "INCONCLUSIVE in the start check's budget (not shown to differ): " + check.reason
                if not check.passed:
                    report.failure = (f"the live split does not match the starting point ({check.failure}); "
                                      "nothing was written (--force shifts anyway)")
                    return report
            for step in steps:
                phase = self._step(step, writer, report)
                if not phase.passed:
                    report.failure = f"{phase.name} ({step.label()}): {phase.failure}"
                    break
        except ConcurrentChange as exc:
            report.failure = exc.message
            report.concurrent_change = True
        except KeyboardInterrupt as exc:
            report.signum = getattr(exc, "signum", 2)
            report.failure = "interrupted"
        except LoadgenError as exc:
            if not writer.changed:
                raise  # nothing written: its own one line and code (e.g. 4, unreachable)
            report.failure = exc.message
        finally:
            self._finish(report, writer)
        return report

    def _finish(self, report: ShiftReport, writer: SplitterWriter) -> None:
        if report.failure is None or not writer.changed:
            return
        if not self.settings.rollback:
            report.rollback_note = "--no-rollback: the splitter is left as the shift stopped"
            return
        if self.settings.apply_cmd is not None:
            self.say("rolling back with loadgen's own write (the --apply-cmd is not asked to undo)")
        try:
            self._rollback(report, writer)
        except ConcurrentChange as exc:
            report.rolled_back = False
            report.rollback_note = f"not rolled back: {exc.message}; the shift rolls back only what it wrote"
        except KeyboardInterrupt:
            written = any(p.name == "rollback" and p.written is not None for p in report.phases)
            report.rolled_back = False
            report.rollback_note = ("rolled back in Consul, but its check in the data plane was interrupted" if written
                                    else "the rollback was interrupted before it was written: check the splitter")
        except LoadgenError as exc:
            report.rolled_back = False
            report.rollback_note = f"the rollback failed: {exc.message}"

    # -- one step ------------------------------------------------------------------------
    def _step(self, step: ShiftStep, writer: SplitterWriter, report: ShiftReport) -> PhaseRecord:
        phase = PhaseRecord(f"step {step.index}", dict(step.weights), started=self.now())
        report.phases.append(phase)
        self.say(f"step {step.index}: {'/'.join(step.weights)} {step.label()}")
        if self.settings.apply_cmd is not None:
            self._apply_cmd(step, phase)
            if phase.failure:
                return self._ended(phase)
            phase.modify_index = writer.adopt(step.weights)
        else:
            phase.modify_index = writer.write(step.weights)
            phase.written = self.now()
        guard = lambda: writer.check(f"during {phase.name}")  # noqa: E731
        if not self._propagated(phase, step.weights, guard):
            return self._ended(phase)
        self._judge(phase, step.weights, self.settings.verify_time)
        self._followed(phase, report.phases[-2].weights if len(report.phases) > 1 else writer.start.weights)
        guard()  # a verdict on someone else's weights is not this step's
        if phase.passed and self.settings.hold > 0:
            self._soak(phase, step.weights)
            guard()
        return self._ended(phase)

    def _apply_cmd(self, step: ShiftStep, phase: PhaseRecord) -> None:
        """Run the user's command with the step's weights in its environment, then wait until
        Consul's splitter entry holds them; the clock starts when the command exits."""
        cmd = self.settings.apply_cmd
        assert cmd is not None
        try:
            done = subprocess.run(cmd, shell=True, env={**os.environ, **step.env()}, capture_output=True, text=True,
                                  timeout=self.settings.step_timeout)
        except subprocess.TimeoutExpired:
            phase.failure = f"--apply-cmd did not exit within {self.settings.step_timeout:g} s"
            return
        phase.written = self.now()
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            phase.failure = f"--apply-cmd exited {done.returncode}: {tail[0][:300]}"
            return
        deadline = time.monotonic() + self.settings.step_timeout
        while True:
            entry = self.where.consul_read.get_config(SPLITTER, self.settings.service) or {}
            legs = {sp.get("ServiceSubset"): float(sp.get("Weight", 0)) for sp in entry.get("Splits") or []}
            if all(abs(legs.get(n, 0.0) - w) <= 0.005 for n, w in step.weights.items()):
                return
            if time.monotonic() > deadline:
                phase.failure = (f"--apply-cmd exited 0 but Consul's service-splitter never showed {step.label()} "
                                 f"within {self.settings.step_timeout:g} s (it has "
                                 f"{'/'.join(f'{v:g}' for v in legs.values()) or 'no splitter'})")
                return
            time.sleep(POLL_S)

    def _propagated(self, phase: PhaseRecord, weights: Mapping[str, float],
                    guard: Callable[[], None] = lambda: None) -> bool:
        """Wait until Consul's compiled chain, then the client sidecar's route, show ``weights``;
        ``guard`` raises when someone else changed the splitter meanwhile."""
        assert phase.written is not None
        want = {n: w / 100 for n, w in weights.items() if w > 0}
        request = chain_request(self.settings.headers)
        upstream = client_upstream(self.where.consul_read)
        deadline = time.monotonic() + self.settings.step_timeout
        views = []

        def consul_shows() -> bool:
            views.append(consul_view(self.where.consul_read, upstream, request))
            view = views[-1]
            return _same({n: w for n, w in zip(view.spec.names, view.spec.weights, strict=True) if w > 0}, want)

        if not self._wait(consul_shows, guard, deadline):
            phase.failure = (f"Consul's compiled chain for {upstream} did not show the weights within "
                             f"{self.settings.step_timeout:g} s")
            return False
        phase.consul_ms = round((self.now() - phase.written) * 1000, 1)
        admins = [a for a in (self.where.envoy_admin, *self.where.more_admins) if a]
        if not admins:
            return True
        threes = {a: ThreeWay(views[-1], EnvoyAdmin(a), request) for a in admins}
        seen: dict[str, dict[str, float] | None] = {}

        def envoy_shows() -> bool:
            for admin, three in threes.items():  # every client sidecar, the slowest decides
                if admin not in phase.envoy_each_ms:
                    seen[admin] = three.envoy_shares(three.read())
                    shares = seen[admin]
                    if shares is not None and _same({n: w for n, w in shares.items() if w > 0}, want):
                        phase.envoy_each_ms[admin] = round((self.now() - phase.written) * 1000, 1)
            return len(phase.envoy_each_ms) == len(threes)

        if not self._wait(envoy_shows, guard, deadline):
            stale = [a for a in threes if a not in phase.envoy_each_ms]
            phase.failure = ("stale proxy: " + "; ".join(f"the client sidecar ({a}) still routes "
                                                          f"{_percent(seen.get(a))}" for a in stale)
                             + f" {self.settings.step_timeout:g} s after the write")
            return False
        phase.envoy_ms = max(phase.envoy_each_ms.values())
        return True

    @staticmethod
    def _wait(shown: Callable[[], bool], guard: Callable[[], None], deadline: float) -> bool:
        """Poll ``shown`` until it is true (True) or ``deadline`` passes (False); ``guard`` raises
        between polls when the splitter was changed by someone else."""
        while not shown():
            guard()
            if time.monotonic() > deadline:
                return False
            time.sleep(POLL_S)
        return True

    # -- verification --------------------------------------------------------------------
    def _verify_only(self, name: str, weights: Mapping[str, float], budget: float) -> PhaseRecord:
        phase = PhaseRecord(name, dict(weights), started=self.now())
        self.say(f"{name}: checking that the live split is {'/'.join(f'{w:g}' for w in weights.values())}")
        self._judge(phase, weights, budget, gated=False)
        return self._ended(phase)

    def _judge(self, phase: PhaseRecord, weights: Mapping[str, float], budget: float, gated: bool = True) -> None:
        """The split judge against Consul's chain (which shows ``weights`` by now) and, for a step,
        the gate. The start check and the rollback judge the split only: their errors and latency
        are what the shift started from, reported but not held against them."""
        result = self._canary(budget, phase, gated=gated)
        subsets = phase_subsets(result)
        self._record(phase, result, subsets)
        if result.signum is not None:
            raise _interrupted(result.signum)
        verdict = result.verdict.state
        gate = (self.settings.gate if gated else LatencyGate()).check(
            subsets, weights, self.settings.subset, failed=sum(result.errors.values()), requests=result.requests)
        phase.gate = gate.to_json() if gated else None
        problems = [] if gate.held else ["gate: " + "; ".join(gate.problems)]
        if verdict is not VerdictState.PASS:
            routed = None if gated else routed_verdict(result, weights, self.settings.config)
            if routed is not None and routed.state is VerdictState.PASS:
                # A failing subset answers less than it is sent: its answers under-count it. What
                # the splitter governs is routing, which the client sidecar counts per subset.
                phase.verdict, phase.reason = routed.state.value, (
                    f"routed as asked by the client sidecar's request counts (errors included): {routed.reason}; "
                    f"the answers alone: {verdict.value} ({result.verdict.reason})")
            else:
                problems.append(f"split {verdict.value}: {result.verdict.reason}")
        phase.failure = "; ".join(problems) or None
        phase.passed = phase.failure is None
        self.say(f"{phase.name}: {phase.verdict}" + ("" if gate.held else f", {problems[0]}"))

    def _soak(self, phase: PhaseRecord, weights: Mapping[str, float]) -> None:
        """``--hold``: the step under load that long after it passed, judged once at the end
        (a fixed-length run) and gated again."""
        s = self.settings
        self.say(f"{phase.name}: holding {s.hold:g} s")
        n = max(1, int(s.rate * s.hold))
        result = self._canary(s.hold + s.timeout, phase, method="fixed", max_requests=n, warmup=0.0)
        if result.signum is not None:
            raise _interrupted(result.signum)
        subsets = phase_subsets(result)
        gate = s.gate.check(subsets, weights, s.subset, failed=sum(result.errors.values()), requests=result.requests)
        state = result.verdict.state
        phase.hold = {"seconds": s.hold, "requests": result.requests, "verdict": state.value,
                      "reason": result.verdict.reason, "gate": gate.to_json(),
                      "subsets": {k: v.to_json() for k, v in subsets.items() if k in weights}}
        if state is VerdictState.FAIL:
            phase.passed, phase.failure = False, f"hold: split FAIL: {result.verdict.reason}"
        elif not gate.held:
            phase.passed, phase.failure = False, "hold: gate: " + "; ".join(gate.problems)

    def _canary(self, budget: float, phase: PhaseRecord, method: str = "sequential", max_requests: int | None = None,
                warmup: float | None = None, gated: bool = True) -> CanaryResult:
        s = self.settings
        # With --max-errors the gate judges errors per subset (the sidecar's 5xx), so the canary's
        # own guard on all errors is off; the start check and the rollback never judge errors.
        config = s.config if gated and s.gate.max_errors is None else replace(s.config, max_errors=ERRORS_NOT_JUDGED)
        compared = comparison_options(s, getattr(self, "_baseline", None), phase.weights) if gated else {}
        options = CanaryOptions(expect="consul", rate=s.rate, max_time=budget, timeout=s.timeout, method=method,
                                max_requests=max_requests, config=config, service=s.service, headers=s.headers,
                                warmup=s.warmup if warmup is None else warmup, envoy_admin=self.where.envoy_admin,
                                **compared)
        watched = s.subset or list(phase.weights)[-1]  # as the timeline's plot and traffic_ms take it

        def look(snap: Snapshot) -> None:
            mine = {x.name: x for x in snap.verdict.subsets}.get(watched)
            if mine is not None and snap.verdict.n:
                phase.looks.append(Look(self.now(), mine.share, mine.lower, mine.upper))
            if self.on_look is not None:
                self.on_look(snap)

        result = run_live(options, self.where.target_url, self.where.consul_read, _quiet(self.say), look,
                          envoy_admin=self.where.envoy_admin, on_sample=self.on_sample)
        if self.on_result is not None:
            self.on_result(result)
        return result

    # -- rollback ------------------------------------------------------------------------
    def _rollback(self, report: ShiftReport, writer: SplitterWriter) -> None:
        start = writer.start
        phase = PhaseRecord("rollback", dict(start.weights), started=self.now())
        report.phases.append(phase)
        self.say(f"rolling back to {start.describe()}")
        phase.modify_index = writer.rollback()
        phase.written = self.now()
        if not self._propagated(phase, start.weights):
            self._ended(phase)
            report.rolled_back = False
            report.rollback_note = f"written back to Consul, but not seen in the data plane: {phase.failure}"
            return
        self._judge(phase, start.weights, max(START_CHECK_S, self.settings.verify_time / 2), gated=False)
        self._followed(phase, report.phases[-2].weights)
        self._ended(phase)
        if phase.passed:
            report.rolled_back, report.rollback_note = True, "rolled back and verified in the data plane"
        elif phase.verdict == VerdictState.INCONCLUSIVE.value:
            # Consul and the client sidecar show the start again; the traffic is not shown to differ.
            report.rolled_back = True
            report.rollback_note = ("rolled back: Consul and the client sidecar show the start again; the traffic "
                                    f"did not decide within its budget ({phase.failure})")
        else:
            report.rolled_back = False
            report.rollback_note = f"rolled back in Consul, but the traffic does not follow: {phase.failure}"

    def _followed(self, phase: PhaseRecord, before: Mapping[str, float]) -> None:
        """When traffic followed the write, from the watched subset's looks."""
        watched = self.settings.subset or list(phase.weights)[-1]
        phase.traffic_ms = traffic_followed(phase.looks, before.get(watched, 0.0) / 100,
                                            phase.weights.get(watched, 0.0) / 100, phase.written)

    def _record(self, phase: PhaseRecord, result: CanaryResult, subsets: Mapping[str, SubsetHealth]) -> None:
        phase.verdict = result.verdict.state.value
        phase.reason = result.verdict.reason
        phase.requests += result.requests
        phase.observed = {x.name: round(x.share, 6) for x in result.verdict.subsets}
        phase.interval = {x.name: [round(x.lower, 6), round(x.upper, 6)] for x in result.verdict.subsets}
        phase.subsets = {k: v.to_json() for k, v in subsets.items() if k in phase.weights}
        phase.comparisons = None if result.comparisons is None else result.comparisons.to_json()

    def _ended(self, phase: PhaseRecord) -> PhaseRecord:
        phase.ended = self.now()
        return phase


def phase_subsets(result: CanaryResult) -> dict[str, SubsetHealth]:
    """Per subset: answers and p99 (its APP_IDs' corrected latency; the worst instance's p99 when
    several answer for it), and its cluster's requests and 5xx when the sidecar was read."""
    by_subset: dict[str, SubsetHealth] = {}
    counters = ((result.three_way or {}).get("subsets") or {})
    for app_id, summary in result.by_app_id.items():
        name = result.mapping.subset_of(app_id)
        if name is None:
            continue
        have = by_subset.get(name, SubsetHealth(0, None))
        p99 = summary.get("p99")
        worst = p99 if have.p99_ms is None else (have.p99_ms if p99 is None else max(have.p99_ms, p99))
        by_subset[name] = SubsetHealth(have.answers + int(summary.get("count", 0)), worst)
    for name, row in counters.items():
        seen = row.get("envoy_counters")
        if seen is None:
            continue
        have = by_subset.get(name, SubsetHealth(0, None))
        by_subset[name] = replace(have, errors=int(seen.get("5xx", 0)), requests=int(seen.get("requests", 0)))
    return by_subset


def routed_verdict(result: CanaryResult, weights: Mapping[str, float], config: JudgeConfig) -> Verdict | None:
    """The split of the requests the client sidecar routed to each subset over the run (its
    per-cluster request counts, failed ones included), judged once at ``weights``; None when the
    sidecar was not read."""
    rows = (result.three_way or {}).get("subsets") or {}
    counts = {}
    for name in weights:
        seen = (rows.get(name) or {}).get("envoy_counters")
        if seen is None:
            if weights[name] > 0:
                return None
            continue
        counts[name] = int(seen.get("requests", 0))
    if not sum(counts.values()):
        return None
    spec = SplitSpec(tuple(weights), tuple(w / 100 for w in weights.values()))
    return FixedJudge(spec, config).judge(counts)


def _same(a: Mapping[str, float], b: Mapping[str, float]) -> bool:
    return set(a) == set(b) and all(abs(a[n] - b[n]) <= WEIGHT_SLACK for n in a)


def _percent(shares: Mapping[str, float] | None) -> str:
    return "nothing it could read" if shares is None else \
        "/".join(f"{n} {w * 100:.4g} %" for n, w in shares.items() if w > 0)


def _quiet(say: Callable[[str], None]) -> Callable[[str], None]:
    """The canary's own lines, kept to warnings: the shift says what each step does."""
    return lambda line: say(line) if line.startswith("warning") else None


def _interrupted(signum: int) -> KeyboardInterrupt:
    return Terminated() if signum == Terminated.signum else Interrupted()

