"""summary.json's typed form (loadgen.report.summary): the file's keys stay exactly as they are,
a written file reads back to the same JSON, and files of older runs still load."""

from __future__ import annotations

import json

import pytest

from loadgen.report.summary import MalformedSummary, StageSummary
from tests.unit.test_html_report import make_summary

TOP_KEYS = ["runtime", "recording_failed", "stage", "target", "mode", "concurrency", "schedule", "rate_asked",
            "duration_s", "rate_achieved", "started_at", "interrupted", "stopped_by", "timeout_s",
            "interrupted_by", "new_connection", "requests", "errors", "split", "latency_ms", "by_app_id",
            "by_status", "spectrum", "generator"]


def test_the_file_keeps_its_keys_in_order():
    s = make_summary("basic", errors=3)
    assert list(s) == TOP_KEYS
    assert list(s["requests"]) == ["sent", "ok", "errors", "dropped"]
    assert list(s["latency_ms"]["corrected"]) == ["count", "min", "mean", "p50", "p90", "p99", "p99.9", "max"]
    assert list(s["split"]["1"]) == ["count", "share"]
    assert s["concurrency"] is None and s["interrupted_by"] is None  # unset values are written as null
    assert list(s["generator"]) == ["valid", "problems", "late", "late_share", "max_late_ms", "cpu_share", "workers"]


def test_the_generator_part_keeps_its_keys_in_order():
    from dataclasses import replace

    from loadgen.load.engine import RunStats
    from loadgen.load.health import WorkerLoad

    health = RunStats(sent=10, completed=10, elapsed=1.0, dropped=2).generator_health()
    assert list(health.to_json()) == ["valid", "problems", "late", "late_share", "max_late_ms", "dropped",
                                      "dropped_share", "cpu_share"]  # the canary's JSON: no workers
    with_workers = replace(health, workers=2, per_worker=[WorkerLoad(5, 0, 1, 0.1, 1.0)]).to_json()
    assert list(with_workers)[-2:] == ["workers", "per_worker"]
    assert with_workers["per_worker"] == [{"sent": 5, "late": 0, "dropped": 1, "cpu_share": 0.1, "elapsed": 1.0}]


@pytest.mark.parametrize("kwargs", [{}, {"errors": 7, "valid": False, "interrupted": True}, {"n": 0, "errors": 5}])
def test_a_written_summary_reads_back_to_the_same_json(kwargs):
    s = make_summary("basic", **kwargs)
    assert json.dumps(StageSummary.from_json(s).to_json()) == json.dumps(s)


def test_an_older_file_without_the_newer_fields_loads():
    s = make_summary("basic")
    for key in ("runtime", "recording_failed", "interrupted_by", "timeout_s", "new_connection"):
        del s[key]
    del s["requests"]["dropped"]
    s["generator"] = {"valid": True, "problems": []}
    typed = StageSummary.from_json(s)
    assert typed.requests.dropped is None and typed.generator is not None and typed.generator.workers is None
    assert typed.info.runtime is None and typed.stage == "basic"
    assert typed.latency_ms.corrected is not None and typed.latency_ms.corrected.p99_9 == s["latency_ms"][
        "corrected"]["p99.9"]


def test_workers_per_worker_round_trips():
    s = make_summary("basic")
    s["generator"]["workers"] = 2
    s["generator"]["per_worker"] = [{"sent": 300, "late": 0, "dropped": 0, "cpu_share": 0.1, "elapsed": 1.0},
                                    {"sent": 300, "late": 1, "dropped": 0, "cpu_share": 0.2, "elapsed": 1.01}]
    assert StageSummary.from_json(s).to_json() == s
    s["generator"]["per_worker"][1]["sent"] = "x"
    with pytest.raises(MalformedSummary, match=r'generator.per_worker\[1\].sent is "x"'):
        StageSummary.from_json(s)
