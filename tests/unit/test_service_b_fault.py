"""service-b's fault injection (off by default): errors with the APP_ID still on them, added
latency, switched at run time; bad values are refused. Its own code on loopback."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from services.service_b.app import _fault_value, make_app


async def _hits(app, n: int, fault: str | None = None) -> tuple[list[int], list[str], float, dict]:
    async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as client:
        set_to: dict = {}
        if fault is not None:
            async with client.post(server.make_url("/test/fault?" + fault)) as resp:
                set_to = {"status": resp.status, **(await resp.json())}
        statuses, ids = [], []
        started = time.perf_counter()
        for _ in range(n):
            async with client.get(server.make_url("/hello_b")) as resp:
                statuses.append(resp.status)
                ids.append(resp.headers.get("X-App-Id", ""))
        return statuses, ids, (time.perf_counter() - started) / max(n, 1), set_to


def test_off_by_default():
    statuses, ids, _, _ = asyncio.run(_hits(make_app("2", "v2", "b2"), 50))
    assert set(statuses) == {200} and set(ids) == {"2"}


def test_errors_carry_the_app_id_and_come_at_about_the_rate_asked():
    statuses, ids, _, set_to = asyncio.run(_hits(make_app("2", "v2", "b2"), 400, "error_rate=0.5"))
    assert set_to == {"status": 200, "error_rate": 0.5, "delay_ms": 0.0}
    assert set(ids) == {"2"} and set(statuses) == {200, 500}
    assert 120 < statuses.count(500) < 280  # binomial(400, 0.5): far outside this is a broken fault


def test_delay_is_added_and_can_be_turned_off():
    _, _, slow, _ = asyncio.run(_hits(make_app("2", "v2", "b2", delay_ms=30), 10))
    assert slow >= 0.03
    statuses, _, fast, set_to = asyncio.run(_hits(make_app("2", "v2", "b2", delay_ms=30), 10,
                                                   "error_rate=0&delay_ms=0"))
    assert set_to["delay_ms"] == 0 and fast < 0.03 and set(statuses) == {200}


@pytest.mark.parametrize("query", ["error_rate=2", "error_rate=x", "delay_ms=-1"])
def test_bad_fault_values_are_refused(query):
    _, _, _, set_to = asyncio.run(_hits(make_app("2", "v2", "b2"), 0, query))
    assert set_to["status"] == 400 and "must be" in set_to["error"]
    with pytest.raises(ValueError):
        _fault_value("1.5", "FAULT_ERROR_RATE", 1.0)
