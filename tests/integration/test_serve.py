"""`loadgen serve` as users run it -- the command, a process of its own on a loopback port 0 with a
token -- against the reference mesh: a canary posted and polled to PASS with its APP_ID map read
from the real Consul agent (the unit tests give --map to a stand-in target instead), a wrong
expectation FAILing, a cancelled run, and the Flagger and Argo Rollouts exchanges as those
controllers make them (tests/unit/controller_exchanges.py); its /metrics scraped while the canary
runs and after it, through the Prometheus client's own parser; then SIGTERM: exit 0, the runs
still going cancelled, nothing left listening, and no token or traceback in what it printed.

One server, four runs at once (its default --max-runs): the PASS and the FAIL at --rate 1000,
--tolerance 5 (precision is not the subject), and two slow ones to cancel, one by DELETE and one
by the SIGTERM, at --rate 5 so neither can decide before it is cancelled (85/15 at ±5 needs ~850
judged requests: ~3 minutes at 5/s)."""

from __future__ import annotations

import contextlib
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.unit.controller_exchanges import (
    argo_web_template_measurement,
    flagger_payload,
    flagger_reads,
    flagger_webhook,
)

SERVICE_A = "http://127.0.0.1:3000/hello_a"
CONSUL = "127.0.0.1:8500"
# Strings, as Flagger's metadata is: a POST /v1/canaries with the same strings is the same canary
# for the gate (loadgen.serve.gate's reuse compares the options as posted).
FAST = {"target": SERVICE_A, "tolerance": "5", "rate": "1000", "max_time": "60s"}
SLOW = {"expect": "85/15", "target": SERVICE_A, "tolerance": "5", "rate": "5", "max_time": "10m"}
FLAGGER_TIMEOUT_S = 15.0  # the example Canary's webhook timeout (examples/flagger/canary.yaml)
DEADLINE_S = 90  # a bound on waiting, not a timed assertion: the runs take seconds


@dataclass
class Served:
    proc: subprocess.Popen
    url: str
    out: Path
    err: Path

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


@contextlib.contextmanager
def loadgen_serve(env: dict[str, str], tmp_path: Path) -> Iterator[Served]:
    """`loadgen serve --listen 127.0.0.1:0` until inside ends, its stdout and stderr in files (nothing
    to drain while it runs): the port read from the line it prints once it listens."""
    out, err = tmp_path / "serve.out", tmp_path / "serve.err"
    with out.open("w") as out_f, err.open("w") as err_f:
        proc = subprocess.Popen([sys.executable, "-m", "loadgen.cli", "serve", "--listen", "127.0.0.1:0",
                                 "--consul", CONSUL], env=env, stdout=out_f, stderr=err_f, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (match := re.search(r"listening on (http://127\.0\.0\.1:\d+) ", err.read_text())):
            assert proc.poll() is None and time.monotonic() < deadline, f"serve did not listen:\n{err.read_text()}"
            time.sleep(0.05)  # a poll interval
        yield Served(proc, match[1], out, err)
    finally:
        if proc.poll() is None:  # the test failed before its SIGTERM
            proc.kill()
            proc.wait()


def scrape(client: httpx.Client, run_id: str) -> dict[str, dict[tuple, float]]:
    """GET /metrics through the Prometheus client's parser: sample name -> {labels less run_id: value},
    this run's series only."""
    page: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.labels.get("run_id") == run_id:
                labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "run_id"))
                page.setdefault(sample.name, {})[labels] = sample.value
    return page


def ended(client: httpx.Client, run_id: str) -> dict:
    """GET the run until it is no longer RUNNING (an error's body, {"error": ...}, as it is)."""
    deadline = time.monotonic() + DEADLINE_S
    body = client.get(f"/v1/canaries/{run_id}", params={"wait": 9}).json()
    while body.get("state") == "RUNNING" and time.monotonic() < deadline:
        body = client.get(f"/v1/canaries/{run_id}", params={"wait": 9}).json()
    return body


def test_loadgen_serve_on_the_mesh_pass_fail_cancel_gate_web_metrics_and_sigterm(splitter_mesh, tmp_path):
    token = secrets.token_hex(16)  # loopback needs none; set, every request must carry it
    auth = {"Authorization": f"Bearer {token}"}  # Flagger sends none: the proxy in front of the gate adds it
    with loadgen_serve(splitter_mesh.env(LOADGEN_API_TOKEN=token), tmp_path) as served, \
            httpx.Client(base_url=served.url, headers=auth, timeout=30) as client:
        pass_id = client.post("/v1/canaries", json={"expect": "85/15", **FAST}).json()["id"]
        cancel_id = client.post("/v1/canaries", json=SLOW).json()["id"]
        sigterm_id = client.post("/v1/canaries", json=SLOW).json()["id"]
        # /metrics while the PASS run runs, once it counted requests.
        deadline = time.monotonic() + DEADLINE_S
        during: dict = {}
        while not during.get("loadgen_requests_total") and time.monotonic() < deadline:
            page = scrape(client, pass_id)
            if page.get("loadgen_verdict", {}).get((("state", "RUNNING"),)) != 1:
                break  # decided before a scrape saw a request: the run takes seconds, so this fails below
            during = page
            time.sleep(0.05)  # a poll interval
        # Flagger's webhook, a wrong expectation: the gate starts that run and answers its verdict.
        wrong = flagger_webhook(client, "/v1/gate", flagger_payload({"expect": "50/50", **FAST}), FLAGGER_TIMEOUT_S,
                                headers=auth)
        no_token = flagger_webhook(client, "/v1/gate", flagger_payload({"expect": "50/50", **FAST}), FLAGGER_TIMEOUT_S)
        fail_id = match[1] if (match := re.match(r"\w+: canary (\w+) ", wrong.text)) else f"none in {wrong.text!r}"
        failed = ended(client, fail_id)
        passed = ended(client, pass_id)
        after = scrape(client, pass_id)
        # Flagger again with the PASS run's options: the gate reports that ended run (reuse), no new one.
        right = flagger_webhook(client, "/v1/gate", flagger_payload({"expect": "85/15", **FAST}), FLAGGER_TIMEOUT_S,
                                headers=auth)
        # DELETE one slow run; the other is still running when the server gets its SIGTERM.
        assert client.get(f"/v1/canaries/{cancel_id}").json()["state"] == "RUNNING"
        assert client.delete(f"/v1/canaries/{cancel_id}").status_code == 202
        cancelled = ended(client, cancel_id)
        # Argo Rollouts' Web provider: examples/argo-rollouts/analysis-web.yaml's own URL, token header,
        # jsonPath and conditions, on each ended run.
        argo = {run_id: argo_web_template_measurement(client, {"loadgen-url": served.url, "canary-id": run_id,
                                                               "api-token": token})
                for run_id in (pass_id, fail_id, cancel_id)}
        still_running = client.get(f"/v1/canaries/{sigterm_id}").json()["state"]
        served.proc.send_signal(signal.SIGTERM)
        exit_code = served.proc.wait(timeout=60)
    out, err = served.out.read_text(), served.err.read_text()
    print(f"serve on the mesh: PASS {passed.get('requests')} requests in {passed.get('duration_s')} s; FAIL "
          f"{failed.get('requests')} in {failed.get('duration_s')} s")  # the README's figures (pytest -rP)

    assert passed.get("state") == "PASS", passed.get("reason") or passed
    assert passed["mapping"]["source"] != "--map" and set(passed["mapping"]["app_ids"].values()) >= {"v1", "v2"}
    assert passed["exit_code"] == 0 and passed["three_way"]["consul"] is not None
    # /metrics during the run (RUNNING, some requests counted, never more than the run sent in the end) ...
    assert during, "no scrape caught the run while it ran"
    assert during["loadgen_verdict_final"][()] == 0 and sum(during["loadgen_requests_total"].values()) > 0
    assert sum(during["loadgen_requests_total"].values()) <= passed["requests"]
    # ... and after it: per subset the counters are the run's APP_ID counts, adding up to its n.
    by_subset: dict[str, float] = {}
    for labels, value in after["loadgen_answers_total"].items():
        by_subset[dict(labels)["subset"]] = by_subset.get(dict(labels)["subset"], 0) + value
    expected: dict[str, float] = {}
    for app_id, n in passed["app_id_counts"].items():
        subset = passed["mapping"]["app_ids"][app_id]
        expected[subset] = expected.get(subset, 0) + n
    assert by_subset == expected and sum(by_subset.values()) == sum(passed["app_id_counts"].values())
    assert sum(after["loadgen_requests_total"].values()) == passed["requests"]
    assert after["loadgen_judged_answers"][()] == passed["judge"]["n"] > 0
    assert after["loadgen_verdict"][(("state", "PASS"),)] == 1 and after["loadgen_verdict_final"][()] == 1
    # The wrong expectation: 412 to Flagger (a failed check), FAIL to a GET.
    assert (wrong.status_code, flagger_reads(wrong.status_code)) == (412, "failed check"), wrong.text
    assert wrong.text.startswith(f"FAIL: canary {fail_id} for service-b test pre-rollout: "), wrong.text
    assert failed.get("state") == "FAIL" and failed["exit_code"] == 1, failed.get("reason") or failed
    assert no_token.status_code == 401 and token not in no_token.text
    # The right one: 200 to Flagger, the PASS run's own verdict.
    assert (right.status_code, flagger_reads(right.status_code)) == (200, "go on"), right.text
    assert right.text.startswith(f"PASS: canary {pass_id} "), right.text
    assert cancelled["state"] == "INCONCLUSIVE" and cancelled["stopped_by"] == "cancelled", cancelled.get("reason")
    assert cancelled["cancelled"] is True and cancelled["reason"].startswith("cancelled")
    assert argo == {pass_id: "Successful", fail_id: "Failed", cancel_id: "Inconclusive"}
    # SIGTERM: exit 0, the run still going cancelled and judged (its end in the log), the port closed.
    assert still_running == "RUNNING"
    assert exit_code == 0, err[-2000:]
    assert re.search(rf"canary {sigterm_id} ended: INCONCLUSIVE, \d+ requests, stopped by cancelled", err), err[-2000:]
    assert "loadgen serve: stopped" in err
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", served.port)) != 0, "something still listens on serve's port"
    assert token not in out + err and "Traceback" not in out + err
    assert "HTTP Request:" not in err  # the canaries' own Consul reads are not the server's log
