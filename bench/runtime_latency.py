"""Per-stage latency, process runtime vs docker runtime, in one run (`loadgen run --all-stages` on each).

Usage: LOADGEN_RUN_DIR=/tmp/lgbench python bench/runtime_latency.py [--rate 300] [--duration 10s]
Prints a Markdown table: corrected p50/p99 per stage and runtime, and docker/process ratios.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile


def run_all(runtime: str, rate: str, duration: str, out: str) -> dict[str, dict]:
    # Bring the mesh up on the wanted runtime first; `run --all-stages` keeps using it.
    subprocess.run([sys.executable, "-m", "loadgen.cli", "down", "-q"], check=True)
    subprocess.run([sys.executable, "-m", "loadgen.cli", "up", "--stage", "basic", "--runtime", runtime, "-q",
                    "--json"], check=True, stdout=subprocess.DEVNULL)
    try:
        proc = subprocess.run([sys.executable, "-m", "loadgen.cli", "run", "--rate", rate, "--duration", duration,
                               "--out", out, "--run-id", runtime, "--no-plots", "--json", "--stage", "basic"],
                              check=True, capture_output=True, text=True)
        stages = {s["stage"]: s for s in json.loads(proc.stdout)["stages"]}
        for stage in ("l7-router", "splitter"):
            subprocess.run([sys.executable, "-m", "loadgen.cli", "up", "--stage", stage, "-q", "--json"],
                           check=True, stdout=subprocess.DEVNULL)
            proc = subprocess.run([sys.executable, "-m", "loadgen.cli", "run", "--rate", rate, "--duration",
                                   duration, "--out", out, "--run-id", runtime, "--no-plots", "--json", "--stage",
                                   stage], check=True, capture_output=True, text=True)
            stages[stage] = json.loads(proc.stdout)["stages"][0]
        return stages
    finally:
        subprocess.run([sys.executable, "-m", "loadgen.cli", "down", "-q"], check=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", default="300")
    ap.add_argument("--duration", default="10s")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as out:
        results = {rt: run_all(rt, args.rate, args.duration, out) for rt in ("process", "docker")}
    print(f"open loop {args.rate}/s for {args.duration} per stage; corrected latency in ms\n")
    print("| stage | process p50 | docker p50 | process p99 | docker p99 | p99 docker/process | errors (p/d) |")
    print("|---|---|---|---|---|---|---|")
    for stage in ("basic", "l7-router", "splitter"):
        p, d = results["process"][stage], results["docker"][stage]
        pc, dc = p["latency_ms"]["corrected"], d["latency_ms"]["corrected"]
        print(f"| {stage} | {pc['p50']:.2f} | {dc['p50']:.2f} | {pc['p99']:.2f} | {dc['p99']:.2f} | "
              f"{dc['p99'] / pc['p99']:.2f} | {p['requests']['errors']}/{d['requests']['errors']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
