"""Time to live of `loadgen up --stage splitter --secure` beside the plain one, in one run.

Alternates plain and secure from nothing (`loadgen down` between), --repeat times each, so both
see the same machine state. Time to live is what `up --json` reports: until every sidecar's
Envoy shows the stage (and, secure, RBAC admits service-a) and /hello_a answers from both
APP_IDs. A secure `up` also makes a CA and a server certificate (`consul tls`), waits for the
management token and issues a read token and one token per service.

Usage: LOADGEN_RUN_DIR=/tmp/lgbench python bench/secure_up.py [--repeat 5]
Prints a Markdown table with the ratio to the plain `up` (the peer).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys


def loadgen(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "loadgen.cli", *args], check=True, capture_output=True,
                          text=True).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"plain": [], "secure": []}
    try:
        for _ in range(args.repeat):
            for kind in ("plain", "secure"):
                loadgen("down", "-q")
                extra = ["--secure"] if kind == "secure" else []
                times[kind].append(json.loads(loadgen("up", "--stage", "splitter", *extra, "-q", "--json"))["seconds"])
    finally:
        loadgen("down", "-q")
    peer = statistics.median(times["plain"])
    print(f"time to live: `loadgen up --stage splitter [--secure]` from nothing, {args.repeat} times each, "
          "alternating\n")
    print("| mesh | median s | min s | max s | median / plain |")
    print("|---|---|---|---|---|")
    for kind, values in times.items():
        med = statistics.median(values)
        print(f"| {kind} | {med:.2f} | {min(values):.2f} | {max(values):.2f} | {med / peer:.2f} |")


if __name__ == "__main__":
    main()
