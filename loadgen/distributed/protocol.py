"""What the coordinator and its workers say to each other over HTTP (JSON both ways).

Why HTTP to the coordinator, and not files read through Nomad's allocation filesystem API: the
worker pushes its increments as soon as they are complete (no polling lag added to the judged
prefix), the coordinator's reply is the stop signal and the lease at once, and it needs nothing
of Nomad but a route from the workers to the coordinator -- Nomad's ACLs and TLS only guard the
dispatch. The run's random token (:data:`TOKEN_HEADER`, compared in constant time) keeps
anything else from reporting; it travels to the worker in its environment (or Nomad's dispatch
payload), never in argv.

Exactly once: every report carries the worker's sequence number (1, 2, ...). The coordinator
takes report ``seq`` only when it has taken ``seq - 1``; a report it already has (a retry after
a lost reply) is answered "duplicate" and not merged again. The send-ordered buckets in a report
are increments (each complete bucket is in exactly one report); the tally is cumulative (the
newest accepted one replaces the one before). With a Prometheus page (the hello's ``page`` is
true), a report's ``page`` holds the page's counts since the worker's previous report
(report/run_metrics.py's ``PageIncrements``): increments too, added once with the report.
"""

from __future__ import annotations

import base64
import hmac
from dataclasses import asdict
from typing import Any

from loadgen.load.client import TlsOptions
from loadgen.load.engine import LoadPlan
from loadgen.load.identity import IdentityRule
from loadgen.load.schedule import RateSchedule

__all__ = ["HELLO_PATH", "REPORT_PATH", "TOKEN_ENV", "TOKEN_HEADER", "clock_offset", "plan_from_json",
           "plan_to_json", "token_ok"]

TOKEN_HEADER = "X-Loadgen-Worker-Token"
TOKEN_ENV = "LOADGEN_WORKER_TOKEN"  # how a worker is given the token (never a flag: argv is public)
HELLO_PATH = "/v1/hello"
REPORT_PATH = "/v1/report"


def token_ok(given: str | None, expected: str) -> bool:
    """The header's token is the run's (constant time: no early exit that times the guess)."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def clock_offset(sent: float, coordinator_now: float, received: float) -> tuple[float, float]:
    """NTP's estimate from one round trip: (the coordinator's clock minus ours, the round trip).
    The error is at most half the round trip."""
    return coordinator_now - (sent + received) / 2, received - sent


def plan_to_json(plan: LoadPlan) -> dict[str, Any]:
    """The parts of a plan every worker shares (the shard and start are each worker's own)."""
    return {
        "url": plan.url, "rate": plan.rate, "schedule": plan.schedule.text if plan.schedule else None,
        "max_requests": plan.max_requests, "max_time": plan.max_time, "timeout": plan.timeout,
        "headers": dict(plan.headers), "max_in_flight": plan.max_in_flight, "new_connection": plan.new_connection,
        "concurrency": plan.concurrency, "identity": plan.identity.text, "method": plan.method,
        "body": base64.b64encode(plan.body).decode("ascii") if plan.body is not None else None,
        "tls": asdict(plan.tls) if plan.tls is not None else None,
    }


def plan_from_json(data: dict[str, Any], shard: tuple[int, int], start_at: float) -> LoadPlan:
    """Worker k of n's plan; ``start_at``: the common start on this worker's perf_counter."""
    concurrency = data.get("concurrency")
    k, n = shard
    if concurrency is not None:  # closed loop: the connections are shared out instead
        concurrency = max(1, concurrency // n + (k < concurrency % n))
    return LoadPlan(
        url=data["url"], rate=data.get("rate"),
        schedule=RateSchedule.parse(data["schedule"]) if data.get("schedule") else None,
        max_requests=int(data["max_requests"]), max_time=float(data["max_time"]), timeout=float(data["timeout"]),
        headers=dict(data.get("headers") or {}), max_in_flight=int(data.get("max_in_flight", 256)),
        new_connection=bool(data.get("new_connection")), concurrency=concurrency, shard=shard, start_at=start_at,
        identity=IdentityRule.parse(data.get("identity") or "auto"), method=data.get("method") or "GET",
        body=base64.b64decode(data["body"]) if data.get("body") is not None else None,
        tls=TlsOptions(**data["tls"]) if data.get("tls") else None,
    )
