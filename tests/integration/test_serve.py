"""`loadgen serve` on the real mesh: a canary posted over HTTP and polled to PASS, its APP_ID map
read from the real Consul agent (the unit tests give --map to a stand-in target instead); a
wrong expectation, a cancelled run, and the Flagger and Argo Rollouts exchanges as those
controllers make them (tests/unit/test_serve_api.py says how each reads an answer)."""

from __future__ import annotations

import time

import httpx

from loadgen.serve.app import ServeSettings
from loadgen.serve.runs import Runs
from tests.unit.serve_in_thread import serving
from tests.unit.test_serve_api import argo_web_measurement, flagger_payload, flagger_reads

SERVICE_A = "http://127.0.0.1:3000/hello_a"


def test_a_posted_canary_passes_on_the_mesh(splitter_mesh):
    runs = Runs(max_runs=2, consul_addr="127.0.0.1:8500")
    with serving(ServeSettings(gate_wait=8.0), runs=runs) as base, httpx.Client(base_url=base, timeout=30) as client:
        resp = client.post("/v1/canaries", json={"expect": "85/15", "target": SERVICE_A, "tolerance": 5})
        assert resp.status_code == 201, resp.text
        run_id = resp.json()["id"]
        deadline = time.monotonic() + 90  # a bound on polling; the run's own max_time is 120 s
        body = client.get(f"/v1/canaries/{run_id}", params={"wait": 9}).json()
        while body["state"] == "RUNNING" and time.monotonic() < deadline:
            body = client.get(f"/v1/canaries/{run_id}", params={"wait": 9}).json()
        # Argo Rollouts' Web provider reads the ended run; Flagger's webhook gets a run of its own.
        argo = argo_web_measurement(client, f"/v1/canaries/{run_id}", "{$.state}", "result == 'PASS'",
                                    "result == 'FAIL'")
        wrong = client.post("/v1/gate", json=flagger_payload({"expect": "50/50", "target": SERVICE_A,
                                                              "tolerance": "5"}))
        running = client.post("/v1/canaries", json={"expect": "85/15", "target": SERVICE_A, "max_time": "60s"})
        client.delete(f"/v1/canaries/{running.json()['id']}")
        cancelled = client.get(f"/v1/canaries/{running.json()['id']}", params={"wait": 9}).json()
    assert body["state"] == "PASS", body.get("reason")
    assert body["mapping"]["source"] != "--map" and set(body["mapping"]["app_ids"].values()) >= {"v1", "v2"}
    assert body["exit_code"] == 0 and body["three_way"]["consul"] is not None
    assert argo == "Successful"
    assert (wrong.status_code, flagger_reads(wrong.status_code)) == (412, "failed check") and \
        wrong.text.startswith("FAIL: "), wrong.text
    assert cancelled["state"] == "INCONCLUSIVE" and cancelled["stopped_by"] == "cancelled", cancelled.get("reason")
