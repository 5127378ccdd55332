"""Parsing Envoy config dumps recorded from a live mesh (tests/unit/data/record_dumps.py)."""

import json
from pathlib import Path

import pytest

from loadgen.mesh import envoy_admin
from loadgen.mesh.liveness import envoy_expectations
from loadgen.mesh.stages import load_stages

DATA = Path(__file__).parent / "data"


def dump(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text())


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("v1.service-b.default.dc1.internal.48b1cf02-53f6-f72b-7dad-5a7b1fb0a918.consul", ("v1", "service-b")),
        ("service-b.default.dc1.internal.48b1cf02-53f6-f72b-7dad-5a7b1fb0a918.consul", (None, "service-b")),
        ("local_app", (None, "local_app")),
    ],
)
def test_cluster_service(name, expected):
    assert envoy_admin.cluster_service(name) == expected


def test_splitter_weights():
    assert envoy_admin.weighted_split(dump("splitter-service-a"), "service-b") == {"v1": 8500, "v2": 1500}
    assert envoy_admin.weighted_split(dump("l7-router-service-a"), "service-b") is None
    assert envoy_admin.weighted_split(dump("basic-service-a"), "service-b") is None


def test_router_route():
    routes = [r for r in envoy_admin.routes(dump("l7-router-service-a")) if r.prefix == "/hello_b"]
    assert len(routes) == 1
    assert envoy_admin.cluster_service(routes[0].cluster) == (None, "service-b")
    # The scoped-routes section must not hide the real one (both names end in RoutesConfigDump).
    assert any(r.route_config == "service-a" for r in envoy_admin.routes(dump("splitter-service-a")))


def test_public_listener_found():
    listener = envoy_admin.public_listener(dump("basic-service-b-1"))
    assert listener is not None and listener["name"].startswith("public_listener:127.0.0.1:")


@pytest.mark.parametrize("stage", ["intentions", "l7-router", "splitter"])
def test_each_stage_expectations_hold_on_its_own_dumps(stage):
    st = load_stages().get(stage)
    dumps = {"service-a": dump(f"{stage}-service-a"), "service-b-1": dump(f"{stage}-service-b-1"),
             "service-b-2": dump(f"{stage}-service-b-1")}
    expectations = envoy_expectations(st)
    assert expectations
    assert all(e.holds(dumps) for e in expectations), [e.description for e in expectations if not e.holds(dumps)]


def test_expectations_fail_on_the_wrong_stage():
    book = load_stages()
    basic = {"service-a": dump("basic-service-a"), "service-b-1": dump("basic-service-b-1"),
             "service-b-2": dump("basic-service-b-1")}
    for stage in ("intentions", "l7-router", "splitter"):
        assert not all(e.holds(basic) for e in envoy_expectations(book.get(stage))), stage


def test_removal_expectations_when_leaving_a_stage():
    book = load_stages()
    leaving = envoy_expectations(book.get("basic"), previous=book.get("intentions"))
    still_denied = {"service-a": dump("intentions-service-a"), "service-b-1": dump("intentions-service-b-1"),
                    "service-b-2": dump("intentions-service-b-1")}
    allowed = {"service-a": dump("basic-service-a"), "service-b-1": dump("basic-service-b-1"),
               "service-b-2": dump("basic-service-b-1")}
    assert leaving and not all(e.holds(still_denied) for e in leaving)
    assert all(e.holds(allowed) for e in leaving)
    unsplit = envoy_expectations(book.get("l7-router"), previous=book.get("splitter"))
    l7 = {"service-a": dump("l7-router-service-a"), "service-b-1": dump("l7-router-service-b-1"),
          "service-b-2": dump("l7-router-service-b-1")}
    split = {**l7, "service-a": dump("splitter-service-a")}
    assert all(e.holds(l7) for e in unsplit)
    assert not all(e.holds(split) for e in unsplit)


def test_rbac_decides_as_envoy_does():
    # Default allow: a DENY filter refuses the services it names, admits the rest.
    assert not envoy_admin.rbac_allows(dump("intentions-service-b-1"), "service-a")
    assert envoy_admin.rbac_allows(dump("intentions-service-b-1"), "service-c")
    assert envoy_admin.rbac_allows(dump("basic-service-b-1"), "service-a")


def _with_rbac(rules: dict | None) -> dict:
    config = {"@type": "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC", "stat_prefix": "x"}
    if rules is not None:
        config["rules"] = rules
    listener = {"name": "public_listener:127.0.0.1:21001", "filter_chains": [
        {"filters": [{"name": "envoy.filters.network.rbac", "typed_config": config}]}]}
    return {"configs": [{"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
                         "dynamic_listeners": [{"active_state": {"listener": listener}}]}]}


def test_rbac_default_deny_admits_only_what_an_allow_names():
    principal = {"authenticated": {"principal_name": {"safe_regex": {"regex": "^spiffe://t/ns/default/dc/[^/]+/svc/"
                                                                              "service-a$"}}}}
    allow_a = _with_rbac({"action": "ALLOW", "policies": {"p": {"permissions": [{"any": True}],
                                                                "principals": [principal]}}})
    assert envoy_admin.rbac_allows(allow_a, "service-a")
    assert not envoy_admin.rbac_allows(allow_a, "service-c")
    assert not envoy_admin.rbac_allows(_with_rbac({}), "service-a")  # ALLOW with no policy: nobody
    assert envoy_admin.rbac_allows(_with_rbac(None), "service-a")  # no rules: everyone
