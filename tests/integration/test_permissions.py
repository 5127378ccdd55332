"""L7 intention permissions on the real mesh (stage l7-router): `loadgen intentions --permissions`.

GET /hello_b must keep reaching service-b; POST /hello_b, GET /hello_b/admin and GET /hello_b with
an x-debug header must get Envoy's RBAC 403 once the permissions are written and reach service-b
again once they are lifted; and the service-intentions entry Consul had before is there afterwards.
"""

from __future__ import annotations

import json

import httpx

CONSUL = "http://127.0.0.1:8500"
ENTRY = f"{CONSUL}/v1/config/service-intentions/service-b"
ALLOWED = "get-hello-b"
DENIED = ("post-hello-b", "get-hello-b-admin", "get-hello-b-x-debug")


def _permissions(loadgen) -> tuple[int, dict]:
    proc = loadgen("intentions", "--permissions", "--repeat", "1", "--json", "-", timeout=240, check=False)
    assert proc.returncode in (0, 1), f"exit {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def _check_one_cycle(code: int, report: dict) -> None:
    # Exit 1 exactly when a denied class got through later than the grace after the sidecars
    # showed the rules (or an allowed request was refused); the report says how many and when.
    assert code == (1 if report["violations"] or report["wrongly_denied"] else 0), report
    assert report["grace_ms"] == 2000.0 and report["stopped"] is None
    [cycle] = report["repeats"]
    restrict, lift = cycle["restrict"], cycle["lift"]
    # The evidence for leaks being draining connections: service-b's sidecars count their closes.
    # The probe's settled traffic keeps service-a's sidecar's pooled connections to them open, so
    # the new rules (a new filter chain on their public listener) must drain and close some.
    assert restrict["drain_closes"] is not None and restrict["drain_closes"] > 0, restrict
    for phase in (restrict, lift):
        assert phase["envoy_all_sidecars_ms"] is not None and phase["envoy_all_sidecars_ms"] > 0, phase
        allowed = phase["classes"][ALLOWED]
        # The allowed class reached service-b (200 with an APP_ID) on every request, throughout.
        assert allowed["requests"] > 50 and allowed["reached"] == allowed["requests"], allowed
        assert allowed["wrongly_denied"] == 0 and allowed["errors"] == 0
    for name in DENIED:
        bite, heal = restrict["classes"][name], lift["classes"][name]
        # Envoy's RBAC reply (403 "RBAC: access denied") is the only answer counted as denied.
        assert bite["denied"] > 50 and bite["errors"] == 0, (name, bite)
        assert bite["first_ms"] is not None and 0 < bite["first_ms"] <= bite["all_ms"], (name, bite)
        assert bite["leaks"] >= bite["violations"] and not bite["never_bit"], (name, bite)
        assert (bite["leaks"] == 0) == (bite["leak_window_ms"] is None), (name, bite)
        if bite["leaks"]:  # a connection opened before the change was still served the old rules
            assert restrict["drain_closes"] > 0, restrict
        # The permissions bite in the data plane: nothing of a denied class gets through once the
        # sidecars have shown the rules and drained what they served before (the evidence).
        assert bite["violations"] == 0, (name, bite)
        # Lifted: every request of the class reaches service-b again by the end of the phase.
        assert heal["all_ms"] is not None and 0 < heal["first_ms"] <= heal["all_ms"], (name, heal)
        assert heal["reached"] > 50 and heal["violations"] == 0
    assert report["wrongly_denied"] == 0


def test_permissions_bite_per_request_class_and_nothing_is_left_behind(loadgen):
    loadgen("up", "--stage", "l7-router")  # kept up by the test, so Consul can be asked afterwards
    httpx.delete(ENTRY, timeout=5).raise_for_status()
    code, report = _permissions(loadgen)
    _check_one_cycle(code, report)
    assert report["found"] == "none"
    assert httpx.get(ENTRY, timeout=5).status_code == 404  # deleted again: there was none


def test_an_entry_found_is_merged_into_and_put_back_exactly(loadgen):
    loadgen("up", "--stage", "l7-router")
    mine = {"Kind": "service-intentions", "Name": "service-b", "Meta": {"owner": "the-test"},
            "Sources": [{"Name": "web", "Action": "deny", "Description": "someone else's"},
                        {"Name": "service-a", "Action": "allow"}]}
    assert httpx.put(f"{CONSUL}/v1/config", json=mine, timeout=5).json() is True
    before = httpx.get(ENTRY, timeout=5).json()
    try:
        code, report = _permissions(loadgen)
        _check_one_cycle(code, report)
        assert report["found"] == "2 source(s)"
        after = httpx.get(ENTRY, timeout=5).json()
        ignore = ("CreateIndex", "ModifyIndex", "Hash")
        assert {k: v for k, v in after.items() if k not in ignore} == \
            {k: v for k, v in before.items() if k not in ignore}
    finally:
        httpx.delete(ENTRY, timeout=5)
