"""`loadgen serve`'s API in-process: a canary posted and polled to its verdict against a stand-in
target (no Consul: --map), cancelled, every bad input with its status, the token, and the two
controller exchanges replayed as the controllers make them (Flagger's webhook POST and its reading
of the status code; Argo Rollouts' Web provider GET, JSONPath and conditions)."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from loadgen.serve.app import ServeSettings
from loadgen.serve.body import TargetAllowList
from loadgen.serve.runs import Runs
from tests.unit.controller_exchanges import argo_web_measurement, flagger_payload, flagger_reads, flagger_webhook
from tests.unit.serve_in_thread import serving, split_target
from tests.unit.standin_target import standin_target

FAST = {"map": "1=v1,2=v2", "tolerance": 5, "rate": 1000, "warmup": "0.2s", "max_time": "20s"}
DEADLINE_S = 60  # a bound on polling, not a timed assertion: a healthy run ends in a few seconds


def poll(client: httpx.Client, run_id: str) -> dict:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        body = client.get(f"/v1/canaries/{run_id}", params={"wait": 2}).json()
        if body["state"] != "RUNNING" or time.monotonic() > deadline:
            return body


def test_a_canary_posted_and_polled_to_pass_has_canary_json_plus_state():
    with split_target(0.85) as target, serving() as base, httpx.Client(base_url=base, timeout=30) as client:
        resp = client.post("/v1/canaries", json={"expect": "85/15", "target": target, **FAST})
        assert resp.status_code == 201, resp.text
        run_id = resp.json()["id"]
        assert resp.headers["Location"] == f"/v1/canaries/{run_id}"
        body = poll(client, run_id)
    assert body["state"] == "PASS" == body["verdict"], body.get("reason")
    assert body["exit_code"] == 0 and body["id"] == run_id, (body["requests"], body["duration_s"], body["stopped_by"])
    # `canary --json`'s keys, all of them
    for key in ("judge", "bands", "mapping", "app_id_counts", "latency_ms", "generator", "warmup", "three_way"):
        assert key in body
    assert body["mapping"]["app_ids"] == {"1": "v1", "2": "v2"} and body["options"]["expect"] == "85/15"


def test_header_values_and_the_body_sent_to_the_target_are_not_answered_back():
    secret = "Bearer target-credential-42"
    with split_target(0.85) as target, serving() as base, httpx.Client(base_url=base, timeout=30) as client:
        run_id = client.post("/v1/canaries", json={"expect": "85/15", "target": target, **FAST, "request": "POST",
                                                   "header": [f"Authorization: {secret}"], "data": "pw=hunter2"}
                             ).json()["id"]
        running = client.get(f"/v1/canaries/{run_id}").text
        ended = poll(client, run_id)
    assert ended["state"] != "RUNNING" and ended["options"]["header"] == ["Authorization: …"], ended["reason"]
    assert ended["options"]["data"] == "… (10 bytes)"
    assert not any(s in running + json.dumps(ended) for s in ("target-credential-42", "hunter2"))


def test_a_wrong_expectation_fails_and_the_server_keeps_serving_after_a_run_without_verdict():
    with split_target(0.85) as target, standin_target(lambda _n: (200, "9")) as unmapped, serving() as base, \
            httpx.Client(base_url=base, timeout=30) as client:
        failed = client.post("/v1/canaries", json={"expect": "50/50", "target": target, **FAST}).json()["id"]
        broken = client.post("/v1/canaries", json={"expect": "85/15", "target": unmapped, **FAST}).json()["id"]
        assert poll(client, failed)["state"] == "FAIL"
        no_verdict = poll(client, broken)  # every answer names APP_ID 9, which --map does not know
        assert no_verdict["state"] == "INCONCLUSIVE" and no_verdict["exit_code"] == 2
        assert "APP_ID" in no_verdict["error"] and no_verdict["error"] in no_verdict["reason"]
        again = client.post("/v1/canaries", json={"expect": "85/15", "target": target, **FAST}).json()["id"]
        assert poll(client, again)["state"] == "PASS"


def test_delete_cancels_a_running_canary():
    slow = {**FAST, "rate": 100, "max_time": "60s"}
    with split_target(0.85) as target, serving() as base, httpx.Client(base_url=base, timeout=30) as client:
        run_id = client.post("/v1/canaries", json={"expect": "85/15", "target": target, **slow}).json()["id"]
        running = client.get(f"/v1/canaries/{run_id}", params={"wait": 0.5}).json()
        assert running["state"] == "RUNNING" and running["verdict"] is None
        deadline = time.monotonic() + DEADLINE_S
        # The latest look, once one has judged a request (a look during the 0.2 s warm-up has judged none:
        # CI saw sent == 0 there).
        while (running["progress"] is None or running["progress"]["sent"] == 0) and time.monotonic() < deadline:
            running = client.get(f"/v1/canaries/{run_id}", params={"wait": 0.2}).json()
        assert running["progress"]["sent"] > 0 and running["progress"]["look"] in ("RUNNING", "INCONCLUSIVE")
        assert client.delete(f"/v1/canaries/{run_id}").status_code == 202
        ended = poll(client, run_id)
        assert client.delete("/v1/canaries/nope").status_code == 404
    assert ended["state"] == "INCONCLUSIVE" and ended["stopped_by"] == "cancelled" and ended["cancelled"] is True
    assert ended["reason"].startswith("cancelled")
    assert ended["requests"] < 100 * 60  # stopped long before its budget


@pytest.mark.parametrize(("body", "status", "needle"), [
    ('{"expect": "85/15",', 400, "not JSON"),
    ('"85/15"', 400, "JSON object"),
    ('{"expect": "85/15", "target": "http://127.0.0.1:9/x", "bogus": 1}', 400, "unknown option 'bogus'"),
    ('{"expect": "85/15", "target": "http://127.0.0.1:9/x", "record": "/tmp/x"}', 400, "file on the server"),
    ('{"expect": "85/15", "target": "http://127.0.0.1:9/x", "json": "/tmp/x"}', 400, "file on the server"),
    ('{"expect": "85/15", "target": "http://127.0.0.1:9/x", "replay": "/etc/passwd"}', 400, "file on the server"),
    ('{"expect": "85/15", "target": "https://127.0.0.1:9/x", "cacert": "/etc/ssl"}', 400, "file on the server"),
    ('{"expect": "85/15", "target": "http://127.0.0.1:9/x", "data": "@/etc/passwd"}', 400, "@FILE"),
    ('{"expect": "85/15", "target": "http://127.0.0.1:9/x", "consul": "evil:8500"}', 400, "Consul token"),
    ('{"expect": "85/15", "target": "http://127.0.0.1:9/x", "stage": "splitter"}', 400, "local mesh"),
    ('{"expect": "85/15", "target": "http://127.0.0.1:9/x", "metrics_listen": "0.0.0.0:9464"}', 400, "open a port"),
    ('{"expect": "85/15"}', 400, "'target' is required"),
    ('{"target": "http://127.0.0.1:9/x"}', 400, "'expect' is required"),
    ('{"expect": "85/16", "target": "http://127.0.0.1:9/x", "map": "1=v1,2=v2"}', 400, "add up to 101"),
    ('{"expect": "85/15", "target": "http://127.0.0.1:9/x", "map": "1=v1,2=v2", "max_time": "soon"}', 400,
     "'--max-time': 'soon' is not a duration"),
    ('{"expect": "85/15", "target": "http://127.0.0.1:9/x", "map": "1=v1,2=v2", "rate": 0}', 400, "--rate"),
    ('{"expect": "85/15", "target": "http://127.0.0.1:9/x", "map": "1=v1,2=v2", "max_time": "2s", "rate": 1}', 400,
     "could only end INCONCLUSIVE"),
    ('{"expect": "85/15", "target": "http://127.0.0.1:9/x", "map": "1=v1,2=v2", "max_time": "2h"}', 400,
     "over this server's limit"),
    ('{"expect": "85/15", "target": "http://127.0.0.1:9/x", "map": "1=v1,2=v2", "insecure": "yes"}', 400,
     "is a flag"),
    ('{"expect": "85/15", "target": "http://127.0.0.1:9/x", "map": "1=v1,2=v2", "header": {"a": 1}}', 400,
     "takes a list of strings"),
    ('{"expect": "85/15", "target": "ftp://127.0.0.1:9/x", "map": "1=v1,2=v2"}', 400, "is not an http://"),
    ('{"expect": "85/15", "target": "http://10.1.2.3:3000/hello_a", "map": "1=v1,2=v2"}', 403, "allow-list"),
    ('{"expect": "consul", "target": "http://127.0.0.1:9/x"}', 400, "reads no Consul"),
    ('{"expect": "85/15", "target": "http://127.0.0.1:9/x"}', 400, "give 'map'"),
])
def test_bad_input_is_one_line_with_its_status_and_starts_nothing(body, status, needle):
    runs = Runs(max_runs=4)
    settings = ServeSettings(allow=TargetAllowList(("127.0.0.0/8",)))
    with serving(settings, runs) as base:
        resp = httpx.post(f"{base}/v1/canaries", content=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == status, resp.text
    message = resp.json()["error"]
    assert needle in message and "\n" not in message
    assert runs.running() == [] and runs.get("x") is None


def test_wrong_content_type_huge_bodies_and_unknown_ids():
    with serving(ServeSettings(max_body=1024)) as base, httpx.Client(base_url=base) as client:
        assert client.post("/v1/canaries", content='{"expect": "85/15"}',
                           headers={"Content-Type": "text/plain"}).status_code == 415
        huge = json.dumps({"expect": "85/15", "target": "http://x/" + "a" * 5000})
        assert client.post("/v1/canaries", content=huge, headers={"Content-Type": "application/json"}
                           ).status_code == 413

        def chunked():  # no Content-Length: refused while reading
            for _ in range(10):
                yield b" " * 500

        assert client.post("/v1/canaries", content=chunked(), headers={"Content-Type": "application/json"}
                           ).status_code == 413
        assert client.get("/v1/canaries/unknown").status_code == 404
        assert client.get("/v1/canaries/unknown", params={"wait": "x"}).status_code == 404
        assert client.get("/healthz").text == "ok\n"


def test_a_slow_body_is_cut_at_the_body_timeout():
    import socket

    with serving(ServeSettings(body_timeout=0.3)) as base:
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"POST /v1/canaries HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 100\r\n\r\n{\"exp")  # ... and never the rest
            answer = sock.recv(4096).decode()
    assert answer.startswith("HTTP/1.1 408"), answer


def test_a_client_that_never_finishes_its_headers_is_disconnected():
    import socket

    with serving(keepalive_timeout=0.3) as base:
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # ... and never the blank line
            assert sock.recv(4096) == b""  # closed by the server, nothing answered


def test_too_many_runs_is_429_and_nothing_starts():
    slow = {**FAST, "rate": 50, "max_time": "60s"}
    runs = Runs(max_runs=1)
    with split_target() as target, serving(runs=runs) as base, httpx.Client(base_url=base, timeout=30) as client:
        first = client.post("/v1/canaries", json={"expect": "85/15", "target": target, **slow})
        second = client.post("/v1/canaries", json={"expect": "85/15", "target": target, **slow})
        assert (first.status_code, second.status_code) == (201, 429)
        assert "--max-runs" in second.json()["error"] and second.headers["Retry-After"]
        assert len(runs.running()) == 1


TOKEN = "s3cret-token-0123456789abcdef"


def test_a_token_is_required_when_set_and_never_answered():
    with split_target() as target, serving(ServeSettings(token=TOKEN)) as base, \
            httpx.Client(base_url=base, timeout=30) as client:
        body = {"expect": "85/15", "target": target, **FAST}
        missing = client.post("/v1/canaries", json=body)
        wrong = client.post("/v1/canaries", json=body, headers={"Authorization": "Bearer nope"})
        basic = client.post("/v1/canaries", json=body, headers={"Authorization": f"Basic {TOKEN}"})
        assert (missing.status_code, wrong.status_code, basic.status_code) == (401, 401, 401)
        assert missing.headers["WWW-Authenticate"].startswith("Bearer")
        assert client.get("/v1/canaries/x").status_code == 401
        assert client.post("/v1/gate", json={"metadata": body}).status_code == 401
        assert client.get("/healthz").status_code == 200  # liveness probes carry no token
        auth = {"Authorization": f"Bearer {TOKEN}"}
        ok = client.post("/v1/canaries", json=body, headers=auth)
        assert ok.status_code == 201
        done = client.get(f"/v1/canaries/{ok.json()['id']}", params={"wait": 9}, headers=auth)
        texts = [r.text + json.dumps(dict(r.headers)) for r in (missing, wrong, basic, ok, done)]
    assert not any(TOKEN in t for t in texts)


def test_a_loopback_server_refuses_other_host_names():
    """DNS rebinding: a page at evil.example resolving to 127.0.0.1 sends Host: evil.example."""
    with serving() as base, httpx.Client(base_url=base) as client:
        assert client.get("/v1/canaries/x", headers={"Host": "evil.example"}).status_code == 421
        assert client.get("/v1/canaries/x", headers={"Host": "localhost:8089"}).status_code == 404


# -- the controllers' exchanges (tests/unit/controller_exchanges.py makes them as the controllers do) ------


def test_the_flagger_webhook_exchange():
    meta = {k: str(v) for k, v in FAST.items()}
    with split_target(0.85) as target, serving(ServeSettings(gate_wait=8.0)) as base, \
            httpx.Client(base_url=base, timeout=30) as client:
        passed = flagger_webhook(client, "/v1/gate", flagger_payload({"expect": "85/15", "target": target, **meta}))
        failed = flagger_webhook(client, "/v1/gate", flagger_payload({"expect": "50/50", "target": target, **meta}))
        bad = flagger_webhook(client, "/v1/gate", flagger_payload({"expect": "85/15", "target": target, "bogus": "1"}))
        empty = flagger_webhook(client, "/v1/gate", {"name": "service-b", "namespace": "test", "phase": "rollout"})
    assert (passed.status_code, flagger_reads(passed.status_code)) == (200, "go on"), passed.text
    assert passed.text.startswith("PASS: canary ") and passed.text.count("\n") == 1
    assert (failed.status_code, flagger_reads(failed.status_code)) == (412, "failed check")
    assert failed.text.startswith("FAIL: ")
    assert bad.status_code == 400 and "unknown option 'bogus'" in bad.text
    assert empty.status_code == 400 and "metadata" in empty.text


def test_the_gate_answers_running_then_reports_that_run_to_the_next_call():
    slow = {**{k: str(v) for k, v in FAST.items()}, "rate": "300", "max_time": "30s"}
    with split_target(0.85) as target, serving(ServeSettings(gate_wait=0.3)) as base, \
            httpx.Client(base_url=base, timeout=30) as client:
        payload = flagger_payload({"expect": "85/15", "target": target, **slow})
        first = client.post("/v1/gate", json=payload)
        assert first.status_code == 503 and first.text.startswith("RUNNING: canary ") and first.headers["Retry-After"]
        run_id = first.text.split()[2]
        deadline = time.monotonic() + DEADLINE_S
        answer = first
        while answer.text.startswith("RUNNING") and time.monotonic() < deadline:
            answer = client.post("/v1/gate", json=payload)
            assert answer.text.split()[2] == run_id  # the same run, not a new one each call
        assert answer.status_code == 200 and answer.text.startswith(f"PASS: canary {run_id}")
        following = client.post("/v1/gate", json=payload)  # reported once: the next call starts a new run
        assert following.text.split()[2] != run_id


def test_the_argo_web_provider_exchange():
    success, failure = "result == 'PASS'", "result == 'FAIL'"
    slow = {**FAST, "rate": 100, "max_time": "60s"}
    with split_target(0.85) as target, serving() as base, httpx.Client(base_url=base, timeout=30) as client:
        ids, ended = {}, {}
        for expect in ("85/15", "50/50"):  # one at a time: the stand-in is one Python process
            ids[expect] = client.post("/v1/canaries", json={"expect": expect, "target": target, **FAST}).json()["id"]
            ended[expect] = poll(client, ids[expect])
        running = client.post("/v1/canaries", json={"expect": "85/15", "target": target, **slow}).json()["id"]
        measured = {expect: argo_web_measurement(client, f"/v1/canaries/{run_id}?wait=9", "{$.state}", success,
                                                 failure) for expect, run_id in ids.items()}
        while_running = argo_web_measurement(client, f"/v1/canaries/{running}", "{$.state}", success, failure)
        client.delete(f"/v1/canaries/{running}")
        cancelled = poll(client, running)
        after_cancel = argo_web_measurement(client, f"/v1/canaries/{running}", "{$.state}", success, failure)
    assert measured == {"85/15": "Successful", "50/50": "Failed"}, {k: v["reason"] for k, v in ended.items()}
    assert while_running == "Inconclusive"  # Argo measures again at the next interval
    assert cancelled["state"] == "INCONCLUSIVE" and after_cancel == "Inconclusive"


def test_every_canary_option_is_decided_on_accepted_or_refused():
    """A new `canary` option is refused by the API until someone decides it is safe on a server
    (a file path, a port, the server's Consul must never be a client's choice)."""
    from loadgen.serve.body import REFUSED_KEYS, _canary_command, _option_keys

    accepted = set(_option_keys(_canary_command())) - set(REFUSED_KEYS)
    assert accepted == {
        "baseline", "confidence", "data", "envoy_admin", "error_margin", "expect", "header", "insecure", "latency",
        "latency_margin", "map", "max_errors", "max_requests", "max_time", "max_unknown", "method", "path", "rate",
        "request", "subset_from", "target", "timeout", "tolerance", "upstream", "warmup"}


def test_metrics_show_every_run_by_its_id_and_its_final_verdict():
    from prometheus_client.parser import text_string_to_metric_families

    from loadgen.serve.metrics import metrics_handler

    runs = Runs(max_runs=4)
    with split_target(0.85) as target, serving(runs=runs, metrics=metrics_handler(runs)) as base, \
            httpx.Client(base_url=base, timeout=30) as client:
        run_id = client.post("/v1/canaries", json={"expect": "85/15", "target": target, **FAST}).json()["id"]
        body = poll(client, run_id)
        page = client.get("/metrics")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/plain"), page.text[:200]
    families = {f.name: f for f in text_string_to_metric_families(page.text)}
    requests = [s for s in families["loadgen_requests"].samples if s.name == "loadgen_requests_total"]
    assert {s.labels["run_id"] for s in requests} == {run_id}
    assert sum(s.value for s in requests) == body["requests"] > 0
    verdict = {s.labels["state"]: s.value for s in families["loadgen_verdict"].samples}
    assert verdict[body["verdict"]] == 1 and sum(verdict.values()) == 1, verdict


def test_posts_of_the_same_canary_in_other_spellings_are_one_run_for_the_gate():
    """The gate reuses an ended run of the same canary: the same options parsed, however spelled
    (Flagger's metadata is all strings; another client may send numbers)."""
    from loadgen.serve.body import parse_canary

    target = "http://127.0.0.1:3000/hello_a"
    numbers = parse_canary({"expect": "85/15", "target": target, "tolerance": 5, "max_time": 30, "rate": 300})
    strings = parse_canary({"expect": "85/15", "target": target, "tolerance": "5.0", "max_time": "30s",
                            "rate": "300"}, strings_only=True)
    other = parse_canary({"expect": "85/15", "target": target, "tolerance": "4", "max_time": "30s", "rate": "300"},
                         strings_only=True)
    assert numbers.key == strings.key
    assert other.key != strings.key
    assert numbers.shown()["tolerance"] == 5 and strings.shown()["tolerance"] == "5.0"  # shown as posted
