"""Issue 28's "bad input and abuse" on the parts the other serve tests leave out: the gate's refusals
(malformed JSON, a huge body, a target outside the allow-list, a missing token, too many runs), a run
that dies of a bug while another runs, and nothing started by a refused request. Runs here are
stand-ins for run_live (no traffic: each blocks until cancelled), so every case takes milliseconds."""

from __future__ import annotations

import logging
import threading
from typing import Any

import httpx

from loadgen.errors import ExitCode, LoadgenError
from loadgen.serve.app import ServeSettings
from loadgen.serve.body import TargetAllowList
from loadgen.serve.runs import Runs
from tests.unit.serve_in_thread import serving

DEADLINE_S = 30  # a bound on waiting, not a timed assertion
TOKEN = "abuse-token-0123456789abcdef"
OPTIONS = {"expect": "85/15", "map": "1=v1,2=v2", "tolerance": 5}
ALLOWED = "http://127.0.0.1:9/hello_a"  # nothing listens: the stand-in run never sends anything


def stand_in_run(options: Any, target: str, *_args: Any, cancel: threading.Event, **_kwargs: Any) -> Any:
    """run_live's place: a bug for a target ending in /boom, else RUNNING until DELETE cancels it."""
    if target.endswith("/boom"):
        raise RuntimeError("boom")
    cancel.wait(DEADLINE_S)
    raise LoadgenError("cancelled before a verdict", ExitCode.INCONCLUSIVE)


def wait_ended(client: httpx.Client, run_id: str) -> dict:
    return client.get(f"/v1/canaries/{run_id}", params={"wait": 9}).json()


def test_the_gate_refuses_as_the_canaries_route_does_and_starts_nothing():
    runs = Runs(max_runs=4, run=stand_in_run)
    settings = ServeSettings(allow=TargetAllowList(("127.0.0.0/8",)), max_body=1024)
    with serving(settings, runs) as base, httpx.Client(base_url=base, timeout=DEADLINE_S) as client:
        def gate(content: str | bytes) -> httpx.Response:
            return client.post("/v1/gate", content=content, headers={"Content-Type": "application/json"})

        malformed = gate('{"metadata": {"expect": "85/15",')
        huge = gate('{"metadata": {"expect": "' + "8" * 2000 + '"}}')
        outside = gate('{"metadata": {"expect": "85/15", "map": "1=v1,2=v2", "target": "http://10.1.2.3/x"}}')
        refused_key = gate('{"metadata": {"expect": "85/15", "target": "http://127.0.0.1:9/", "record": "/tmp/x"}}')
        cli_refuses = gate('{"metadata": {"expect": "85/16", "target": "http://127.0.0.1:9/", "map": "1=v1,2=v2"}}')
    answers = {"malformed": malformed, "huge": huge, "outside": outside, "refused_key": refused_key,
               "cli_refuses": cli_refuses}
    assert {k: r.status_code for k, r in answers.items()} == {
        "malformed": 400, "huge": 413, "outside": 403, "refused_key": 400, "cli_refuses": 400}
    assert "not JSON" in malformed.text and "allow-list" in outside.text and "file on the server" in refused_key.text
    # One line each: the gate's own refusals as text, the size limit (checked before any route) as {"error"}.
    assert all("\n" not in r.text.strip() for r in answers.values())
    assert runs.with_metrics() == []  # nothing was ever started


def test_too_many_runs_is_429_on_both_routes_and_a_missing_token_starts_nothing():
    runs = Runs(max_runs=1, run=stand_in_run)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    body = {**OPTIONS, "target": ALLOWED}
    with serving(ServeSettings(token=TOKEN), runs) as base, httpx.Client(base_url=base, timeout=DEADLINE_S) as client:
        assert client.post("/v1/canaries", json=body).status_code == 401  # no token: refused before anything
        assert client.post("/v1/gate", json={"metadata": body}, headers={"Authorization": "Bearer x"}
                           ).status_code == 401
        assert runs.with_metrics() == []
        first = client.post("/v1/canaries", json=body, headers=auth)
        assert first.status_code == 201
        again = client.post("/v1/canaries", json={**body, "tolerance": 4}, headers=auth)
        gate = client.post("/v1/gate", json={"metadata": {**body, "tolerance": "4"}}, headers=auth)
        assert (again.status_code, gate.status_code) == (429, 429)
        assert again.headers["Retry-After"] and gate.headers["Retry-After"] and "--max-runs" in gate.text
        assert [r.id for r in runs.running()] == [first.json()["id"]]
        client.delete(f"/v1/canaries/{first.json()['id']}", headers=auth)
    assert TOKEN not in again.text + gate.text + first.text


def test_a_run_that_dies_of_a_bug_says_so_and_the_others_go_on():
    runs = Runs(max_runs=4, run=stand_in_run)
    with serving(runs=runs) as base, httpx.Client(base_url=base, timeout=DEADLINE_S) as client:
        other = client.post("/v1/canaries", json={**OPTIONS, "target": ALLOWED}).json()["id"]
        broken = client.post("/v1/canaries", json={**OPTIONS, "target": "http://127.0.0.1:9/boom"}).json()["id"]
        ended = wait_ended(client, broken)
        assert ended["state"] == "INCONCLUSIVE" and ended["exit_code"] == ExitCode.INTERNAL
        assert ended["error"] == "internal error: RuntimeError: boom"
        assert client.get(f"/v1/canaries/{other}").json()["state"] == "RUNNING"  # untouched by the other's bug
        third = client.post("/v1/canaries", json={**OPTIONS, "target": ALLOWED, "tolerance": 4})
        assert third.status_code == 201  # and the server takes new ones
        assert client.delete(f"/v1/canaries/{other}").status_code == 202
        cancelled = wait_ended(client, other)
    assert cancelled["state"] == "INCONCLUSIVE" and cancelled["stopped_by"] == "cancelled"


def test_each_run_ends_with_one_line_of_the_server_log(caplog):
    """After a SIGTERM no client is left to GET the runs it cancelled: the log keeps their ends."""
    runs = Runs(max_runs=4, run=stand_in_run)
    with caplog.at_level(logging.INFO, logger="loadgen.serve"), serving(runs=runs) as base, \
            httpx.Client(base_url=base, timeout=DEADLINE_S) as client:
        run_id = client.post("/v1/canaries", json={**OPTIONS, "target": ALLOWED}).json()["id"]
        client.delete(f"/v1/canaries/{run_id}")
        wait_ended(client, run_id)
    ended = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"canary {run_id} ended")]
    assert ended == [f"canary {run_id} ended: INCONCLUSIVE, 0 requests, stopped by cancelled"]


def test_json_nested_thousands_deep_or_a_number_of_thousands_of_digits_is_400_not_a_crash():
    """Both parse as JSON for the standard library only as a RecursionError or a ValueError: the
    server answered 500 and logged a traceback per request."""
    runs = Runs(max_runs=4, run=stand_in_run)
    bodies = ["[" * 5000, '{"expect": ' + "[" * 900 + "]" * 900 + "}", '{"rate": ' + "1" * 5000 + "}",
              '{"header": [[[[[[[[["X: 1"]]]]]]]]]}']
    with serving(runs=runs) as base, httpx.Client(base_url=base, timeout=DEADLINE_S) as client:
        answers = [client.post(route, content=body, headers={"Content-Type": "application/json"})
                   for body in bodies for route in ("/v1/canaries", "/v1/gate")]
    assert [r.status_code for r in answers] == [400] * len(answers), [r.text[:100] for r in answers]
    assert all("nests deeper" in r.text or "more digits" in r.text for r in answers)
    assert runs.with_metrics() == []
