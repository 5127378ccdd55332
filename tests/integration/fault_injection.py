"""service-b's fault injection (POST /test/fault on an instance), found through Consul's catalog
so it works on every runtime: what tests use to make one subset slower or failing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx

CONSUL = "http://127.0.0.1:8500"


def instances() -> dict[str, str]:
    """APP_ID -> service-b instance's own address."""
    rows = httpx.get(f"{CONSUL}/v1/catalog/service/service-b", timeout=5).json()
    return {r["ServiceMeta"]["app_id"]: f"http://{r['ServiceAddress'] or r['Address']}:{r['ServicePort']}"
            for r in rows}


@contextmanager
def fault(app_id: str, delay_ms: float = 0, error_rate: float = 0) -> Iterator[None]:
    """Instance ``app_id`` answers ``delay_ms`` later and fails ``error_rate`` of its answers (500,
    still naming itself) until the block ends."""
    url = instances()[app_id] + "/test/fault"
    resp = httpx.post(url, params={"delay_ms": delay_ms, "error_rate": error_rate}, timeout=5)
    assert resp.status_code == 200, resp.text
    try:
        yield
    finally:
        httpx.post(url, params={"delay_ms": 0, "error_rate": 0}, timeout=5)
