"""TLS cost of the lean client: generator CPU per request over HTTPS vs plain HTTP, same run.

One Envoy (pinned to CPU 0, one worker) answers every request itself (``direct_response``)
on two loopback listeners: plain HTTP and TLS (a certificate from ``consul tls``). The
lean client (pinned to CPU 1, closed loop, C connections) sends the same request to each,
with keep-alive and with a fresh connection per request (a TLS handshake each time). The
generator's CPU is this process's user + system time around the run, so the target's cost
is not in it. Rounds alternate plain and TLS so drift hits both alike.

Usage: python bench/tls_cost.py [--requests 20000] [--connections 16] [--rounds 3]
Prints a Markdown table (the one in bench/README.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from loadgen.load.client import TlsOptions
from loadgen.load.engine import LoadPlan, run_blocking, run_load
from loadgen.mesh import toolchain

PLAIN, TLS, ADMIN = 18181, 18182, 18191  # loopback only, away from the mesh's ports


def envoy_config(cert: Path, key: Path) -> str:
    def listener(name: str, port: int, tls: bool) -> str:
        socket = f"""
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_certificates:
            - certificate_chain: {{filename: "{cert}"}}
              private_key: {{filename: "{key}"}}""" if tls else ""
        return f"""
  - name: {name}
    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: {name}
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                direct_response: {{status: 200, body: {{inline_string: '{{"app_id": "1"}}'}}}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router{socket}"""

    return f"""
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {ADMIN}}}}}
static_resources:
  listeners:{listener("plain", PLAIN, False)}{listener("tls", TLS, True)}
"""


def cpu() -> float:
    times = os.times()
    return times.user + times.system


def one_run(url: str, tls: TlsOptions | None, fresh: bool, requests: int, connections: int) -> tuple[float, int]:
    """(generator CPU microseconds per answered request, answered requests)."""
    plan = LoadPlan(url=url, concurrency=connections, max_requests=requests, max_time=120, timeout=5,
                    new_connection=fresh, tls=tls)
    ok = 0

    def count(sample: object) -> None:
        nonlocal ok
        ok += getattr(sample, "status", None) == 200

    before = cpu()
    run_blocking(lambda: run_load(plan, count))
    spent = cpu() - before
    return spent / max(ok, 1) * 1e6, ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    consul, envoy = toolchain.find("consul").path, toolchain.find("envoy").path
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        subprocess.run([str(consul), "tls", "ca", "create"], cwd=where, check=True, capture_output=True)
        subprocess.run([str(consul), "tls", "cert", "create", "-server", "-additional-dnsname", "localhost"],
                       cwd=where, check=True, capture_output=True)
        ca = where / "consul-agent-ca.pem"
        (where / "envoy.yaml").write_text(envoy_config(where / "dc1-server-consul-0.pem",
                                                       where / "dc1-server-consul-0-key.pem"))
        proc = subprocess.Popen(["taskset", "-c", "0", str(envoy), "-c", str(where / "envoy.yaml"), "--concurrency",
                                 "1", "--base-id", "7"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{ADMIN}/ready", timeout=1).text.strip() == "LIVE":
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("Envoy did not start")
                time.sleep(0.1)
            os.sched_setaffinity(0, {1})
            results: dict[tuple[str, str], list[float]] = {}
            for _ in range(args.rounds):
                for fresh in (False, True):
                    mode = "fresh connection per request" if fresh else "keep-alive"
                    n = args.requests // 5 if fresh else args.requests
                    for scheme, url, tls in (("http", f"http://127.0.0.1:{PLAIN}/x", None),
                                             ("https", f"https://localhost:{TLS}/x", TlsOptions(cacert=str(ca)))):
                        us, ok = one_run(url, tls, fresh, n, args.connections)
                        if ok < n * 0.99:
                            raise SystemExit(f"{scheme} {mode}: only {ok} of {n} requests answered 200")
                        results.setdefault((mode, scheme), []).append(us)
        finally:
            proc.terminate()
            proc.wait(10)
    print(f"{args.rounds} rounds, {args.connections} connections, closed loop; generator CPU per answered "
          "request (median of rounds, min-max)\n")
    print("| connections | plain HTTP (µs/req) | HTTPS (µs/req) | HTTPS / HTTP |")
    print("|---|---|---|---|")
    for mode in ("keep-alive", "fresh connection per request"):
        plain, tls = results[(mode, "http")], results[(mode, "https")]
        ratios = [t / p for p, t in zip(plain, tls, strict=True)]
        print(f"| {mode} | {statistics.median(plain):.1f} ({min(plain):.1f}-{max(plain):.1f}) | "
              f"{statistics.median(tls):.1f} ({min(tls):.1f}-{max(tls):.1f}) | "
              f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) |")


if __name__ == "__main__":
    main()
