"""`loadgen run` from 1, 2 and 3 Nomad workers against the mesh, beside one local process:
throughput, latency, the generators' CPU per request and the coordinator's (the merge's) CPU.

Needs the local mesh on the nomad runtime (its agent runs the workers) and the mesh lock:

    flock /tmp/loadgen-mesh.lock .venv/bin/python bench/nomad_workers.py --rate 600 --duration 10s
    flock /tmp/loadgen-mesh.lock .venv/bin/python bench/nomad_workers.py --target http://127.0.0.1:9000/hello_b

(``--target`` at service-a's upstream listener: Envoy straight to service-b, no service-a.)
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile


def one(workers: int, args: argparse.Namespace, out: str) -> dict[str, object]:
    cmd = [sys.executable, "-m", "loadgen.cli", "run", "--rate", str(args.rate), "--duration", args.duration,
           "--out", out, "--run-id", f"w{workers}", "--overwrite", "--no-plots", "--json", "-q"]
    cmd += ["--target", args.target] if args.target else ["--stage", "splitter"]
    if workers:
        cmd += ["--nomad-workers", str(workers)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    stage = json.loads(proc.stdout)["stages"][0]
    gen = stage["generator"]
    sent = stage["requests"]["sent"]
    per = gen.get("per_worker") or [{"cpu_share": gen["cpu_share"], "elapsed": stage["duration_s"]}]
    gen_cpu = sum(w["cpu_share"] * w["elapsed"] for w in per)
    cli_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    lat = stage["latency_ms"]["corrected"]
    return {"workers": workers or "local", "sent": sent, "rate": stage["rate_achieved"], "p50": lat.get("p50"),
            "p99": lat.get("p99"), "late": gen["late_share"], "gen_us_per_req": 1e6 * gen_cpu / sent if sent else None,
            # Local: the CLI is the generator. Remote: the CLI is the coordinator (start-up and imports included).
            "cli_cpu_s": cli_cpu}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=600)
    ap.add_argument("--duration", default="10s")
    ap.add_argument("--target", default=None)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2, 3], help="0: one local process")
    args = ap.parse_args()
    out = tempfile.mkdtemp(prefix="loadgen-bench-")
    print("| workers | sent | rate/s | p50 ms | p99 ms | late | generator CPU µs/request | CLI CPU s |")
    print("|---|---|---|---|---|---|---|---|")
    for n in args.workers:
        r = one(n, args, out)
        print(f"| {r['workers']} | {r['sent']} | {r['rate']:.0f} | {r['p50']:.1f} | {r['p99']:.1f} | {r['late']:.1%} | "
              f"{r['gen_us_per_req']:.0f} | {r['cli_cpu_s']:.2f} |")


if __name__ == "__main__":
    main()
