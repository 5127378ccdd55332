"""Time to live and per-stage latency of each runtime (process, docker, nomad), in one run.

For each runtime: `loadgen up --stage splitter` from nothing, --repeat times (time to live as
`up` reports it: until Envoy shows the stage and /hello_a answers from both APP_IDs); then
`loadgen run` at a fixed open-loop rate on stages basic, l7-router and splitter, each after an
unmeasured warm-up run.

Usage: LOADGEN_RUN_DIR=/tmp/lgbench python bench/runtime_latency.py [--rate 300] [--duration 10s]
       [--repeat 3] [--runtimes process,docker,nomad,nomad:docker]   (RUNTIME[:NOMAD_DRIVER])
Prints Markdown tables with ratios to the process runtime (the peer).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile

STAGES = ("basic", "l7-router", "splitter")


def loadgen(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "loadgen.cli", *args], check=True, capture_output=True,
                          text=True).stdout


def up_args(runtime: str) -> list[str]:
    name, _, driver = runtime.partition(":")
    return ["--runtime", name, *(["--driver", driver] if driver else [])]


def time_to_live(runtime: str, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        loadgen("down", "-q")
        out.append(json.loads(loadgen("up", "--stage", "splitter", *up_args(runtime), "-q", "--json"))["seconds"])
    return out


def stage_latency(runtime: str, rate: str, duration: str, warmup: str, out: str) -> dict[str, dict]:
    stages = {}
    for stage in STAGES:
        loadgen("up", "--stage", stage, *up_args(runtime), "-q", "--json")
        # Not measured: the first seconds after a switch warm connection pools and the apps.
        loadgen("run", "--rate", rate, "--duration", warmup, "--out", out, "--run-id", "warmup", "--no-plots",
                "--json", "--stage", stage)
        proc = loadgen("run", "--rate", rate, "--duration", duration, "--out", out,
                       "--run-id", runtime.replace(":", "-"), "--no-plots", "--json", "--stage", stage)
        stages[stage] = json.loads(proc)["stages"][0]
    return stages


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", default="300")
    ap.add_argument("--duration", default="10s")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--warmup", default="3s", help="unmeasured load before each stage's measurement")
    ap.add_argument("--runtimes", default="process,docker,nomad,nomad:docker")
    args = ap.parse_args()
    runtimes = args.runtimes.split(",")
    live: dict[str, list[float]] = {}
    latency: dict[str, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory() as out:
        for rt in runtimes:
            try:
                live[rt] = time_to_live(rt, args.repeat)
                latency[rt] = stage_latency(rt, args.rate, args.duration, args.warmup, out)
            finally:
                loadgen("down", "-q")
    base = runtimes[0]
    print(f"time to live: `loadgen up --stage splitter --runtime RT` from nothing, {args.repeat} times\n")
    print("| runtime | median s | min s | max s | median / " + base + " |")
    print("|---|---|---|---|---|")
    for rt in runtimes:
        m = statistics.median(live[rt])
        print(f"| {rt} | {m:.1f} | {min(live[rt]):.1f} | {max(live[rt]):.1f} | "
              f"{m / statistics.median(live[base]):.2f} |")
    print(f"\nopen loop {args.rate}/s for {args.duration} per stage (after {args.warmup} unmeasured); "
          "corrected latency in ms\n")
    print("| stage | " + " | ".join(f"{rt} p50 | {rt} p99" for rt in runtimes) + " | "
          + " | ".join(f"p99 {rt}/{base}" for rt in runtimes[1:]) + " | errors |")
    print("|---|" + "---|---|" * len(runtimes) + "---|" * (len(runtimes) - 1) + "---|")
    for stage in STAGES:
        cells, ratios = [], []
        for rt in runtimes:
            c = latency[rt][stage]["latency_ms"]["corrected"]
            cells.append(f"{c['p50']:.2f} | {c['p99']:.2f}")
        b99 = latency[base][stage]["latency_ms"]["corrected"]["p99"]
        for rt in runtimes[1:]:
            ratios.append(f"{latency[rt][stage]['latency_ms']['corrected']['p99'] / b99:.2f}")
        errors = "/".join(str(latency[rt][stage]["requests"]["errors"]) for rt in runtimes)
        print(f"| {stage} | " + " | ".join(cells) + " | " + " | ".join(ratios) + f" | {errors} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
