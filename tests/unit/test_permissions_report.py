"""The permissions probe's pure analysis: how an answer is classed, per-class timing, violations, JSON."""

from __future__ import annotations

from loadgen.load.sample import Sample
from loadgen.probes.permission_report import (
    DEFAULT_CLASSES,
    DENIED,
    ENVOY_RBAC_BODY,
    ERROR,
    REACHED,
    PermissionCycle,
    PermissionsReport,
    analyse_permission_phase,
    answer_kind,
)
from loadgen.probes.watch import Observation

ALLOWED, POST, ADMIN, DEBUG = (c.name for c in DEFAULT_CLASSES)
RBAC = "rbac"


def _sample(kind: str) -> Sample:
    """An answer as the lean client records it: service-b's 200/405, Envoy's RBAC 403, a 503."""
    if kind == "ok":
        return Sample(t=0, status=200, app_id="1", latency_ms=1.0, error=None, bytes=83)
    if kind == RBAC:
        return Sample(t=0, status=403, app_id=None, latency_ms=1.0, error="http_403", bytes=len(ENVOY_RBAC_BODY))
    if kind == "405":
        return Sample(t=0, status=405, app_id=None, latency_ms=1.0, error="http_405", bytes=23)
    return Sample(t=0, status=503, app_id=None, latency_ms=1.0, error="http_503", bytes=19)


def _stream(name: str, kinds: list[str], t0: float = 100.0, step: float = 0.01) -> list[Observation]:
    """One class's requests, sent every ``step`` s from ``t0`` (the write's instant)."""
    return [Observation(name, t0 + (i + 1) * step, _sample(k)) for i, k in enumerate(kinds)]


def test_answers_are_classed_by_who_gave_them():
    assert answer_kind(_sample("ok")) == REACHED
    assert answer_kind(_sample("405")) == REACHED  # service-b's own answer: the request got through
    assert answer_kind(_sample(RBAC)) == DENIED
    assert answer_kind(_sample("503")) == ERROR
    assert answer_kind(Sample(t=0, status=None, app_id=None, latency_ms=None, error="reset")) == ERROR
    # A 403 that is not Envoy's RBAC reply (another body) is not counted as the permission biting.
    assert answer_kind(Sample(t=0, status=403, app_id=None, latency_ms=1.0, error="http_403", bytes=9)) == ERROR


def _restrict(post_kinds: list[str], shown_at: float | None, grace_s: float = 0.0) -> dict:
    obs = _stream(ALLOWED, ["ok"] * 10) + _stream(POST, post_kinds) + _stream(ADMIN, ["405"] * 3 + [RBAC] * 7) + \
        _stream(DEBUG, ["ok"] * 5 + [RBAC] * 5)
    envoy = {} if shown_at is None else {"b1": shown_at - 0.01, "b2": shown_at}
    return analyse_permission_phase("restrict", 100.0, 42, obs, envoy, ["b1", "b2"], DEFAULT_CLASSES, grace_s,
                                    drain_closes=3)


def test_restrict_times_each_denied_class_and_leaves_the_allowed_one_alone():
    phase = _restrict(["405"] * 4 + [RBAC] * 6, shown_at=100.045)
    post, admin, debug, allowed = (phase.classes[n] for n in (POST, ADMIN, DEBUG, ALLOWED))
    assert (post.first_ms, post.all_ms) == (50.0, 50.0)
    assert (admin.first_ms, admin.all_ms) == (40.0, 40.0)
    assert (debug.first_ms, debug.all_ms) == (60.0, 60.0)
    assert (post.reached, post.denied, post.requests) == (4, 6, 10)
    assert allowed.first_ms is None and allowed.wrongly_denied == 0 and allowed.reached == 10
    # The x-debug class still reached service-b 5 times after every sidecar showed it (100.045):
    # 100.05 is its 5th request; the others switched in time.
    assert (debug.violations, post.violations, admin.violations) == (1, 0, 0)
    assert phase.violations == 1 and phase.write_index == 42
    assert phase.envoy_ms == {"b1": 35.0, "b2": 45.0} and phase.all_sidecars_ms == 45.0


def test_a_leak_after_the_switch_breaks_all_and_is_a_violation_with_its_window():
    phase = _restrict(["405", RBAC, RBAC, "405", RBAC, "405"] + [RBAC] * 4, shown_at=100.015)
    post = phase.classes[POST]
    assert post.first_ms == 20.0 and post.all_ms == 70.0  # the unbroken run of denials starts after the last leak
    assert post.violations == 2 and post.violation_window_ms == 45.0  # leaks at 100.04 and 100.06


def test_nothing_counts_as_a_violation_until_every_sidecar_showed_the_permissions():
    phase = _restrict(["405"] * 10, shown_at=None)  # one sidecar never showed it
    assert phase.violations == 0 and phase.all_sidecars_ms is None
    assert phase.classes[POST].first_ms is None and phase.classes[POST].all_ms is None


def test_a_class_that_ends_the_phase_still_leaking_has_no_all_instant():
    phase = _restrict([RBAC] * 9 + ["405"], shown_at=100.0)
    post = phase.classes[POST]
    assert post.first_ms == 10.0 and post.all_ms is None and post.violations == 1


def test_lift_times_reaching_service_b_again_and_an_allowed_class_denied_is_counted():
    obs = _stream(ALLOWED, ["ok"] * 8 + [RBAC, "ok"]) + _stream(POST, [RBAC] * 3 + ["405"] * 7) + \
        _stream(ADMIN, [RBAC] * 10) + _stream(DEBUG, [RBAC, "ok", RBAC] + ["ok"] * 7)
    phase = analyse_permission_phase("lift", 100.0, 7, obs, {"b1": 100.02, "b2": 100.03}, ["b1", "b2"],
                                     DEFAULT_CLASSES)
    assert (phase.classes[POST].first_ms, phase.classes[POST].all_ms) == (40.0, 40.0)
    assert (phase.classes[DEBUG].first_ms, phase.classes[DEBUG].all_ms) == (20.0, 40.0)
    assert phase.classes[ADMIN].all_ms is None  # never reached service-b again within the phase
    assert phase.violations == 0  # a lift lets requests through: reaching service-b is what it should do
    assert phase.classes[ALLOWED].wrongly_denied == 1 and phase.wrongly_denied == 1


def test_the_report_sums_violations_and_summarises_each_denied_class():
    first = _restrict(["405"] * 4 + [RBAC] * 6, shown_at=100.045)
    second = _restrict(["405", RBAC, RBAC, "405", RBAC, "405"] + [RBAC] * 4, shown_at=100.015)
    lift = analyse_permission_phase("lift", 100.0, 0, _stream(POST, ["405"] * 3), {}, ["b1"], DEFAULT_CLASSES)
    report = PermissionsReport(entry="consul/x.hcl", rate_per_class=125.0, classes=DEFAULT_CLASSES, found="none",
                               cycles=[PermissionCycle(first, lift), PermissionCycle(second, lift)])
    data = report.to_json()
    # 1st: x-debug once. 2nd (shown at 100.015): POST twice, /hello_b/admin twice, x-debug 4 times.
    assert data["violations"] == report.violations == 1 + (2 + 2 + 4)
    assert data["resolution_ms"] == 8.0 and data["found"] == "none" and data["mode"] == "permissions"
    assert set(data["distributions_ms"]["restrict"]) == {POST, ADMIN, DEBUG}  # the allowed class never changes
    post = data["distributions_ms"]["restrict"][POST]["all"]
    assert (post["n"], post["min"], post["max"]) == (2, 50.0, 70.0)
    assert data["repeats"][1]["restrict"]["classes"][POST]["violation_window_ms"] == 45.0
    assert [c["expect"] for c in data["classes"]] == ["allowed", "denied", "denied", "denied"]
    assert data["classes"][3]["headers"] == {"x-debug": "1"}


def test_leaks_within_the_grace_are_leaks_and_later_ones_violations():
    # POST leaks at 100.04 and 100.06 after every sidecar showed the rules at 100.015.
    leaky = ["405", RBAC, RBAC, "405", RBAC, "405"] + [RBAC] * 4
    within = _restrict(leaky, shown_at=100.015, grace_s=0.05).classes[POST]
    assert (within.leaks, within.leak_window_ms) == (2, 45.0)
    assert (within.violations, within.violation_window_ms) == (0, None)
    split = _restrict(leaky, shown_at=100.015, grace_s=0.03).classes[POST]
    assert (split.leaks, split.violations, split.violation_window_ms) == (2, 1, 45.0)  # 100.04 is 25 ms after
    assert _restrict(leaky, shown_at=100.015, grace_s=0.03).to_json()["drain_closes"] == 3


def test_a_class_never_steadily_denied_counts_every_leak_whatever_the_grace():
    phase = _restrict([RBAC] * 9 + ["405"], shown_at=100.0, grace_s=10.0)
    post = phase.classes[POST]
    assert post.never_bit and post.all_ms is None and (post.leaks, post.violations) == (1, 1)
    assert phase.never_bit == [POST]
    assert not phase.classes[ADMIN].never_bit and not phase.classes[ALLOWED].never_bit


def test_a_report_stopped_after_a_restrict_that_did_not_bite_has_no_lift():
    phase = _restrict([RBAC] * 9 + ["405"], shown_at=100.0, grace_s=1.0)
    report = PermissionsReport(entry="consul/x.hcl", rate_per_class=125.0, classes=DEFAULT_CLASSES, found="none",
                               grace_s=1.0, cycles=[PermissionCycle(phase, None)], stopped="repeat 1: post")
    data = report.to_json()
    assert data["repeats"][0]["lift"] is None and data["stopped"] == "repeat 1: post"
    assert data["violations"] == report.violations == 1 and data["grace_ms"] == 1000.0
    assert report.wrongly_denied == 0 and data["leaks"] == report.leaks >= 1
    assert data["distributions_ms"]["lift"][POST]["all"]["n"] == 0


def test_permissions_junit_fails_each_class_and_repeat_with_violations():
    import xml.etree.ElementTree as ET

    first = _restrict(["405"] * 4 + [RBAC] * 6, shown_at=100.045)
    second = _restrict(["405", RBAC, RBAC, "405", RBAC, "405"] + [RBAC] * 4, shown_at=100.015)
    lift = analyse_permission_phase("lift", 100.0, 0, _stream(POST, ["405"] * 3), {}, ["b1"], DEFAULT_CLASSES)
    report = PermissionsReport(entry="consul/x.hcl", rate_per_class=125.0, classes=DEFAULT_CLASSES, found="none",
                               cycles=[PermissionCycle(first, lift), PermissionCycle(second, lift)])
    suite = ET.fromstring(report.junit())
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert len(cases) == 2 * len(DEFAULT_CLASSES) and suite.get("tests") == str(len(cases))
    failed = {name: c.find("failure") for name, c in cases.items() if c.find("failure") is not None}
    # 1st repeat: x-debug once; 2nd: POST, /hello_b/admin and x-debug (as the JSON test above counts).
    assert set(failed) == {f"repeat 1 {DEBUG}", f"repeat 2 {POST}", f"repeat 2 {ADMIN}", f"repeat 2 {DEBUG}"}
    assert failed[f"repeat 2 {DEBUG}"].get("message").startswith("4 request(s) reached service-b")
    # Nothing allowed was refused: the allowed class passes, saying what it saw.
    assert report.wrongly_denied == 0 and "should be allowed" in cases[f"repeat 1 {ALLOWED}"].find("system-out").text
