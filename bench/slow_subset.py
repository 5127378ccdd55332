"""A split that is exactly right, with one subset slower: how often is it failed?

Drives a loopback target that answers 85/15 (each request's APP_ID drawn independently, as a
splitter picks) with one subset 150 ms or 400 ms slower, or both with random jitter, through
loadgen's own engine, and judges every run twice **from the very same traffic and looks**:

- **send order** (this version, what `loadgen canary` does; canary/live.py): the engine's
  SendOrder releases answers in send order, each look judges the complete prefix, dated by
  its send time;
- **completion order** (before issue 23): each look judges whatever has completed by then.

A run ends when both have decided, or at its budget (each judge's own verdict is taken at its
own decision). Every split is the expected one, so any FAIL is a false FAIL.

    .venv/bin/python bench/slow_subset.py --runs 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadgen.canary import CanaryOptions, Expectation, SplitCheck
from loadgen.canary.live import LOOK_EVERY_S
from loadgen.canary.options import budget
from loadgen.load.engine import LoadPlan, run_load
from loadgen.load.sample import Sample
from loadgen.load.send_order import SendOrder
from loadgen.mesh.subsets import SubsetMap
from loadgen.stats import JudgeConfig, SplitSpec, Tolerance, Verdict, VerdictState

MAP = SubsetMap(("v1", "v2"), {"1": "v1", "2": "v2"}, "bench")
CASES = {  # name -> (v1 delay ms, v2 delay ms, jitter ms on both)
    "v1 +150 ms": (150, 0, 0),
    "v1 +400 ms": (400, 0, 0),
    "v2 +150 ms": (0, 150, 0),
    "v2 +400 ms": (0, 400, 0),
    "jitter 0-300 ms on both": (0, 0, 300),
}


def serve() -> None:
    """The target: 85/15 drawn per request; delays set by POST /fault?v1=..&v2=..&jitter=.."""
    from aiohttp import web

    fault = {"1": 0.0, "2": 0.0, "jitter": 0.0}
    rng = random.Random()

    async def hello(_request: web.Request) -> web.Response:
        app_id = "1" if rng.random() < 0.85 else "2"
        delay = fault[app_id] + rng.random() * fault["jitter"]
        if delay > 0:
            await asyncio.sleep(delay / 1000)
        return web.json_response({"app_id": app_id}, headers={"X-App-Id": app_id})

    async def set_fault(request: web.Request) -> web.Response:
        fault.update({"1": float(request.query["v1"]), "2": float(request.query["v2"]),
                      "jitter": float(request.query["jitter"])})
        return web.json_response(fault)

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/hello_a", hello)
        app.router.add_post("/fault", set_fault)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=2048)
        await site.start()
        print(runner.addresses[0][1], flush=True)
        await asyncio.Event().wait()

    try:
        import uvloop
        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


@dataclass
class RunResult:
    send: Verdict
    completion: Verdict
    lag_s: float  # the judged prefix's lag behind the newest request at the send-order judge's last look


async def one_run(url: str, rate: float, options: CanaryOptions) -> RunResult:
    expectation = Expectation(SplitSpec.parse(options.expect), MAP)
    send = SplitCheck(expectation, options.config, warmup=options.warmup)
    completion = SplitCheck(expectation, options.config, warmup=options.warmup)

    class Tapped(SendOrder):
        def done(self, ticket: int, sample: Sample) -> None:
            completion.add(sample)  # the old way: counted as it completes
            super().done(ticket, sample)

    order = Tapped(send.add)  # the product's way (canary/live.py)
    n_max = budget(options, send.sample_plan)
    plan = LoadPlan(url=url, rate=rate, max_requests=n_max, max_time=options.max_time, timeout=options.timeout)
    decided: dict[str, Verdict] = {}
    state = {"stop": False, "lag": 0.0}

    async def monitor(started: float) -> None:
        while not state["stop"]:
            await asyncio.sleep(LOOK_EVERY_S)
            if "send" not in decided:
                state["lag"] = order.lag().lag_s
                if (v := send.look(order.frontier_t or 0.0)).decided:
                    decided["send"] = v
            if "completion" not in decided and (v := completion.look(time.monotonic() - started)).decided:
                decided["completion"] = v
            state["stop"] = len(decided) == 2

    async def main() -> None:
        mon = asyncio.create_task(monitor(time.monotonic()))
        try:
            await run_load(plan, order, lambda: state["stop"])
        finally:
            state["stop"] = True
            await asyncio.gather(mon, return_exceptions=True)

    started = time.monotonic()
    await main()
    elapsed = time.monotonic() - started
    return RunResult(decided.get("send") or send.look(order.frontier_t or 0.0, final=True),
                     decided.get("completion") or completion.look(elapsed, final=True), state["lag"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=50, help="live runs per case")
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--tolerance", default="5", help="the bands (5 points: ~850 requests to PASS 85/15)")
    parser.add_argument("--max-time", type=float, default=20.0)
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated case names")
    parser.add_argument("--json", type=Path, help="write every run's verdicts here")
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    server = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        url = f"http://127.0.0.1:{port}/hello_a"
        options = CanaryOptions(expect="85/15", config=JudgeConfig(tolerance=Tolerance.parse(args.tolerance)),
                                rate=args.rate, max_time=args.max_time, warmup=1.0)
        import httpx

        rows, every = [], {}
        for case in args.cases.split(","):
            v1, v2, jitter = CASES[case]
            httpx.post(f"http://127.0.0.1:{port}/fault", params={"v1": v1, "v2": v2, "jitter": jitter}, timeout=5)
            results = []
            for i in range(args.runs):
                r = asyncio.run(one_run(url, args.rate, options))
                results.append(r)
                print(f"{case} run {i + 1}: send order {r.send.state.value} (n {r.send.n}), completion order "
                      f"{r.completion.state.value} (n {r.completion.n})", file=sys.stderr, flush=True)
            every[case] = [{"send": r.send.state.value, "send_reason": r.send.reason,
                            "completion": r.completion.state.value, "completion_reason": r.completion.reason,
                            "send_n": r.send.n, "lag_s": round(r.lag_s, 3)} for r in results]
            rows.append((case, results))
        print(f"\n{args.runs} live runs per case, rate {args.rate:g}/s, tolerance {args.tolerance} points, "
              f"budget {args.max_time:g}s; the target answers 85/15 (every FAIL is a false FAIL)\n")
        print("| case | send order (this version): PASS / FAIL / INCONCL. | completion order (before): PASS / FAIL "
              "/ INCONCL. | send order mean n | mean lag at the last look |")
        print("|---|---|---|---|---|")
        for case, results in rows:
            s = Counter(r.send.state for r in results)
            c = Counter(r.completion.state for r in results)
            mean_n = sum(r.send.n for r in results) / len(results)
            lag = sum(r.lag_s for r in results) / len(results)
            print(f"| {case} | {_triple(s)} | {_triple(c)} | {mean_n:,.0f} | {lag * 1000:.0f} ms |")
        if args.json:
            args.json.write_text(json.dumps(every, indent=1))
    finally:
        server.terminate()
        server.wait(timeout=10)


def _triple(counts: Counter[VerdictState]) -> str:
    return " / ".join(str(counts.get(s, 0)) for s in (VerdictState.PASS, VerdictState.FAIL, VerdictState.INCONCLUSIVE))


if __name__ == "__main__":
    main()
