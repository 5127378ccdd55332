"""--subset-from: how a response names its backend, read the same way in every process."""

from __future__ import annotations

import pickle

import pytest

from loadgen.errors import ExitCode, UsageError
from loadgen.load.engine import app_id_of
from loadgen.load.identity import AUTO, IdentityRule

BODY = b'{"service": "shop", "upstream": {"app_id": 7, "items": [{"id": "a"}], "ok": true}, "app_id": "1"}'


def test_auto_reads_the_header_then_the_json_app_id():
    assert AUTO.of({"X-App-Id": "2"}, BODY) == "2"
    assert AUTO.of({}, BODY) == "1" == app_id_of({}, BODY)
    assert AUTO.of({}, b"not json") is None and AUTO.of({}, b"") is None


@pytest.mark.parametrize(("spec", "headers", "body", "expected"), [
    ("header:X-Subset", {"x-subset": "v2"}, b"", "v2"),
    ("header:x-subset", {"X-Subset": " v1 "}, b"", "v1"),
    ("header:X-Subset", {"X-App-Id": "2"}, BODY, None),  # never falls back to another rule
    ("json:upstream.app_id", {}, BODY, "7"),
    ("json:upstream.items.0.id", {}, BODY, "a"),
    ("json:upstream.ok", {}, BODY, "true"),
    ("json:upstream", {}, BODY, None),  # an object names nothing
    ("json:upstream.items.5.id", {}, BODY, None),
    ("json:app_id", {}, b'  {"app_id": 3}', "3"),
    ("json:app_id", {}, b"[1]", None),
    ("envoy", {"X-App-Id": "2"}, b"", "2"),  # recorded as auto; the judged counts are Envoy's
])
def test_rules_read_only_what_they_name(spec, headers, body, expected):
    assert IdentityRule.parse(spec).of(headers, body) == expected


@pytest.mark.parametrize("spec", ["xml:a", "header:", "json:", "json:a..b", "header:a b", "", "Envoy2"])
def test_a_malformed_rule_is_one_line_with_exit_2(spec):
    with pytest.raises(UsageError) as info:
        IdentityRule.parse(spec)
    assert info.value.code == ExitCode.USAGE and "header:NAME" in info.value.message


def test_rules_travel_to_worker_processes():
    rule = IdentityRule.parse("json:upstream.app_id")
    assert pickle.loads(pickle.dumps(rule)) == rule and rule.text == "json:upstream.app_id"
    assert IdentityRule.parse(" ENVOY ") == IdentityRule("envoy", "", "envoy")


@pytest.mark.parametrize(("spec", "kind", "name"), [
    ("HEADER:X-Subset", "header", "X-Subset"), (" json: a.0.b ", "json", "a.0.b"), ("Auto", "auto", ""),
])
def test_the_kind_is_any_case_and_the_argument_is_kept(spec, kind, name):
    rule = IdentityRule.parse(spec)
    assert (rule.kind, rule.name) == (kind, name)


@pytest.mark.parametrize(("spec", "body"), [
    ("json:upstream.app_id", b'{"upstream": {"app_id": null}}'),
    ("json:upstream.app_id", b'{"upstream": "v1"}'),  # a step into a string names nothing
    ("json:upstream.missing", BODY),
])
def test_a_missing_identity_is_none(spec, body):
    assert IdentityRule.parse(spec).of({}, body) is None


def test_the_engine_counts_an_answer_without_the_identity_as_no_app_id():
    import asyncio
    import time

    from loadgen.load.client import Response
    from loadgen.load.engine import _one

    class Answers:
        new_connection = False

        async def send(self) -> Response:
            return Response(200, {"X-App-Id": "1"}, b'{"app_id": "1"}', False)

    async def one(spec: str):
        return await _one(Answers(), 0.0, None, time.perf_counter, IdentityRule.parse(spec))  # type: ignore[arg-type]

    assert (asyncio.run(one("auto")).app_id, asyncio.run(one("auto")).error) == ("1", None)
    missing = asyncio.run(one("header:X-Subset"))
    assert (missing.app_id, missing.error, missing.status) == (None, "no_app_id", 200)
