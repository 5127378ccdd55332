"""How many workers one coordinator can take: synthetic workers post realistic reports as fast as
they can, and the coordinator's CPU, reports/s and bytes/s are measured.

A synthetic worker's report is what a real one sends every 0.25 s at RATE requests/s of its own:
the send-ordered bucket completed since its last report (answers per APP_ID for two APP_IDs,
per-APP_ID latency bins when --latencies), with the cumulative HDR tally every 8th report (as
loadgen/distributed/worker.py does). Workers are processes posting over loopback with keep-alive,
back to back; the coordinator is the real one (loadgen/distributed/coordinator.py) on its own
thread of this process, whose CPU time is the coordinator's.

    .venv/bin/python bench/coordinator_ingest.py --workers 1 4 16 --seconds 5 --rate 5000 --latencies
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import random
import time

import httpx

from loadgen.distributed.coordinator import Coordinator
from loadgen.distributed.protocol import REPORT_PATH, TOKEN_HEADER
from loadgen.load.engine import LoadPlan
from loadgen.load.prefix_buckets import PrefixBuckets
from loadgen.load.sample import Sample
from loadgen.load.tally import Tally


def reports_of(index: int, workers: int, rate: float, count: int, latencies: bool) -> list[bytes]:
    """``count`` consecutive reports of worker ``index``, JSON-encoded (built before the clock starts)."""
    rng = random.Random(index)
    tally, prefix, out = Tally(), PrefixBuckets(latencies=latencies), []
    per_bucket = max(1, int(rate * prefix.bucket_s))
    for seq in range(1, count + 1):
        for i in range(per_bucket):
            t = (seq - 1) * prefix.bucket_s + i / rate
            app = "1" if rng.random() < 0.85 else "2"
            s = Sample(t=t, status=200, app_id=app, latency_ms=rng.lognormvariate(1.5, 0.6), error=None)
            tally.add(s)
            prefix.add(t, s)
        prefix.advance(seq * prefix.bucket_s)
        body = {"index": index, "of": workers, "instance": "", "seq": seq, "prefix": prefix.report(),
                "progress": {"sent": tally.sent, "errors": 0, "app_ids": dict(tally.app_ids)}}
        if seq % 8 == 1:
            body["tally"] = tally.encode()
        out.append(json.dumps(body).encode())
    return out


def _poster(url: str, token: str, bodies: list[bytes], go: object, stop_at: object, out: object) -> None:
    """One synthetic worker (a process of its own): post its reports back to back until ``stop_at``."""
    sent = nbytes = 0
    with httpx.Client(base_url=url, headers={TOKEN_HEADER: token, "Content-Type": "application/json"}) as http:
        out.put("ready")  # type: ignore[attr-defined]
        go.wait()  # type: ignore[attr-defined]
        for body in bodies:
            if time.time() > stop_at.value:  # type: ignore[attr-defined]
                break
            http.post(REPORT_PATH, content=body).raise_for_status()
            sent += 1
            nbytes += len(body)
    out.put((sent, nbytes))  # type: ignore[attr-defined]


def run(workers: int, seconds: float, rate: float, latencies: bool) -> dict[str, float]:
    coord = Coordinator(LoadPlan(url="http://127.0.0.1:9/", rate=1), workers, latencies=latencies)
    coord.start()
    count = int(seconds / 0.25) * 4 + 8  # more than a run of `seconds` at full speed can post
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    go, stop_at = ctx.Event(), ctx.Value("d", 0.0)
    procs = [ctx.Process(target=_poster, args=(coord.url, coord.token, reports_of(k, workers, rate, count, latencies),
                                               go, stop_at, out)) for k in range(workers)]
    for p in procs:
        p.start()
    for _ in procs:
        out.get()  # every poster is ready
    start_at = time.time()
    stop_at.value = start_at + seconds
    go.set()
    cpu0 = time.process_time()  # this process is the coordinator's (its server thread; the main thread waits)
    results = [out.get() for _ in procs]
    wall = time.time() - start_at
    coordinator_cpu = time.process_time() - cpu0
    for p in procs:
        p.join()
    merged = coord.merged_tally().sent
    coord.close()
    reports = sum(r[0] for r in results)
    nbytes = sum(r[1] for r in results)
    return {"workers": workers, "reports_per_s": reports / wall, "mb_per_s": nbytes / wall / 1e6,
            "coordinator_cpu_share": coordinator_cpu / wall, "cpu_ms_per_report": 1000 * coordinator_cpu / reports,
            "kb_per_report": nbytes / reports / 1e3,
            # What the posted reports stand for: each is 0.25 s of a worker sending `rate`/s.
            "worker_seconds_per_s": reports * 0.25 / wall, "requests_merged": merged}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rate", type=float, default=5000.0, help="each synthetic worker's requests/s")
    ap.add_argument("--latencies", action="store_true", help="per-APP_ID latency bins in the buckets")
    args = ap.parse_args()
    print("| workers | reports/s | MB/s | coordinator CPU | CPU ms/report | kB/report | workers kept up with |")
    print("|---|---|---|---|---|---|---|")
    for n in args.workers:
        r = run(n, args.seconds, args.rate, args.latencies)
        print(f"| {n} | {r['reports_per_s']:.0f} | {r['mb_per_s']:.2f} | {r['coordinator_cpu_share']:.0%} | "
              f"{r['cpu_ms_per_report']:.2f} | {r['kb_per_report']:.1f} | {r['worker_seconds_per_s']:.0f} |")


if __name__ == "__main__":
    main()
