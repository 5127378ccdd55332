"""`loadgen serve` on the real mesh: a canary posted over HTTP and polled to PASS, its APP_ID map
read from the real Consul agent (the unit tests give --map to a stand-in target instead); a
wrong expectation, a cancelled run, and the Flagger and Argo Rollouts exchanges as those
controllers make them (tests/unit/test_serve_api.py says how each reads an answer); its /metrics
scraped while the canary runs and after it, through the Prometheus client's own parser."""

from __future__ import annotations

import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from loadgen.serve.app import ServeSettings
from loadgen.serve.metrics import metrics_handler
from loadgen.serve.runs import Runs
from tests.unit.serve_in_thread import serving
from tests.unit.test_serve_api import argo_web_measurement, flagger_payload, flagger_reads

SERVICE_A = "http://127.0.0.1:3000/hello_a"


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


def test_a_posted_canary_passes_on_the_mesh(splitter_mesh):
    runs = Runs(max_runs=2, consul_addr="127.0.0.1:8500")
    with serving(ServeSettings(gate_wait=8.0), runs=runs, metrics=metrics_handler(runs)) as base, \
            httpx.Client(base_url=base, timeout=30) as client:
        resp = client.post("/v1/canaries", json={"expect": "85/15", "target": SERVICE_A, "tolerance": 5})
        assert resp.status_code == 201, resp.text
        run_id = resp.json()["id"]
        deadline = time.monotonic() + 90  # a bound on polling; the run's own max_time is 120 s
        during: dict = {}
        while not during.get("loadgen_requests_total") and time.monotonic() < deadline:  # once requests counted
            page = scrape(client, run_id)
            if page.get("loadgen_verdict", {}).get((("state", "RUNNING"),)) != 1:
                break  # decided before a scrape saw a request: the run takes seconds, so this fails below
            during = page
            time.sleep(0.05)  # a poll interval: the server shares this process's GIL with the run
        body = client.get(f"/v1/canaries/{run_id}", params={"wait": 9}).json()
        while body["state"] == "RUNNING" and time.monotonic() < deadline:
            body = client.get(f"/v1/canaries/{run_id}", params={"wait": 9}).json()
        # Argo Rollouts' Web provider reads the ended run; Flagger's webhook gets a run of its own.
        after = scrape(client, run_id)
        argo = argo_web_measurement(client, f"/v1/canaries/{run_id}", "{$.state}", "result == 'PASS'",
                                    "result == 'FAIL'")
        wrong = client.post("/v1/gate", json=flagger_payload({"expect": "50/50", "target": SERVICE_A,
                                                              "tolerance": "5"}))
        running = client.post("/v1/canaries", json={"expect": "85/15", "target": SERVICE_A, "max_time": "60s"})
        client.delete(f"/v1/canaries/{running.json()['id']}")
        cancelled = client.get(f"/v1/canaries/{running.json()['id']}", params={"wait": 9}).json()
    assert body["state"] == "PASS", body.get("reason")
    # /metrics during the run (RUNNING, some requests counted, never more than the run sent in the end) ...
    assert during, "no scrape caught the run while it ran"
    assert during["loadgen_verdict_final"][()] == 0 and sum(during["loadgen_requests_total"].values()) > 0
    assert sum(during["loadgen_requests_total"].values()) <= body["requests"]
    # ... and after it: per subset the counters are the run's APP_ID counts, adding up to its n.
    answers = after["loadgen_answers_total"]
    by_subset: dict[str, float] = {}
    for labels, value in answers.items():
        by_subset[dict(labels)["subset"]] = by_subset.get(dict(labels)["subset"], 0) + value
    mapping = body["mapping"]["app_ids"]
    expected = {}
    for app_id, n in body["app_id_counts"].items():
        expected[mapping[app_id]] = expected.get(mapping[app_id], 0) + n
    assert by_subset == expected and sum(by_subset.values()) == sum(body["app_id_counts"].values())
    assert sum(after["loadgen_requests_total"].values()) == body["requests"]
    assert after["loadgen_judged_answers"][()] == body["judge"]["n"] > 0
    assert after["loadgen_verdict"][(("state", "PASS"),)] == 1 and after["loadgen_verdict_final"][()] == 1
    assert body["mapping"]["source"] != "--map" and set(body["mapping"]["app_ids"].values()) >= {"v1", "v2"}
    assert body["exit_code"] == 0 and body["three_way"]["consul"] is not None
    assert argo == "Successful"
    assert (wrong.status_code, flagger_reads(wrong.status_code)) == (412, "failed check") and \
        wrong.text.startswith("FAIL: "), wrong.text
    assert cancelled["state"] == "INCONCLUSIVE" and cancelled["stopped_by"] == "cancelled", cancelled.get("reason")
