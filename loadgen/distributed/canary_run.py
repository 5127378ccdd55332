"""A canary whose traffic comes from remote workers (``loadgen canary --nomad-workers N``).

The same expectation, judge and result as :func:`loadgen.canary.live.run_live`; what differs is
where the answers come from: every worker's send-ordered buckets, merged exactly by the
coordinator (:meth:`Coordinator.judged`), judged as one stream in send order -- the buckets
below every running worker's complete mark, as Locust's distributed mode judges its workers'.

The warm-up is the buckets that start before ``--warmup`` ends (rounded up to the 0.25 s
bucket: a bucket is the smallest unit the workers report). A worker lost mid-run keeps what it
reported; the rest of the run is judged on the others' interleaved shares, still a choice of
requests by send time and worker index, never by which subset answered, so the split's judge
stays valid (a note says so). ``--subset-from envoy`` and ``--record`` are one process's ways
and are refused here.

``metrics`` (``--metrics-listen``): the workers count every request on the page's fixed buckets
and send the increments with their reports; the coordinator adds each report's once, giving each
APP_ID the subset :func:`loadgen.canary.live.run_live` gives it, so the page is the one a single
process would show. Each look's verdict and comparisons reach it through ``on_look``.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from loadgen.canary.check import SplitCheck
from loadgen.canary.final import final_verdict
from loadgen.canary.options import CanaryOptions
from loadgen.canary.progress import Snapshot
from loadgen.canary.result import CanaryResult
from loadgen.canary.run_setup import set_up_run
from loadgen.canary.three_way import three_way_for
from loadgen.canary.worse import WorseTally
from loadgen.distributed.coordinator import Coordinator, merged_stats
from loadgen.distributed.drive import coordinate
from loadgen.distributed.launchers import Launcher
from loadgen.errors import UsageError
from loadgen.interrupts import flag_on_signals
from loadgen.load.identity import IdentityRule
from loadgen.load.prefix_buckets import BUCKET_S, BucketCounts
from loadgen.load.reachable import check_reachable
from loadgen.mesh.consul_api import ConsulClient

if TYPE_CHECKING:
    from loadgen.report.run_metrics import RunMetrics

__all__ = ["run_distributed_canary"]

LOOK_EVERY_S = 0.1


def run_distributed_canary(
    options: CanaryOptions, target_url: str, consul: ConsulClient | None, say: Callable[[str], None],
    launcher: Launcher, workers: int, *, on_look: Callable[[Snapshot], None] | None = None,
    notes: list[str] | None = None, envoy_admin: str | None = None, on_sending: Callable[[], None] | None = None,
    refuse_undecidable: bool = False, bind: str = "127.0.0.1", port: int = 0, start_lead_s: float | None = None,
    metrics: RunMetrics | None = None,
) -> CanaryResult:
    identity = IdentityRule.parse(options.subset_from)
    if identity.kind == "envoy":
        raise UsageError("--subset-from envoy reads one client sidecar's counters; with remote workers the answers "
                         "are counted by the workers: use auto, header:NAME or json:PATH")
    if options.record is not None:
        raise UsageError("--record writes one process's samples; it is not available with remote workers")
    setup = set_up_run(options, target_url, consul, identity, say, refuse_undecidable)
    expectation, check, n_max, load = setup.expectation, setup.check, setup.n_max, setup.load
    spec, reachable, about = expectation.spec, setup.reachable, setup.about
    # The warm-up in whole buckets: those starting before it ends are reported, not judged.
    warm_bucket = math.ceil(options.warmup / BUCKET_S - 1e-9) if options.warmup > 0 else 0
    check_reachable(target_url, options.headers, options.timeout, client=load.client())
    for line in setup.later:
        say(line)
    three = three_way_for(expectation.consul, consul, envoy_admin, options.headers, options.upstream_path)
    three.before()
    say(f"judging {spec.as_percent()}, {options.config.band_tolerance.describe()}, at "
        f"{(1 - options.config.alpha) * 100:.4g} % confidence ({options.method}); up to {n_max:,} judged requests "
        f"at {options.rate:g}/s from {workers} workers, {options.max_time:g}s at most")
    say(about)
    state: dict[str, Any] = {"signum": None, "unmapped": False}
    started = time.monotonic()
    next_look = [0.0]

    def look(coord: Coordinator) -> bool:
        now = time.monotonic()
        if now < next_look[0]:
            return False
        next_look[0] = now + LOOK_EVERY_S
        counts, below = coord.judged(from_bucket=warm_bucket)
        verdict = _judge(check, counts, below, final=False)
        sent, errors, app_ids = coord.progress()
        if on_look:
            on_look(Snapshot(verdict, sent, now - started, errors, check.worse_result))
        if expectation.unmapped_identities(Counter(app_ids)):
            state["unmapped"] = True
            return True
        return verdict.decided and options.method == "sequential"

    if on_sending:
        on_sending()
    kwargs: dict[str, Any] = {} if start_lead_s is None else {"start_lead_s": start_lead_s}
    if metrics is not None:
        mapping = expectation.mapping

        def subset_of(app_id: str) -> str | None:
            # As run_live names a sample's subset for the page: the spec's subset, else the map's
            # (a mapped APP_ID outside the spec), failed answers that name their instance too.
            return expectation.subset_of(app_id) or mapping.subset_of(app_id)

        kwargs["on_page"] = lambda _worker, increment: metrics.add_increment(increment, subset_of)
    with flag_on_signals(lambda signum: state.__setitem__("signum", signum)):
        run = coordinate(load, workers, launcher, latencies=check.worse is not None, bind=bind, port=port,
                         interrupted=lambda: state["signum"] is not None, on_tick=look, say=say, **kwargs)
    coord = run.coordinator
    three.after()
    tally = coord.merged_tally()
    unmapped = expectation.unmapped_identities(tally.app_ids, final=True)
    if unmapped:
        raise UsageError(f"--subset-from {options.subset_from}: {unmapped}")
    per_worker = coord.per_worker_stats()
    stats = merged_stats(list(per_worker.values()), state["signum"] is not None) if per_worker else None
    health = stats.health(False) if stats else None
    untrusted = None if health is None or health["valid"] else (
        "the generator could not keep the asked rate (" + "; ".join(health["problems"]) + ")")
    counts, _ = coord.judged(final=True, from_bucket=warm_bucket)
    verdict = _judge(check, counts, None, final=True, untrusted=untrusted)
    signum = state["signum"]
    stopped_by = ("interrupted" if signum is not None else "verdict" if coord.stop_reason == "verdict"
                  else stats.stopped_by if stats else "no worker reported")
    answered = dict(expectation.classify(tally.app_ids)[0])
    final = final_verdict(verdict, three, answered, options.config.alpha, signum)
    snapshot = coord.snapshot()
    run_notes = [*(notes or []), *_worker_notes(coord, run.lost, run.start_wait_s), *run.warnings, *final.notes]
    elapsed = stats.elapsed if stats else 0.0
    result = check.result(
        final.verdict, tally=tally, target=target_url, requests=tally.sent, duration_s=elapsed,
        stopped_by=stopped_by, rate_asked=options.rate, rate_achieved=tally.sent / elapsed if elapsed else None,
        late_starts=stats.late if stats else 0, signum=signum, max_requests=n_max, reachable=reachable,
        notes=run_notes, three_way=final.three_way, identity=options.subset_from,
        generator=health, judged_prefix={"order": "send", "at_last_look": None},
        workers={str(w["index"]): {**w, "judged_app_ids": coord.workers[w["index"]].answers_from(warm_bucket)}
                 for w in snapshot},
    )
    if options.warmup > 0:
        warm_counts = coord.counts_below(warm_bucket)
        result.warmup = {"seconds": warm_bucket * BUCKET_S, "requests": sum(warm_counts.app_ids.values())
                         + warm_counts.errors, "app_id_counts": dict(warm_counts.app_ids),
                         "errors": {"failed": warm_counts.errors} if warm_counts.errors else {}}
    return result


def _judge(check: SplitCheck, counts: BucketCounts, below: float | None, final: bool,
           untrusted: str | None = None) -> Any:
    subsets, unknown = check.expectation.classify(counts.app_ids)
    worse = (WorseTally.from_buckets(check.spec.names, counts, check.expectation.subset_of)
             if check.worse is not None else None)
    return check.look_counts(below, subsets, unknown, counts.errors, final, worse_tally=worse,
                             untrusted_latency=untrusted)


def _worker_notes(coord: Coordinator, lost: dict[int, str], start_wait_s: float) -> list[str]:
    notes = [f"{coord.n} remote workers: started {start_wait_s:.1f}s after launch; clock skew to the coordinator "
             f"at most {coord.max_skew_ms() or 0:.1f} ms; first sends {coord.start_spread_ms() or 0:.1f} ms apart"]
    for w in coord.snapshot():
        if w["ended_by"] == "signal":
            notes.append(f"worker {w['index']} was stopped from outside (SIGINT/SIGTERM: its allocation stopped) after "
                         f"{w['sent']:,} requests; it reported them all, and the rest is judged on the other workers' "
                         "shares")
        if w["replacements"]:
            notes.append(f"worker {w['index']}: {w['replacements']} rescheduled copy(ies) were sent away (a share "
                         "is sent by one process only)")
    for k, why in sorted(lost.items()):
        notes.append(f"worker {k} was lost mid-run ({why}): what it reported before is kept and counted once; "
                     "the rest is judged on the other workers' shares (still chosen by send time, not by answer)")
    return notes
