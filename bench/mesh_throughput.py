"""Mesh throughput: the most requests per second service-a sustains at each stage here, and
which process runs out of CPU first.

For each stage of the local mesh (brought up by loadgen, put back afterwards), loadgen runs
closed loop with C connections for S seconds; meanwhile the CPU time of every mesh process
(Consul, the three apps, the three Envoy sidecars) and of the generator is measured. A
process near 100 % of a core is the limit.

Usage: python bench/mesh_throughput.py [--seconds 8] [--connections 32] [--stages basic,l7-router,splitter]
"""

from __future__ import annotations

import argparse
import sys

import psutil

from loadgen.load.engine import LoadPlan
from loadgen.mesh.local import borrowed_stage
from loadgen.mesh.runtime.process import ProcessRuntime
from loadgen.mesh.state import RunDir
from loadgen.paths import run_dir
from loadgen.stage_load import load_stage


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    out = {}
    for name, pid in pids.items():
        try:
            proc = psutil.Process(pid)
            # The generator is this process, whose children are the mesh itself: not counted twice.
            procs = [proc] if name == "generator" else [proc, *proc.children(recursive=True)]
            out[name] = sum(sum(p.cpu_times()[:2]) for p in procs)
        except psutil.Error:
            out[name] = 0.0
    return out


def _limit(shares: dict[str, float], top: str) -> str:
    total = sum(shares.values())
    cores = psutil.cpu_count() or 1
    if total >= 0.9 * cores:
        return f"all {cores} cores busy ({total * 100:.0f} %); biggest: {top} ({shares[top] * 100:.0f} %)"
    return f"{top} ({shares[top] * 100:.0f} % of a core)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--stages", default="basic,l7-router,splitter")
    args = ap.parse_args()
    rt = ProcessRuntime(RunDir(run_dir()))
    rows = []
    for stage in args.stages.split(","):
        with borrowed_stage(stage, lambda m: print(m, file=sys.stderr), rt) as target:
            pids = {name: rec.pid for name, rec in rt.run.load().processes.items()}
            pids["generator"] = psutil.Process().pid
            before = cpu_seconds(pids)
            plan = LoadPlan(url=target.service_a_url, concurrency=args.connections, max_time=args.seconds)
            result = load_stage(stage, plan, None, None)
            after = cpu_seconds(pids)
            summary = result.summary.to_json()
            wall = summary["duration_s"]
            shares = {n: (after[n] - before[n]) / wall for n in pids}
            rows.append((stage, summary, shares))
    print(f"closed loop, {args.connections} connections, {args.seconds:g}s per stage; CPU in % of one core "
          f"(this machine: {psutil.cpu_count()} cores)\n")
    names = list(rows[0][2])
    print("| stage | requests/s | errors | p50 ms | p99 ms | " + " | ".join(names) + " | limit |")
    print("|---" * (6 + len(names)) + "|")
    for stage, s, shares in rows:
        top = max(shares, key=lambda n: shares[n])
        lat = s["latency_ms"]["corrected"]
        print(f"| {stage} | {s['rate_achieved']:.0f} | {s['requests']['errors']} | {lat.get('p50', 0):.1f} | "
              f"{lat.get('p99', 0):.1f} | " + " | ".join(f"{shares[n] * 100:.0f}" for n in names)
              + f" | {_limit(shares, top)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
