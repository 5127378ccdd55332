"""`loadgen canary`: drive traffic through service-a and judge the split of service-b's subsets.

Wires the parts together -- mesh (target, APP_ID map, live splitter) -> load engine
(samples) -> judge (verdict) -- and hands a :class:`CanaryResult` to the reporters.
A run stops as soon as the judge is sure, at its budget, or on Ctrl-C; whatever was
collected is judged and reported in every case.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from loadgen import interrupts
from loadgen.errors import ExitCode, UnreachableError, UsageError
from loadgen.load.client import Endpoint
from loadgen.load.engine import LoadPlan, RunStats, run_blocking, run_load
from loadgen.load.histograms import LatencyBook
from loadgen.load.sample import Sample, SampleWriter, read_samples
from loadgen.mesh.consul_api import DEFAULT_CONSUL, ConsulClient
from loadgen.mesh.subsets import SubsetMap, live_splitter, subset_map
from loadgen.stats import (
    FixedJudge,
    JudgeConfig,
    Plan,
    SequentialJudge,
    SplitSpec,
    Verdict,
    VerdictState,
    parse_app_id_map,
    plan,
)
from loadgen.stats.bands import band_of, format_band
from loadgen.stats.plan import approximate_fixed_n, default_budget

VERDICT_EXIT = {VerdictState.PASS: ExitCode.OK, VerdictState.FAIL: ExitCode.FAIL,
                VerdictState.INCONCLUSIVE: ExitCode.INCONCLUSIVE, VerdictState.RUNNING: ExitCode.INCONCLUSIVE}
DEFAULT_WARMUP_S = 1.0  # live runs: connections opening through the sidecars must not decide a verdict
LOOK_EVERY_S = 0.1  # how often the live run asks the judge
REPLAY_LOOK_EVERY = 50  # samples between looks when replaying a recording


@dataclass(frozen=True)
class CanaryOptions:
    expect: str
    target: str | None = None  # service-a's /hello_a URL; None: the local mesh
    consul: str | None = None
    mapping: str | None = None  # "1=v1,2=v2"
    headers: dict[str, str] = field(default_factory=dict)
    rate: float = 500.0
    max_requests: int | None = None  # None: 4 x the fixed test's n (sequential) or n (fixed)
    max_time: float = 120.0
    timeout: float = 5.0
    method: str = "sequential"
    config: JudgeConfig = field(default_factory=JudgeConfig)
    record: Path | None = None
    replay: Path | None = None
    service: str = "service-b"
    warmup: float = 0.0  # seconds at the start whose requests are reported but not judged


@dataclass
class Snapshot:
    """What the live display shows after each look."""

    verdict: Verdict
    sent: int
    elapsed: float
    errors: int


@dataclass
class CanaryResult:
    verdict: Verdict
    spec: SplitSpec
    mapping: SubsetMap
    plan: Plan
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

    @property
    def warnings(self) -> list[str]:
        """What makes parts of this result less than it seems (said in every output)."""
        out = []
        if self.generator is not None and not self.generator["valid"]:
            out.append("the generator could not keep the asked rate (" + "; ".join(self.generator["problems"])
                       + "): latency figures are not valid (the split judged is still what was answered)")
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
        if self.signum is not None and not self.verdict.decided:
            return interrupts.exit_code(self.signum)
        return VERDICT_EXIT[self.verdict.state]

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.state.value,
            "reason": self.verdict.reason,
            "expected": self.spec.as_dict(),
            "judge": self.verdict.to_json(),
            "mapping": {"app_ids": self.mapping.app_ids, "source": self.mapping.source},
            "plan": {"fixed_n": self.plan.fixed_n, "power": self.plan.power, "max_requests": self.max_requests,
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
            "notes": self.notes,
            "replayed_from": self.replayed_from,
            "recorded_to": self.recorded_to,
            "interrupted_by": None if self.signum is None else signal.Signals(self.signum).name,
            "generator": self.generator,
            "warmup": self.warmup,
            "warnings": self.warnings,
            "exit_code": int(self.exit_code),
        }


class Tally:
    """Turns samples into what the judge needs: counts per subset, unknown APP_IDs, errors."""

    def __init__(self, spec: SplitSpec, mapping: SubsetMap) -> None:
        self.spec = spec
        self.mapping = mapping
        self.subsets: Counter[str] = Counter()
        self.app_ids: Counter[str] = Counter()
        self.unknown = 0
        self.errors: Counter[str] = Counter()
        self.book = LatencyBook()  # bounded memory however long the run, unlike a list of latencies
        self.last_seen: dict[str, float] = {}  # subset -> intended start of its latest answer
        self.classified = 0  # answers from a subset of the spec
        self.classified_at_last: dict[str, int] = {}  # subset -> self.classified at its latest answer
        self.last_error_t = 0.0

    def add(self, sample: Sample, recorded_subset: str | None = None) -> str | None:
        self.book.record(sample)
        if not sample.ok:
            self.errors[sample.error or f"http_{sample.status}"] += 1
            self.last_error_t = max(self.last_error_t, sample.t)
            return None
        assert sample.app_id is not None
        self.app_ids[sample.app_id] += 1
        subset = recorded_subset if recorded_subset is not None else self.mapping.subset_of(sample.app_id)
        if subset is None or subset not in self.spec.names:
            self.unknown += 1
            return subset
        self.subsets[subset] += 1
        self.classified += 1
        if sample.t >= self.last_seen.get(subset, 0.0):
            self.last_seen[subset] = sample.t
            self.classified_at_last[subset] = self.classified
        return subset

    def went_silent(self, end: float, improbable: float = 1e-4) -> list[str]:
        """Subsets that answered earlier, then stayed silent through so many answers of the others
        that, at their expected weight, a silence that long has probability < ``improbable``, while
        requests kept failing: the ones that became unreachable mid-run. Counted in answers, not
        seconds, so it holds at any rate and for any weight (and as soon as the judge stops a run)."""
        out = []
        for name in self.spec.names:
            seen = self.last_seen.get(name)
            weight = self.spec.weight(name)
            if seen is None or weight <= 0 or self.last_error_t <= seen:
                continue
            since = self.classified - self.classified_at_last[name]
            if since > 0 and (1 - weight) ** since < improbable:
                out.append(f"{name} stopped answering {end - seen:.1f}s before the end (last answer at {seen:.1f}s, "
                           f"{since:,} answers of the others since) while requests kept failing")
        return out

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def sent(self) -> int:
        """Requests answered or failed so far (every sample counts once)."""
        return sum(self.subsets.values()) + self.unknown + self.error_count

    def latency_summary(self) -> dict[str, float | int]:
        summary = self.book.summary()
        return summary if summary.get("count") else {}


def resolve_spec(expect: str, mapping: SubsetMap, consul: ConsulClient | None, service: str) -> SplitSpec:
    if expect.strip().lower() == "consul":
        if consul is None:
            raise UsageError("--expect consul needs Consul (give --consul ADDR, or a split like 85/15)")
        return SplitSpec.from_splitter(live_splitter(consul, service))
    positional = "=" not in expect
    return SplitSpec.parse(expect, names=list(mapping.subsets) if positional and mapping.subsets else None)


def make_judge(spec: SplitSpec, options: CanaryOptions) -> SequentialJudge | FixedJudge:
    if options.method == "fixed":
        return FixedJudge(spec, options.config)
    return SequentialJudge(spec, options.config)


def budget(options: CanaryOptions, the_plan: Plan) -> int:
    if options.max_requests is not None:
        return options.max_requests
    if options.method == "fixed":
        if the_plan.fixed_n is None:
            raise UsageError("the fixed test needs more than 10 million requests here; give --max-requests")
        return the_plan.fixed_n
    return default_budget(the_plan.fixed_n)


def reachability(options: CanaryOptions, spec: SplitSpec, the_plan: Plan, n_max: int) -> tuple[bool, str]:
    """Can this run's budget reach a verdict at these bands? Said before anything is sent."""
    widths = options.config.half_widths(spec)
    bands = ", ".join(f"{name} {format_band(band_of(w, h))}"
                      for name, w, h in zip(spec.names, spec.weights, widths, strict=True))
    can_send = min(n_max, int(options.rate * options.max_time))
    # The sequential judge's mean n to PASS at the expected split is below the fixed test's n at
    # 90 % power in every simulated scenario (bench/README.md): fewer than that, and many runs end
    # undecided.
    needed = approximate_fixed_n(spec, options.config, power=0.9)
    if can_send < needed:
        limit = "--max-requests" if n_max <= options.rate * options.max_time else \
            f"--max-time {options.max_time:g}s at --rate {options.rate:g}/s"
        return False, (f"warning: bands {bands} need about {needed:,} requests for a verdict (fixed "
                       f"test at 90 % power; see --plan), but this run can send at most {can_send:,} "
                       f"({limit}): expect INCONCLUSIVE. Raise the budget, or widen --tolerance")
    return True, f"bands {bands}"


def _judge_now(judge: SequentialJudge | FixedJudge, tally: Tally, final: bool, t: float | None = None) -> Verdict:
    counts, unknown, errors = dict(tally.subsets), tally.unknown, tally.error_count
    if isinstance(judge, FixedJudge):
        v = judge.judge(counts, unknown, errors)
        if not final and v.state is VerdictState.INCONCLUSIVE:
            return Verdict(**{**v.__dict__, "state": VerdictState.RUNNING})
        return v
    return judge.finish(counts, unknown, errors, t) if final else judge.update(counts, unknown, errors, t)


# -- replay -------------------------------------------------------------------------------
def replay(options: CanaryOptions, on_look: Callable[[Snapshot], None] | None = None) -> CanaryResult:
    """Judge a recording as the live run would have, looking every REPLAY_LOOK_EVERY samples.

    The file is read twice, streaming (a long recording is never held in memory): once to
    check every line and learn the subsets recorded, so a bad line is exit 2 with nothing
    judged, then to judge."""
    assert options.replay is not None
    path = options.replay
    if options.expect.strip().lower() == "consul":
        raise UsageError("--replay judges without any network: give the split, like --expect 85/15")
    recorded: dict[str, str] = {}
    total = 0
    for sample, sub in read_samples(path):
        total += 1
        if sample.app_id is not None and sub is not None:
            recorded[sample.app_id] = sub
    if options.mapping:
        mapping = _map_option(options.mapping)
        use_recorded = False
    else:
        if not recorded:
            raise UsageError(f"{path} records no subsets (it was not written by loadgen): give --map 1=v1,2=v2")
        mapping = SubsetMap(tuple(sorted(set(recorded.values()))), recorded, f"recorded in {path.name}")
        use_recorded = True
    if use_recorded and "=" not in options.expect and len(options.expect.split("/")) != len(mapping.subsets):
        # A recording only knows the subsets that answered: a dead canary's has none of its rows.
        # Positional weights then name the subsets v1, v2, ... as usual.
        mapping = SubsetMap((), mapping.app_ids, mapping.source)
    spec = resolve_spec(options.expect, mapping, None, options.service)
    the_plan = plan(spec, options.config)
    judge = make_judge(spec, options)
    tally, warm = Tally(spec, mapping), Tally(spec, mapping)
    verdict: Verdict | None = None
    last_t = 0.0
    for i, (sample, subset) in enumerate(read_samples(path), start=1):
        (warm if sample.t < options.warmup else tally).add(sample, subset if use_recorded else None)
        last_t = sample.t
        if isinstance(judge, SequentialJudge) and i % REPLAY_LOOK_EVERY == 0:
            verdict = _judge_now(judge, tally, final=False, t=sample.t)
            if on_look:
                on_look(Snapshot(verdict, i, sample.t, tally.error_count))
            if verdict.decided:
                break
    used = tally.sent + warm.sent
    if verdict is None or not verdict.decided:
        verdict = _judge_now(judge, tally, final=True, t=last_t if used else None)
    return CanaryResult(
        verdict=verdict, spec=spec, mapping=mapping, plan=the_plan, target=f"replay of {path}",
        requests=used, duration_s=last_t if used else 0.0, rate_asked=None, rate_achieved=None,
        app_id_counts=dict(tally.app_ids + warm.app_ids), errors=dict(tally.errors + warm.errors),
        latency_ms=tally.latency_summary(), stopped_by="verdict" if verdict.decided and used < total
        else "end of recording", replayed_from=str(path), warmup=_warmup_report(options.warmup, warm),
    )


def _map_option(text: str) -> SubsetMap:
    app_ids = parse_app_id_map(text)
    return SubsetMap(tuple(sorted(set(app_ids.values()))), app_ids, "--map")


def validate(options: CanaryOptions) -> None:
    """Every check that needs no network, made before anything is started or sent: a mistake
    in the options must never cost a mesh bring-up (nor hide a verdict after the run)."""
    if options.record is not None and options.replay is not None:
        raise UsageError("--record and --replay cannot be used together")
    if options.target is not None:
        Endpoint.parse(options.target)
    if options.mapping is not None and not options.mapping.strip():
        raise UsageError("--map is empty: give APP_ID=SUBSET pairs like 1=v1,2=v2, or leave it out to read "
                         "the map from Consul")
    if options.expect.strip().lower() == "consul":
        if options.replay is not None:
            raise UsageError("--replay judges without any network: give the split, like --expect 85/15")
        return
    if options.mapping:
        mapping = _map_option(options.mapping)
        spec = resolve_spec(options.expect, mapping, None, options.service)
    else:
        spec = SplitSpec.parse(options.expect)  # the weights; positional names come from Consul's map
    budget(options, plan(spec, options.config))  # the fixed test may need more than it can send


# -- live ---------------------------------------------------------------------------------
@contextlib.contextmanager
def _consul_for(options: CanaryOptions, default: str | None) -> Iterator[ConsulClient | None]:
    address = options.consul or default
    if address is None:
        yield None
        return
    client = ConsulClient(address)
    try:
        yield client
    finally:
        client.close()


def run_live(
    options: CanaryOptions, target_url: str, consul: ConsulClient | None, say: Callable[[str], None],
    on_look: Callable[[Snapshot], None] | None = None, notes: list[str] | None = None,
) -> CanaryResult:
    if options.mapping:
        mapping = _map_option(options.mapping)
    else:
        if consul is None or not consul.reachable():
            where = consul.address if consul else DEFAULT_CONSUL
            raise UnreachableError(
                f"Consul at {where} is unreachable, so the APP_ID -> subset map is unknown; "
                "give --consul ADDR or --map 1=v1,2=v2"
            )
        mapping = subset_map(consul, options.service)
    spec = resolve_spec(options.expect, mapping, consul, options.service)
    missing = [s for s in spec.names if s not in mapping.app_ids.values() and spec.weight(s) > 0]
    if missing:
        say(f"warning: no APP_ID maps to subset {', '.join(missing)} ({mapping.source})")
    the_plan = plan(spec, options.config)
    n_max = budget(options, the_plan)
    reachable, about = reachability(options, spec, the_plan, n_max)
    if not reachable:
        say(about)  # before anything is sent
    _probe(target_url, options)
    say(f"judging {spec.as_percent()}, {options.config.band_tolerance.describe()}, at "
        f"{(1 - options.config.alpha) * 100:.4g} % confidence ({options.method}); up to {n_max:,} requests "
        f"at {options.rate:g}/s, {options.max_time:g}s at most")
    if reachable:
        say(about)
    if options.warmup > 0:
        say(f"warm-up: requests in the first {options.warmup:g}s are reported but not judged")
    load = LoadPlan(url=target_url, rate=options.rate, max_requests=n_max, max_time=options.max_time,
                    timeout=options.timeout, headers=options.headers)
    judge = make_judge(spec, options)
    tally, warm = Tally(spec, mapping), Tally(spec, mapping)
    writer = SampleWriter(options.record) if options.record else None
    state: dict[str, Any] = {"verdict": None, "stop": False, "signum": None}

    def on_sample(sample: Sample) -> None:
        subset = (warm if sample.t < options.warmup else tally).add(sample)
        if writer:
            writer.write(sample, subset)

    async def monitor(started: float) -> None:
        while not state["stop"]:
            await asyncio.sleep(LOOK_EVERY_S)
            verdict = _judge_now(judge, tally, final=False, t=time.monotonic() - started)
            state["verdict"] = verdict
            if writer:
                writer.flush()
            if on_look:
                on_look(Snapshot(verdict, tally.sent, time.monotonic() - started, tally.error_count))
            if verdict.decided and options.method == "sequential":
                state["stop"] = True

    async def main() -> RunStats:
        def stop(signum: int) -> None:
            state["stop"] = True
            state["signum"] = signum

        with interrupts.stop_on_signals(asyncio.get_running_loop(), stop):
            started = time.monotonic()
            mon = asyncio.create_task(monitor(started))
            try:
                return await run_load(load, on_sample, lambda: state["stop"])
            finally:
                state["stop"] = True
                await asyncio.gather(mon, return_exceptions=True)

    try:
        stats = run_blocking(main)  # type: ignore[assignment]
    finally:
        if writer:
            writer.close()
    # One last look that includes the responses still in flight when the run stopped. The
    # sequential judge's intervals only narrow, so a verdict reached at a look stands.
    verdict = _judge_now(judge, tally, final=True, t=stats.elapsed)
    signum = state["signum"]
    stopped_by = "verdict" if verdict.decided and stats.stopped_by == "stop" and signum is None \
        else ("interrupted" if signum is not None else stats.stopped_by)
    if signum is not None and verdict.state is VerdictState.INCONCLUSIVE:
        verdict = Verdict(**{**verdict.__dict__, "reason": f"{interrupts.describe(signum)}: " + verdict.reason})
    return CanaryResult(
        verdict=verdict, spec=spec, mapping=mapping, plan=the_plan, target=target_url, requests=stats.sent,
        duration_s=stats.elapsed, rate_asked=options.rate, rate_achieved=stats.achieved_rate,
        app_id_counts=dict(tally.app_ids + warm.app_ids), errors=dict(tally.errors + warm.errors),
        latency_ms=tally.latency_summary(), stopped_by=stopped_by, late_starts=stats.late, signum=signum,
        max_requests=n_max, reachable=reachable, notes=[*(notes or []), *tally.went_silent(stats.elapsed)],
        recorded_to=str(options.record) if options.record else None, generator=stats.health(False),
        warmup=_warmup_report(options.warmup, warm), recording_failed=writer.failed if writer else None,
    )


def _warmup_report(seconds: float, warm: Tally) -> dict[str, Any] | None:
    if seconds <= 0:
        return None
    return {"seconds": seconds, "requests": warm.sent, "app_id_counts": dict(warm.app_ids),
            "errors": dict(warm.errors)}


def _probe(url: str, options: CanaryOptions) -> None:
    """One request first, so an unreachable target is one clear line, not a run of errors."""
    try:
        httpx.get(url, headers=options.headers, timeout=options.timeout)
    except httpx.ConnectError as exc:
        raise UnreachableError(f"target {url} is unreachable ({exc})") from None
    except httpx.HTTPError:
        pass  # answers, even if badly: the run will count it
