"""run_workers when no worker reports at all: one line the user can act on, exit 5."""

from __future__ import annotations

import time

import pytest

from loadgen.errors import EnvironmentProblem, ExitCode
from loadgen.load import workers
from loadgen.load.engine import LoadPlan


def _die_at_once(*_args: object) -> None:
    """A worker killed before it could say anything (the OOM killer, a kill -9)."""
    import os

    os._exit(137)


def test_workers_that_all_die_are_an_environment_problem(monkeypatch):
    # spawn pickles the target by reference: a module-level function of this test module.
    monkeypatch.setattr(workers, "_worker", _die_at_once)
    plan = LoadPlan(url="http://127.0.0.1:1/hello_a", rate=10, max_time=1, timeout=1)
    began = time.monotonic()
    with pytest.raises(EnvironmentProblem) as info:
        workers.run_workers(plan, 2)
    assert info.value.code == ExitCode.ENVIRONMENT
    message = str(info.value)
    assert "none of the 2 load worker processes sent a report" in message and "\n" not in message
    assert time.monotonic() - began < 20  # dead workers are noticed, not waited out


def test_final_reports_merge_exactly_into_one_tally():
    """What the parent does with FinalReport tallies: the same counts and histograms as one process."""
    from loadgen.load.sample import Sample
    from loadgen.load.tally import Tally

    parts, whole = [Tally(), Tally()], Tally()
    for i in range(500):
        s = Sample(t=i / 100, status=200 if i % 7 else 503, app_id=str(1 + i % 2) if i % 7 else None,
                   latency_ms=1 + i % 13, error=None if i % 7 else "http_503", service_ms=0.5)
        parts[i % 2].add(s)
        whole.add(s)
    merged = Tally.merged(p.encode() for p in parts)
    assert merged.app_ids == whole.app_ids and merged.errors == whole.errors and merged.sent == 500
    assert merged.book.summary() == whole.book.summary()
