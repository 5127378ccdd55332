"""A live canary run: drive traffic through service-a and judge the split as it comes in.

Wires mesh (APP_ID map, live splitter) -> load engine (samples) -> :class:`SplitCheck` (the
judge) and hands a :class:`CanaryResult` to the reporters. A run stops as soon as the judge
is sure, at its budget, or on Ctrl-C / SIGTERM; whatever was collected is judged and
reported in every case.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any

from loadgen import interrupts
from loadgen.canary.final import final_verdict
from loadgen.canary.options import CanaryOptions
from loadgen.canary.progress import Snapshot
from loadgen.canary.result import CanaryResult
from loadgen.canary.run_setup import set_up_run
from loadgen.canary.three_way import three_way_for
from loadgen.canary.worse import latency_plan_for, latency_plan_line
from loadgen.errors import LoadgenError, UsageError
from loadgen.load.engine import RunStats, run_blocking, run_load
from loadgen.load.identity import IdentityRule
from loadgen.load.reachable import check_reachable
from loadgen.load.sample import Sample, SampleWriter
from loadgen.load.send_order import PrefixLag, SendOrder
from loadgen.load.tally import Tally
from loadgen.mesh.consul_api import ConsulClient
from loadgen.stats import VerdictState

__all__ = ["LOOK_EVERY_S", "judged_prefix_line", "run_live"]

LOOK_EVERY_S = 0.1  # how often the live run asks the judge
UNIDENTIFIED_STOP = 50  # answers without the --subset-from identity, and none with it: a wrong spec
LOOK_EVERY_ENVOY_S = 0.5  # --subset-from envoy: each look reads the sidecar's counters over HTTP


def run_live(
    options: CanaryOptions, target_url: str, consul: ConsulClient | None, say: Callable[[str], None],
    on_look: Callable[[Snapshot], None] | None = None, notes: list[str] | None = None,
    envoy_admin: str | None = None, on_sending: Callable[[], None] | None = None,
    refuse_undecidable: bool = False, on_sample: Callable[[Sample, str | None], None] | None = None,
    cancel: threading.Event | None = None,
) -> CanaryResult:
    """``envoy_admin``: the client sidecar's Envoy admin (``--envoy-admin``, or service-a's
    sidecar on the local mesh); None leaves the Envoy column empty. ``on_sending`` is called
    when the set-up is over and the first request is about to go: a signal before it stops the
    set-up (Interrupted / Terminated, canary.unstarted), one after it stops the run.
    ``refuse_undecidable``: a budget too small to decide the split (``--expect consul``'s, known only
    now) is a UsageError before anything is sent (`loadgen canary`; a shift sizes its own).
    ``on_sample``: each sample as it is released in send order (warm-up included), with the subset
    its APP_ID maps to (None: no APP_ID, or unmapped): the Prometheus page's feed (report/run_metrics.py).
    ``cancel``: set from another thread (``loadgen serve``'s DELETE) to stop the run as a signal
    would: signal handlers only reach the main thread, and a server runs each canary in a worker
    thread. What was collected is judged; an undecided verdict says it was cancelled."""
    identity = IdentityRule.parse(options.subset_from)
    from_envoy = identity.kind == "envoy"
    if from_envoy and envoy_admin is None:
        raise UsageError("--subset-from envoy counts the client sidecar's per-cluster requests: give its Envoy "
                         "admin with --envoy-admin ADDR (on the local mesh it is found by itself)")
    setup = set_up_run(options, target_url, consul, identity, say, refuse_undecidable)
    expectation, check, n_max, warm, load = setup.expectation, setup.check, setup.n_max, setup.warm, setup.load
    spec, mapping, reachable, about = expectation.spec, expectation.mapping, setup.reachable, setup.about
    if not reachable:
        say(about)  # before anything is sent
    check_reachable(target_url, options.headers, options.timeout, client=load.client())
    for line in setup.later:
        say(line)
    if expectation.consul is not None:
        view = expectation.consul
        say(f"Consul compiled {view.compiled.upstream}'s chain for {view.compiled.request.describe()}: "
            f"{view.compiled.route}; " + "; ".join(f"{n} {w * 100:.4g} % ({view.path(n)})"
                                                   for n, w in zip(view.spec.names, view.spec.weights, strict=True)
                                                   if w > 0))
    three = three_way_for(expectation.consul, consul, envoy_admin, options.headers, options.upstream_path)
    three.before()
    if from_envoy:
        say("--subset-from envoy: the judged counts are the client sidecar's per-cluster requests, which include "
            "any other traffic through that sidecar")
    say(f"judging {spec.as_percent()}, {options.config.band_tolerance.describe()}, at "
        f"{(1 - options.config.alpha) * 100:.4g} % confidence ({options.method}); up to {n_max:,} judged requests "
        f"at {options.rate:g}/s, {options.max_time:g}s at most")
    if reachable:
        say(about)
    if check.worse is not None and (plan := latency_plan_for(check.worse.options, spec, options.config.alpha)):
        say(latency_plan_line(plan, min(n_max, int(options.rate * options.max_time))))
    if options.warmup > 0:
        say(f"warm-up: the {warm:,} requests of the first {options.warmup:g}s are reported but not judged (on top "
            "of the judged budget)")
    writer = SampleWriter(options.record) if options.record else None
    state: dict[str, Any] = {"stop": False, "signum": None}

    def judge_sample(sample: Sample) -> None:
        subset = check.add(sample)
        if writer:
            writer.write(sample, subset)
        if on_sample:
            # A failed answer that still names its instance (service-b's 500) counts for that subset.
            named = subset if sample.ok or sample.app_id is None else \
                (expectation.subset_of(sample.app_id) or mapping.subset_of(sample.app_id))
            on_sample(sample, named)

    # The judge sees answers in the order their requests were sent, up to the earliest request
    # still in flight (load.send_order): a faster or slower subset cannot skew what is judged.
    order = SendOrder(judge_sample)
    lag_at_look: list[PrefixLag] = []  # the judged prefix's lag at the latest look

    baseline = three.start.counters if three.start else {}

    async def monitor(started: float) -> None:
        nonlocal baseline
        rebased = options.warmup <= 0
        while not state["stop"]:
            await asyncio.sleep(LOOK_EVERY_ENVOY_S if from_envoy else LOOK_EVERY_S)
            if cancel is not None and cancel.is_set():
                state["stop"], state["cancelled"] = True, True
            elapsed = time.monotonic() - started
            # A look is dated by the send time up to which the judged prefix is complete.
            judged_t = order.frontier_t or 0.0
            lag_at_look[:] = [order.lag()]
            if from_envoy:
                try:
                    counters = await asyncio.to_thread(three.counters_now)
                except LoadgenError:
                    continue  # the sidecar's admin did not answer this time; the next look asks again
                if not rebased:  # the warm-up's requests are not judged: count from its end
                    if elapsed >= options.warmup:
                        baseline, rebased = counters, True
                    continue
                counts = three.answers(baseline, counters)
                verdict = check.look_counts(elapsed, counts, 0, check.tally.error_count)
            else:
                verdict = check.look(judged_t)
            if writer:
                writer.flush()
            if on_look:
                on_look(Snapshot(verdict, check.tally.sent, time.monotonic() - started, check.tally.error_count,
                                 check.worse_result))
            if verdict.decided and options.method == "sequential":
                state["stop"] = True
            if identity_never_matched(identity, check.warm, check.tally):
                state["stop"], state["unidentified"] = True, True
            elif not from_envoy and expectation.unmapped_identities(check.tally.app_ids + check.warm.app_ids):
                state["stop"] = True  # a usage error, said after the run (unmapped_identities again)

    async def main() -> RunStats:
        def stop(signum: int) -> None:
            state["stop"] = True
            state["signum"] = signum

        with interrupts.stop_on_signals(asyncio.get_running_loop(), stop):
            started = time.monotonic()
            mon = asyncio.create_task(monitor(started))
            try:
                return await run_load(load, order, lambda: state["stop"])
            finally:
                state["stop"] = True
                await asyncio.gather(mon, return_exceptions=True)

    if on_sending:
        on_sending()
    try:
        stats = run_blocking(main)  # type: ignore[assignment]
    finally:
        if writer:
            writer.close()
    three.after()
    if state.get("unidentified") or identity_never_matched(identity, check.warm, check.tally):
        raise UsageError(f"--subset-from {options.subset_from} named no backend in any of the first "
                         f"{_unidentified(check.warm, check.tally):,} answers (HTTP 200 without that header or JSON "
                         "field): check the name, or use --subset-from envoy")
    # Answers whose names are neither mapped APP_IDs nor subset names: the map or the rule is wrong.
    unmapped = None if from_envoy else expectation.unmapped_identities(check.tally.app_ids + check.warm.app_ids,
                                                                       final=True)
    if unmapped:
        raise UsageError(f"--subset-from {options.subset_from}: {unmapped}")
    # One last look that includes the responses still in flight when the run stopped. The
    # sequential judge's intervals only narrow, so a verdict reached at a look stands.
    if from_envoy:
        end = three.end.counters if three.end else baseline
        verdict = check.look_counts(stats.elapsed, three.answers(baseline, end), 0, check.tally.error_count,
                                    final=True)
    else:
        health = stats.health(False)
        untrusted = None if health["valid"] else ("the generator could not keep the asked rate ("
                                                   + "; ".join(health["problems"]) + ")")
        verdict = check.look(order.frontier_t or 0.0, final=True, untrusted_latency=untrusted)
    signum = state["signum"]
    stopped_by = "verdict" if verdict.decided and stats.stopped_by == "stop" and signum is None \
        else ("interrupted" if signum is not None else stats.stopped_by)
    if state.get("cancelled") and signum is None:
        stopped_by = "cancelled"
        if verdict.state is VerdictState.INCONCLUSIVE:
            verdict = dataclasses.replace(verdict, reason=f"cancelled: {verdict.reason}")
    # The one final verdict of every canary (canary.final): a stale sidecar fails the run
    # whatever the traffic did, and an undecided interrupted run says so.
    answered = None if from_envoy else dict(expectation.classify(check.tally.app_ids + check.warm.app_ids)[0])
    final = final_verdict(verdict, three, answered, options.config.alpha, signum)  # counters count the warm-up too
    return check.result(
        final.verdict, target=target_url, requests=stats.sent, duration_s=stats.elapsed, stopped_by=stopped_by,
        rate_asked=options.rate, rate_achieved=stats.achieved_rate, late_starts=stats.late, signum=signum,
        max_requests=n_max, reachable=reachable,
        notes=[*(notes or []), *check.tally.went_silent(stats.elapsed), *final.notes],
        judged_prefix=judged_prefix(lag_at_look[0] if lag_at_look else None, from_envoy),
        three_way=final.three_way, identity=options.subset_from,
        recorded_to=str(options.record) if options.record else None, generator=stats.health(False),
        recording_failed=writer.failed if writer else None,
    )


def judged_prefix(lag: PrefixLag | None, from_envoy: bool) -> dict[str, Any]:
    """How the run was judged, for the result: answers in send order, and how far the judged prefix
    trailed the newest request at the last look before the run stopped (the final look judges
    every request sent, once all have ended)."""
    return {
        "order": "routed by the client sidecar" if from_envoy else "send",
        "at_last_look": None if lag is None else lag.to_json(),
    }


def judged_prefix_line(prefix: dict[str, Any]) -> str | None:
    """The judged prefix in one line for people (None when there is nothing to say)."""
    if prefix.get("order") != "send":
        return f"judged: requests as {prefix.get('order')}" if prefix.get("order") else None
    last = prefix.get("at_last_look")
    if not last:
        return "judged in send order"
    return (f"judged in send order: at the last look the judged prefix trailed the newest request by "
            f"{last['lag_s'] * 1000:.0f} ms ({_count(last['held'], 'answer')} held back behind "
            f"{_count(last['in_flight'], 'request')} still in flight; the final look judged them all)")


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def identity_never_matched(identity: IdentityRule, *tallies: Tally) -> bool:
    """A --subset-from rule that found nothing in the first answers (the warm-up's count too)
    and never anything is a mistake in the rule, not a split to judge."""
    if identity.kind in ("auto", "envoy") or any(t.app_ids for t in tallies):
        return False
    return _unidentified(*tallies) >= UNIDENTIFIED_STOP


def _unidentified(*tallies: Tally) -> int:
    return sum(t.errors.get("no_app_id", 0) for t in tallies)
