"""Conditions a user can cause in the probes end as one line and a LoadgenError's code, never 70."""

from __future__ import annotations

import time

import pytest

from loadgen.errors import ExitCode, LoadgenError, UnreachableError
from loadgen.load.sample import Sample
from loadgen.probes import intentions
from loadgen.probes.intentions import IntentionProbe
from loadgen.probes.watch import Observation

URL = "http://127.0.0.1:1/hello_b"


class _Traffic:
    """Stands in for ProbeTraffic: a steady stream of one kind of answer, sent 'now'."""

    def __init__(self, ok: bool, error: str | None) -> None:
        self.ok, self.error = ok, error

    def since(self, t0: float) -> list[Observation]:
        now = time.perf_counter()
        sample = Sample(t=0.0, status=200 if self.ok else None, app_id="1" if self.ok else None, latency_ms=1.0,
                        error=self.error)
        return [Observation("new", now - i * 0.002, sample) for i in range(50) if now - i * 0.002 >= t0]


@pytest.fixture(autouse=True)
def _short_phases(monkeypatch):
    monkeypatch.setattr(intentions, "PHASE_MAX_S", 0.3)


def test_traffic_that_never_succeeds_is_unreachable_not_a_bug():
    probe = IntentionProbe(consul=None, sidecar_admin={}, upstream=URL)  # type: ignore[arg-type]
    with pytest.raises(UnreachableError) as caught:
        probe._settle(_Traffic(ok=False, error="connect"), "ok")
    assert isinstance(caught.value, LoadgenError) and caught.value.code == ExitCode.UNREACHABLE == 4
    message = str(caught.value)
    assert "\n" not in message and URL in message and "did not steadily succeed" in message
    assert "0 ok, 0 denied, 50 error" in message


def test_a_deny_that_never_bites_is_unreachable_too():
    probe = IntentionProbe(consul=None, sidecar_admin={}, upstream=URL)  # type: ignore[arg-type]
    with pytest.raises(UnreachableError) as caught:
        probe._settle(_Traffic(ok=True, error=None), "denied")
    assert caught.value.code == ExitCode.UNREACHABLE
    assert "the deny did not stop new connections" in str(caught.value) and "50 ok" in str(caught.value)


def test_settled_traffic_returns_at_once():
    probe = IntentionProbe(consul=None, sidecar_admin={}, upstream=URL)  # type: ignore[arg-type]
    start = time.perf_counter()
    probe._settle(_Traffic(ok=False, error="reset"), "denied")  # a reset is how a tcp deny looks
    assert time.perf_counter() - start < 0.3
