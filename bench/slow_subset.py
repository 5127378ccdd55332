"""A split that is exactly right, with one subset slower: how often is it failed?

Drives a loopback target that answers 85/15 (each request's APP_ID drawn independently, as a
splitter picks) with one subset 150 ms or 400 ms slower, or both with random jitter, through
loadgen's own engine, and judges every run twice **from the very same traffic and looks**:

- **send order** (this version, what `loadgen canary` does; canary/live.py): the engine's
  SendOrder releases answers in send order, each look judges the complete prefix, dated by
  its send time;
- **completion order** (before issue 23): each look judges whatever has completed by then.

A run ends when both have decided, or at its budget (each judge's own verdict is taken at its
own decision). By default every split is the expected one, so any FAIL is a false FAIL.

With ``--split`` the target answers another split than ``--expect`` (issue 25's evidence: truly
82/18 with v2 400 ms slower, judged 85/15 at the default tolerance): then any PASS is a false PASS.

    .venv/bin/python bench/slow_subset.py --runs 50
    .venv/bin/python bench/slow_subset.py --cli --runs 20 --split 82/18 --expect 85/15 --tolerance 2 \
        --rate 500 --max-time 120 --cases "v2 +400 ms"

``--cli`` runs the product itself instead of the in-process pair of judges: every run is one
``loadgen canary --target ... --map 1=v1,2=v2`` subprocess (send order only, the canary's own
warm-up, look cadence and final look), and its verdict is read from its --json.
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
    """The target: v1's share (85 % unless set) drawn per request; delays and share set by
    POST /fault?v1=..&v2=..&jitter=..&v1_share=.."""
    from aiohttp import web

    fault = {"1": 0.0, "2": 0.0, "jitter": 0.0, "v1_share": 0.85}
    rng = random.Random()

    async def hello(_request: web.Request) -> web.Response:
        app_id = "1" if rng.random() < fault["v1_share"] else "2"
        delay = fault[app_id] + rng.random() * fault["jitter"]
        if delay > 0:
            await asyncio.sleep(delay / 1000)
        return web.json_response({"app_id": app_id}, headers={"X-App-Id": app_id})

    async def set_fault(request: web.Request) -> web.Response:
        fault.update({"1": float(request.query["v1"]), "2": float(request.query["v2"]),
                      "jitter": float(request.query["jitter"]),
                      "v1_share": float(request.query.get("v1_share", 0.85))})
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
    state = {"stop": False, "load_over": False, "lag": 0.0}

    async def monitor(started: float) -> None:
        # Its own flag for the load's end: `stop` is rewritten at every look, so a budget that ran
        # out before both judges decided would otherwise leave this loop running for ever.
        while not state["stop"] and not state["load_over"]:
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
            state["load_over"] = True
            await asyncio.gather(mon, return_exceptions=True)

    started = time.monotonic()
    await main()
    elapsed = time.monotonic() - started
    return RunResult(decided.get("send") or send.look(order.frontier_t or 0.0, final=True),
                     decided.get("completion") or completion.look(elapsed, final=True), state["lag"])


@dataclass
class CliRun:
    state: str  # the canary's verdict (PASS / FAIL / INCONCLUSIVE), or "exit N" without a --json
    code: int
    n: int | None
    reason: str


def cli_run(url: str, args: argparse.Namespace, scratch: Path) -> CliRun:
    """One `loadgen canary` against the loopback target, as a user runs it."""
    out = scratch / "canary.json"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "loadgen.cli", "canary", "--target", url, "--map", "1=v1,2=v2",
           "--expect", args.expect, "--tolerance", args.tolerance, "--rate", f"{args.rate:g}",
           "--max-time", f"{args.max_time:g}s", "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.max_time + 120)
    if not out.exists():
        return CliRun(f"exit {proc.returncode}", proc.returncode, None, proc.stderr.strip()[-300:])
    data = json.loads(out.read_text())
    return CliRun(data["verdict"], proc.returncode, data["judge"].get("n"), data["reason"])


def cli_main(url: str, args: argparse.Namespace) -> None:
    import tempfile

    every: dict[str, list[dict[str, object]]] = {}
    table = []
    with tempfile.TemporaryDirectory() as scratch:
        for case in args.cases.split(","):
            runs = []
            _set_fault(url, case, args.split)
            for i in range(args.runs):
                r = cli_run(url, args, Path(scratch))
                runs.append(r)
                print(f"{case} run {i + 1}: loadgen canary {r.state} (exit {r.code}, n {r.n}): {r.reason}",
                      file=sys.stderr, flush=True)
            every[case] = [vars(r) for r in runs]
            table.append((case, Counter(r.state for r in runs), runs))
    print(f"\n{args.runs} `loadgen canary` runs per case, rate {args.rate:g}/s, tolerance {args.tolerance}, "
          f"budget {args.max_time:g}s; the target answers {args.split}, expected {args.expect} "
          f"({_what_is_wrong(args)})\n")
    print("| case | PASS / FAIL / INCONCL. / other | mean n |")
    print("|---|---|---|")
    for case, counts, runs in table:
        other = sum(n for state, n in counts.items() if state not in ("PASS", "FAIL", "INCONCLUSIVE"))
        ns = [r.n for r in runs if r.n is not None]
        mean_n = f"{sum(ns) / len(ns):,.0f}" if ns else "-"
        print(f"| {case} | {counts['PASS']} / {counts['FAIL']} / {counts['INCONCLUSIVE']} / {other} | {mean_n} |")
    if args.json:
        args.json.write_text(json.dumps(every, indent=1))


def _set_fault(url: str, case: str, split: str) -> None:
    import httpx

    v1, v2, jitter = CASES[case]
    v1_share = SplitSpec.parse(split).weights[0]
    httpx.post(url.replace("/hello_a", "/fault"), params={"v1": v1, "v2": v2, "jitter": jitter,
                                                          "v1_share": v1_share}, timeout=5)


def _what_is_wrong(args: argparse.Namespace) -> str:
    same = SplitSpec.parse(args.split).weights == SplitSpec.parse(args.expect).weights
    return "every FAIL is a false FAIL" if same else "every PASS is a false PASS"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=50, help="live runs per case")
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--tolerance", default="5", help="the bands (5 points: ~850 requests to PASS 85/15)")
    parser.add_argument("--max-time", type=float, default=20.0)
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated case names")
    parser.add_argument("--split", default="85/15", help="what the target truly answers, v1/v2 (default 85/15)")
    parser.add_argument("--expect", default="85/15", help="what the canary is told to expect")
    parser.add_argument("--json", type=Path, help="write every run's verdicts here")
    parser.add_argument("--cli", action="store_true", help="each run is a `loadgen canary` subprocess")
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    server = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        url = f"http://127.0.0.1:{port}/hello_a"
        if args.cli:
            cli_main(url, args)
            return
        options = CanaryOptions(expect=args.expect, config=JudgeConfig(tolerance=Tolerance.parse(args.tolerance)),
                                rate=args.rate, max_time=args.max_time, warmup=1.0)
        rows, every = [], {}
        for case in args.cases.split(","):
            _set_fault(url, case, args.split)
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
        print(f"\n{args.runs} live runs per case, rate {args.rate:g}/s, tolerance {args.tolerance}, "
              f"budget {args.max_time:g}s; the target answers {args.split}, expected {args.expect} "
              f"({_what_is_wrong(args)})\n")
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
