"""`run|canary --nomad-workers`: the load from workers dispatched as jobs of the local Nomad agent
(the one the nomad runtime starts): one verdict from their merged send-ordered counts, one
summary.json whose histogram is the merge of theirs, a worker's allocation stopped through
Nomad's API mid-run, Ctrl-C; and no job or running allocation left after any of them.

The tests wait for the run's own "N of N workers sending" line (every worker said hello, was
given its share and reported answers) before they stop an allocation or send SIGINT: a worker
stopped before its hello would never have been part of the run."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

# The nomad runtime's shared mesh (conftest's `runtime`): its agent runs the workers too.
pytestmark = pytest.mark.parametrize("runtime", ["nomad"], indirect=True, scope="module")


def test_canary_from_three_nomad_workers_passes_on_their_merged_counts(loadgen, runtime, tmp_path):
    import re
    import signal

    from loadgen.mesh.nomad_api import NomadClient

    out = tmp_path / "result.json"
    # With its Prometheus page (issue 28): scraped once while the workers send and once after the verdict
    # (--metrics-linger keeps it up; SIGINT ends that wait, the exit code stays the verdict's).
    with _running_loadgen(loadgen, "canary", "--expect", "85/15", "--tolerance", "5", "--nomad-workers", "3",
                          "--rate", "600", "--json", str(out), "--metrics-listen", "127.0.0.1:0",
                          "--metrics-linger", "2m") as (proc, stderr):
        line = stderr.wait_for(r"metrics: http://127\.0\.0\.1:\d+/metrics", timeout=60)
        assert line, stderr.text()
        url = re.search(r"http://\S+/metrics", line).group(0)
        assert stderr.wait_for(r"3 of 3 workers sending", timeout=90), stderr.text()
        during = _scrape(url)
        assert stderr.wait_for(r"stays up 120s more", timeout=90), stderr.text()
        after = _scrape(url)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    text = stderr.text()
    assert proc.returncode == 0, text
    doc = json.loads(out.read_text())
    assert doc["verdict"] == "PASS" and doc["stopped_by"] == "verdict"
    workers = doc["workers"]
    assert sorted(workers) == ["0", "1", "2"] and all(w["final"] and w["lost"] is None for w in workers.values())
    # Each judged answer is one worker's, counted once: the workers' judged counts sum to the verdict's n.
    assert sum(sum(w["judged_app_ids"].values()) for w in workers.values()) == doc["judge"]["n"]
    assert sum(sum(w["app_ids"].values()) for w in workers.values()) == sum(doc["app_id_counts"].values())
    # The page while they sent: the coordinator's latest look (RUNNING, unless a look has just decided),
    # not final, and the counts reported so far (fewer than the run's: the workers sent on).
    assert _sum(during, "loadgen_verdict", state="RUNNING") + _sum(during, "loadgen_verdict", state="PASS") == 1
    assert _sum(during, "loadgen_verdict_final") == 0
    assert 0 < _sum(during, "loadgen_requests_total") < _sum(after, "loadgen_requests_total")
    # After the verdict: every worker's requests once, per subset and APP_ID as the result counts them.
    assert _sum(after, "loadgen_verdict", state="PASS") == 1 and _sum(after, "loadgen_verdict_final") == 1
    assert _sum(after, "loadgen_judged_answers") == doc["judge"]["n"]
    assert _sum(after, "loadgen_requests_total") == doc["requests"] == sum(w["sent"] for w in workers.values())
    for app_id, n in doc["app_id_counts"].items():
        assert _sum(after, "loadgen_answers_total", app_id=app_id) == n
    for subset in ("v1", "v2"):
        mapped = [a for a, s in doc["mapping"]["app_ids"].items() if s == subset]
        assert _sum(after, "loadgen_answers_total", subset=subset) == sum(doc["app_id_counts"].get(a, 0)
                                                                          for a in mapped) > 0
    assert _sum(after, "loadgen_request_duration_seconds_count") >= sum(doc["app_id_counts"].values())
    with NomadClient() as nomad:  # every dispatched worker job, and the parameterized job, purged
        assert [j["ID"] for j in nomad.jobs(prefix="loadgen-worker")] == []


def _scrape(url: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of the page, through the Prometheus client's own parser."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=10) as answer:
        text = answer.read().decode()
    return [(s.name, s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples]


def _sum(page: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    return sum(v for n, got, v in page if n == name and all(got.get(k) == want for k, want in labels.items()))


def test_a_worker_nomad_cannot_place_is_a_clear_error_and_nothing_is_left(loadgen, runtime):
    from loadgen.distributed.drive import coordinate
    from loadgen.distributed.nomad_jobs import NomadLauncher
    from loadgen.errors import ExitCode, LoadgenError
    from loadgen.load.engine import LoadPlan
    from loadgen.mesh.nomad_api import NomadClient

    plan = LoadPlan(url="http://127.0.0.1:3000/hello_a", rate=100, max_time=5, timeout=2)
    # No node has 10 TB of memory: the dispatch's evaluation says so, and the run gives up at its start bound.
    with pytest.raises(LoadgenError) as failed:
        coordinate(plan, 2, NomadLauncher(variables={"memory": "10000000"}), start_timeout=3)
    assert failed.value.code == ExitCode.UNREACHABLE
    assert "did not start within 3s" in failed.value.message and "memory" in failed.value.message, failed.value.message
    with NomadClient() as nomad:
        assert [j["ID"] for j in nomad.jobs(prefix="loadgen-worker")] == []


class _StderrLines:
    """A running loadgen's stderr, read on a thread, so a test can wait for a line (with a deadline)."""

    def __init__(self, proc) -> None:
        import threading

        self.lines: list[str] = []
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._read, args=(proc.stderr,), daemon=True)
        self.thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            with self.changed:
                self.lines.append(line)
                self.changed.notify_all()
        with self.changed:
            self.lines.append("")  # EOF
            self.changed.notify_all()

    def wait_for(self, pattern: str, timeout: float) -> str | None:
        import re
        import time

        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                found = next((ln for ln in self.lines if re.search(pattern, ln)), None)
                if found is not None or (self.lines and self.lines[-1] == "") or time.monotonic() > deadline:
                    return found
                self.changed.wait(timeout=max(0.0, deadline - time.monotonic()))

    def text(self) -> str:
        self.thread.join(timeout=10)
        return "".join(self.lines)


@contextlib.contextmanager
def _running_loadgen(loadgen, *args: str) -> Iterator[tuple[subprocess.Popen, _StderrLines]]:
    """`loadgen ARGS` as a process whose stderr lines can be waited for; killed if it still runs
    when the block ends (a failed assertion must not leave it sending)."""
    proc = subprocess.Popen([sys.executable, "-m", "loadgen.cli", *args], env=loadgen.env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        yield proc, _StderrLines(proc)
    finally:
        if proc.poll() is None:
            proc.kill()


def _worker_jobs_and_allocations(nomad) -> tuple[list[str], list[dict]]:
    """The worker jobs Nomad knows (the parameterized one and its dispatches), and their allocations
    that are still pending or running (purged jobs' allocations may be listed until Nomad's GC:
    what matters is that none runs)."""
    jobs = [j["ID"] for j in nomad.jobs(prefix="loadgen-worker")]
    allocs = [a for a in nomad._request("GET", "/v1/allocations") or []
              if a["JobID"].startswith("loadgen-worker") and a["ClientStatus"] in ("pending", "running")]
    return jobs, allocs


def test_run_from_two_nomad_workers_writes_one_summary_whose_histogram_is_their_merge(loadgen, runtime, tmp_path):
    import io

    from hdrh.histogram import HdrHistogram

    from loadgen.load.histograms import new_histogram, summarize
    from loadgen.mesh.nomad_api import NomadClient

    loadgen("run", "--stage", "splitter", "--rate", "400", "--duration", "2s", "--nomad-workers", "2",
            "--out", str(tmp_path), "--run-id", "r", "--no-plots", "-q", timeout=180)
    stage = tmp_path / "r" / "splitter"
    summary = json.loads((stage / "summary.json").read_text())
    figures = json.loads((stage / "workers.json").read_text())
    workers = figures["per_worker"]
    assert [w["index"] for w in workers] == [0, 1] and summary["generator"]["workers"] == 2
    assert all(w["final"] and w["ended_by"] == "finished" and w["lost"] is None for w in workers), workers
    assert summary["requests"]["sent"] == sum(w["sent"] for w in workers)
    # The two shares are the whole schedule: each of its 800 requests sent by one worker (or, on a
    # machine too busy for the rate, counted as dropped by it).
    assert summary["requests"]["sent"] + summary["requests"]["dropped"] == 800
    merged = {m: new_histogram() for m in ("corrected", "service")}
    for w in workers:
        for measure, blob in w["hdr"].items():
            h = HdrHistogram.decode(blob.encode("ascii"))
            if measure == "corrected":  # the worker's final tally, not an older one: every request it sent is in it
                assert h.get_total_count() == w["sent"], (w["index"], h.get_total_count(), w["sent"])
            merged[measure].add(h)
    # summary.json's figures and histogram.hgrm are the merge of the two workers' histograms, at HDR precision.
    assert summary["latency_ms"]["corrected"] == summarize(merged["corrected"])
    assert summary["latency_ms"]["service"] == summarize(merged["service"])
    hgrm = io.BytesIO()
    merged["corrected"].output_percentile_distribution(hgrm, 1000.0)
    assert (stage / "histogram.hgrm").read_bytes() == hgrm.getvalue()
    with NomadClient() as nomad:
        assert _worker_jobs_and_allocations(nomad) == ([], [])


def test_a_worker_allocation_stopped_mid_run_is_reported_counted_once_and_judged_on(loadgen, runtime, tmp_path):
    from loadgen.mesh.nomad_api import NomadClient

    out = tmp_path / "result.json"
    # ±4 points: the verdict needs ~1,300 answers (~3 s at 400/s), time enough for Nomad to stop the
    # allocation after the sending line (~0.3 s here) even on a slow machine.
    with _running_loadgen(loadgen, "canary", "--expect", "85/15", "--tolerance", "4", "--nomad-workers", "3",
                          "--rate", "400", "--warmup", "0.25s", "--json", str(out)) as (proc, stderr):
        # Every worker said hello, was given its share and has reported answers: worker 1 is part of the run.
        sending = stderr.wait_for(r"3 of 3 workers sending", timeout=90)
        assert sending, stderr.text()
        with NomadClient() as nomad:
            job = next(j["ID"] for j in nomad.jobs(prefix="loadgen-worker/")
                       if (nomad.job(j["ID"]) or {}).get("Meta", {}).get("index") == "1")
            alloc = next(a["ID"] for a in nomad.allocations(job) if a["ClientStatus"] == "running")
            nomad._request("POST", f"/v1/allocation/{alloc}/stop")
        proc.wait(timeout=120)
    text = stderr.text()
    assert proc.returncode == 0, text
    doc = json.loads(out.read_text())
    # README "Faults": the run says so, keeps what the worker reported (each bucket once) and judges on.
    assert doc["verdict"] == "PASS" and doc["stopped_by"] == "verdict", text
    workers = doc["workers"]
    stopped = workers["1"]
    assert stopped["ended_by"] == "signal" and stopped["final"], stopped
    assert all(workers[k]["ended_by"] == "stop" for k in ("0", "2")), workers
    assert 0 < stopped["sent"] < min(workers["0"]["sent"], workers["2"]["sent"]), workers
    assert any(n.startswith("worker 1 was stopped from outside") for n in doc["notes"]), doc["notes"]
    # Its buckets past the 0.25 s warm-up are judged (it was stopped after its first report), each once:
    # the workers' judged answers add up to the verdict's n, and all their answers to the result's.
    assert sum(stopped["judged_app_ids"].values()) > 0, stopped
    assert sum(sum(w["judged_app_ids"].values()) for w in workers.values()) == doc["judge"]["n"]
    assert sum(sum(w["app_ids"].values()) for w in workers.values()) == sum(doc["app_id_counts"].values())
    with NomadClient() as nomad:
        assert _worker_jobs_and_allocations(nomad) == ([], [])


def test_ctrl_c_mid_run_writes_every_output_exits_130_and_leaves_no_job_or_allocation(loadgen, runtime, tmp_path):
    import signal

    from loadgen.mesh.nomad_api import NomadClient

    result, junit = tmp_path / "result.json", tmp_path / "junit.xml"
    with _running_loadgen(loadgen, "canary", "--expect", "85/15", "--tolerance", "5", "--nomad-workers", "2",
                          "--rate", "400", "--warmup", "5s", "--json", str(result), "--junit", str(junit),
                          ) as (proc, stderr):
        assert stderr.wait_for(r"2 of 2 workers sending", timeout=90), stderr.text()
        with NomadClient() as nomad:  # the workers run as Nomad allocations now
            assert len(_worker_jobs_and_allocations(nomad)[1]) == 2
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    text = stderr.text()
    assert proc.returncode == 130, text
    doc = json.loads(result.read_text())
    assert doc["stopped_by"] == "interrupted" and doc["verdict"] == "INCONCLUSIVE", doc
    assert all(w["final"] and w["ended_by"] == "stop" for w in doc["workers"].values()), doc["workers"]
    assert "<testsuite" in junit.read_text()
    with NomadClient() as nomad:
        assert _worker_jobs_and_allocations(nomad) == ([], [])
