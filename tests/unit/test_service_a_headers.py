"""service-a passes request headers on to its upstream call, as real services do (tracing,
baggage, canary flags), so a header route can match what a client sent to service-a.
Its own code on loopback: a small aiohttp app stands in for the sidecar and records what it got."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from loadgen.canary.consul_view import PROPAGATED
from services.service_a.app import DEFAULT_PROPAGATE, make_app, propagated, propagation_rule


async def _through_service_a(headers: dict[str, str], propagate: str = DEFAULT_PROPAGATE) -> dict[str, str]:
    seen: dict[str, str] = {}

    async def hello_b(request: web.Request) -> web.Response:
        seen.update(request.headers)
        return web.json_response({"app_id": "1", "version": "v1"})

    sidecar = web.Application()
    sidecar.router.add_get("/hello_b", hello_b)
    async with TestServer(sidecar, host="127.0.0.1") as upstream:
        app = make_app(str(upstream.make_url("")), 5.0, propagate=propagate)
        async with TestServer(app, host="127.0.0.1") as front, aiohttp.ClientSession() as client, \
                client.get(front.make_url("/hello_a"), headers=headers) as resp:
            assert resp.status == 200, await resp.text()
    return {k.lower(): v for k, v in seen.items()}


def test_x_headers_and_trace_context_reach_the_upstream_call():
    got = asyncio.run(_through_service_a({"X-Canary": "1", "traceparent": "00-abc-def-01", "b3": "1-2",
                                          "Authorization": "Bearer t", "Cookie": "c=1"}))
    assert got["x-canary"] == "1" and got["traceparent"] == "00-abc-def-01" and got["b3"] == "1-2"
    assert "authorization" not in got and "cookie" not in got


def test_propagate_headers_is_configurable_and_can_be_off():
    got = asyncio.run(_through_service_a({"X-Canary": "1", "Baggage": "k=v"}, propagate="baggage"))
    assert got.get("baggage") == "k=v" and "x-canary" not in got
    assert "x-canary" not in asyncio.run(_through_service_a({"X-Canary": "1"}, propagate=""))


def test_hop_by_hop_headers_never_pass_even_when_a_pattern_matches():
    assert propagated({"Connection": "close", "Host": "a", "TE": "x", "X-A": "1"}, ("*",)) == {"X-A": "1"}
    hop = {"Keep-Alive": "5", "Transfer-Encoding": "chunked", "Upgrade": "h2c", "Content-Length": "0",
           "Proxy-Authorization": "Basic x", "Proxy-Anything": "1"}
    assert propagated(hop, ("*", "proxy-*", "keep-alive")) == {}


def test_b3_multi_header_form_and_mixed_case_patterns():
    got = asyncio.run(_through_service_a({"X-B3-TraceId": "abc", "X-B3-Sampled": "1", "Tracestate": "k=v",
                                          "Proxy-Foo": "1"}))
    assert got["x-b3-traceid"] == "abc" and got["x-b3-sampled"] == "1" and got["tracestate"] == "k=v"
    assert "proxy-foo" not in got
    # Patterns are case-insensitive too, and whitespace around the commas does not matter.
    assert propagated({"Baggage": "k=v", "X-Other": "1"}, propagation_rule(" BAGGAGE , ")) == {"Baggage": "k=v"}
    assert propagation_rule("") == ()


def test_loadgen_matches_chain_routes_with_service_as_default_rule():
    # loadgen.canary.consul_view assumes the canary's headers reach the upstream by this rule.
    assert propagation_rule(DEFAULT_PROPAGATE) == PROPAGATED


async def _failing_upstream(body: object, status: int = 500) -> tuple[int, str | None]:
    async def hello_b(_request: web.Request) -> web.Response:
        if body is None:
            return web.Response(text="<html>", status=status)
        return web.json_response(body, status=status)

    sidecar = web.Application()
    sidecar.router.add_get("/hello_b", hello_b)
    async with TestServer(sidecar, host="127.0.0.1") as upstream:
        app = make_app(str(upstream.make_url("")), 5.0)
        async with TestServer(app, host="127.0.0.1") as front, aiohttp.ClientSession() as client, \
                client.get(front.make_url("/hello_a")) as resp:
            return resp.status, resp.headers.get("X-App-Id")


def test_an_upstream_error_that_names_its_instance_keeps_the_name():
    # service-b's injected 500 says which instance failed: the canary can count it as that subset's failure.
    assert asyncio.run(_failing_upstream({"app_id": "2", "error": "injected fault"})) == (502, "2")
    assert asyncio.run(_failing_upstream({"error": "no name"})) == (502, None)
    assert asyncio.run(_failing_upstream(None)) == (502, None)
    assert asyncio.run(_failing_upstream({"app_id": ""})) == (502, None)
