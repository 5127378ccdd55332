"""``POST /v1/gate``: a Flagger webhook answered with the verdict as its status code.

Flagger POSTs ``{"name", "namespace", "phase", "checksum", "metadata"}`` to every webhook and reads
any 2xx as "go on", anything else as a failed check (counted against the canary analysis'
``threshold``, and tried again at the next ``interval``). ``metadata`` (a map of strings) carries
the canary's options, as ``POST /v1/canaries`` takes them.

The answer (one line of text, the run's id in it for ``GET /v1/canaries/{id}``):

=================  ======  =================================================================
run ended           status  why
=================  ======  =================================================================
PASS                200     the split is proved inside its bands: go on
FAIL                412     proved outside (or a stale sidecar, errors over --max-errors, ...)
INCONCLUSIVE        503     not proved either way in the run's budget: not a go (Flagger only
                            reads 2xx as one), and Retry-After says when to ask again; Flagger
                            counts it as a failed check and asks at its next interval, so an
                            undecided canary holds the rollout where it is until ``threshold``
                            checks failed, then Flagger rolls back -- never forward
no verdict          502     the run could not go on (target unreachable, ...): its error
still running      503     not done within ``wait`` (under Flagger's webhook timeout): the
                            next call with the same metadata gets this run, not a new one
=================  ======  =================================================================

Reuse: a call gets the newest run with the same options (as parsed: ``5`` and ``"5"`` are one)
that is still running, or that ended within ``reuse_s`` and whose result no gate call has
reported yet; otherwise a new run starts.
So a run longer than one webhook call is reported to the next call, once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from loadgen.errors import ExitCode
from loadgen.serve.body import BodyError, TargetAllowList, parse_canary
from loadgen.serve.runs import Run, Runs

__all__ = ["GateAnswer", "answer_gate", "parse_flagger_body"]

FLAGGER_KEYS = frozenset({"name", "namespace", "phase", "checksum", "metadata"})


@dataclass(frozen=True)
class GateAnswer:
    status: int
    line: str
    retry_after_s: int | None = None


def parse_flagger_body(body: object) -> tuple[str, Mapping[str, Any]]:
    """Who asks ("podinfo.test pre-rollout") and the metadata (the canary's options)."""
    if not isinstance(body, Mapping):
        raise BodyError("the body must be Flagger's webhook payload: {\"name\", \"namespace\", \"phase\", "
                        "\"metadata\": {canary options}}")
    metadata = body.get("metadata")
    if not isinstance(metadata, Mapping) or not metadata:
        raise BodyError("'metadata' must hold the canary's options, like {\"expect\": \"85/15\", \"target\": "
                        "\"http://service-a:3000/hello_a\"} (a webhook's metadata in the Flagger Canary)")
    who = " ".join(str(body.get(k))[:63] for k in ("name", "namespace", "phase") if isinstance(body.get(k), str))
    return who or "gate", metadata


def _reusable(reuse_s: float) -> Callable[[Run], bool]:
    def reuse(run: Run) -> bool:
        if run.result is None:
            return True
        return not run.gate_answered and run.ended is not None and time.time() - run.ended <= reuse_s

    return reuse


async def answer_gate(body: object, runs: Runs, allow: TargetAllowList, wait_s: float, reuse_s: float,
                      max_time_limit: float | None) -> GateAnswer:
    """Run (or reuse) the canary a Flagger webhook asks for, and answer with its verdict.
    Raises BodyError (400/403) and runs.TooManyRuns (429) as POST /v1/canaries does."""
    who, metadata = parse_flagger_body(body)
    posted = parse_canary(metadata, allow, max_time_limit, strings_only=True)
    run = runs.start(posted, reuse=_reusable(reuse_s))
    deadline = time.monotonic() + wait_s
    while not run.done.is_set() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if not run.done.is_set():
        snap = run.snapshot
        progress = "" if snap is None else f" ({snap.sent:,} sent, look {snap.verdict.state.value})"
        return GateAnswer(503, f"RUNNING: canary {run.id} for {who} is still running{progress}; ask again",
                          retry_after_s=max(1, int(wait_s)))
    run.gate_answered = True
    return verdict_answer(run, who)


def verdict_answer(run: Run, who: str) -> GateAnswer:
    result = run.result or {}
    state, reason = str(result.get("verdict")), " ".join(str(result.get("reason", "")).split())[:500]
    code = result.get("exit_code")
    if run.error is not None or code not in (ExitCode.OK, ExitCode.FAIL, ExitCode.INCONCLUSIVE):
        return GateAnswer(502, f"ERROR: canary {run.id} for {who} reached no verdict: {run.error or reason}")
    if state == "PASS":
        return GateAnswer(200, f"PASS: canary {run.id} for {who}: {reason}")
    if state == "FAIL":
        return GateAnswer(412, f"FAIL: canary {run.id} for {who}: {reason}")
    return GateAnswer(503, f"INCONCLUSIVE: canary {run.id} for {who}: {reason}", retry_after_s=10)
