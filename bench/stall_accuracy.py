"""Coordinated omission, shown: a 1 s service pause, as loadgen's corrected latency, its service
time, and wrk (closed loop) each report it -- the wrk2 demonstration, in one run.

A service-b process (its own, on 127.0.0.1:39001) answers /hello_b; 3 s into each 10 s run it
is told to pause for 1 s (POST /test/stall). Each generator keeps 16 connections:

* loadgen open loop at 200/s with at most 16 requests in flight: requests whose intended
  start falls in the pause wait for a connection; corrected latency counts that wait;
* the same run's service time (from the actual send) does not -- what a closed-loop tool sees;
* wrk, closed loop, 16 connections: only the requests in flight when the pause began see it.

Of 2,000 requests about 200 (10 %) were due during the pause, waiting 1 s down to 0: an honest
p95 is about 500 ms and p99 about 900 ms.

Usage: python bench/stall_accuracy.py [--pause 1.0]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from loadgen.load.engine import LoadPlan, run_blocking, run_load
from loadgen.load.histograms import LatencyBook

PORT = 39001
URL = f"http://127.0.0.1:{PORT}/hello_b"
ROOT = Path(__file__).resolve().parent.parent


def pause_later(delay: float, seconds: float) -> threading.Timer:
    def fire() -> None:
        httpx.post(f"http://127.0.0.1:{PORT}/test/stall?seconds={seconds}", timeout=5)

    timer = threading.Timer(delay, fire)
    timer.start()
    return timer


def wrk_percentiles(out: str) -> dict[str, float]:
    got = {}
    for pct, value, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        got[f"p{pct}"] = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    m = re.search(r"Latency\s+[\d.]+\w+\s+[\d.]+\w+\s+([\d.]+)(us|ms|s)", out)
    if m:
        got["max"] = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    return got


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pause", type=float, default=1.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    env = {**os.environ, "PORT": str(PORT), "APP_ID": "1", "VERSION": "v1"}
    service = subprocess.Popen([sys.executable, "-m", "services.service_b.app"], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx.get(URL, timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise SystemExit("service-b did not start") from None
                time.sleep(0.1)

        book = LatencyBook()
        plan = LoadPlan(url=URL, rate=200, max_time=args.seconds, max_in_flight=16)
        timer = pause_later(3.0, args.pause)
        stats = run_blocking(lambda: run_load(plan, book.record))
        timer.join()
        time.sleep(args.pause)

        timer = pause_later(3.0, args.pause)
        out = subprocess.run(["wrk", "-t1", "-c16", f"-d{args.seconds:g}s", "--latency", URL], capture_output=True,
                             text=True, check=True).stdout
        timer.join()
    finally:
        service.terminate()
        service.wait(10)

    corrected, service_t = book.summary("corrected"), book.summary("service")
    wrk = wrk_percentiles(out)
    m = re.search(r"(\d+) requests in", out)
    wrk_n = int(m.group(1)) if m else 0
    print(f"a {args.pause:g}s pause 3s into a {args.seconds:g}s run; 16 connections each; loadgen at 200/s "
          f"open loop sent {stats.sent} ({stats.late} started late)\n")
    print("| measure | p50 ms | p90 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|")
    print(f"| loadgen corrected (from intended start) | {corrected['p50']:.1f} | {corrected['p90']:.1f} | "
          f"{corrected['p99']:.1f} | {corrected['max']:.1f} |")
    print(f"| loadgen service time (from send) | {service_t['p50']:.1f} | {service_t['p90']:.1f} | "
          f"{service_t['p99']:.1f} | {service_t['max']:.1f} |")
    nan = float("nan")
    print(f"| wrk, closed loop ({wrk_n} requests) | {wrk.get('p50', nan):.1f} | {wrk.get('p90', nan):.1f} | "
          f"{wrk.get('p99', nan):.1f} | {wrk.get('max', nan):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
