"""The probes' pure parts: change-point estimation, CUSUM, and the deny/allow timing analysis."""

import numpy as np

from loadgen.load.sample import Sample
from loadgen.probes.intention_phase import analyse
from loadgen.probes.propagation import change_point, cusum_alarm
from loadgen.probes.watch import Observation

BEFORE, AFTER = {"v1": 0.85, "v2": 0.15}, {"v1": 0.5, "v2": 0.5}


def _stream(rng, n_before, n_after):
    a = rng.choice(["v1", "v2"], size=n_before, p=[0.85, 0.15]).tolist()
    b = rng.choice(["v1", "v2"], size=n_after, p=[0.5, 0.5]).tolist()
    return a + b


def test_change_point_finds_the_switch():
    rng = np.random.default_rng(1)
    errors = []
    for _ in range(50):
        labels = _stream(rng, 500, 500)
        errors.append(change_point(labels, BEFORE, AFTER) - 500)
    # Within a few dozen requests of the truth, and not biased to one side.
    assert np.median(np.abs(errors)) < 30
    assert abs(np.median(errors)) < 15


def test_cusum_is_quiet_before_and_fires_after():
    rng = np.random.default_rng(2)
    false_alarms = sum(cusum_alarm(_stream(rng, 1000, 0), BEFORE, AFTER) is not None for _ in range(100))
    assert false_alarms <= 12  # ~10^4 requests between false alarms: ~10 % of runs of 1000
    delays = [cusum_alarm(_stream(rng, 0, 1000), BEFORE, AFTER) for _ in range(100)]
    assert all(d is not None for d in delays) and np.median(delays) < 60


def _obs(stream, t, ok):
    s = Sample(t=t, status=200 if ok else None, app_id="1" if ok else None, latency_ms=1.0,
               error=None if ok else "reset")
    return Observation(stream, t, s)


def test_deny_timing_and_violations():
    t0 = 100.0
    obs = [_obs("new", t0 + i * 0.002, ok=i < 50) for i in range(200)]  # denied from +100 ms
    obs += [_obs("pooled", t0 + i * 0.005, ok=True) for i in range(80)]  # pooled never stops
    obs.append(_obs("new", t0 + 0.3001, ok=True))  # one slips through after the sidecars showed the deny
    r = analyse("deny", t0, 7, obs, {"b1": t0 + 0.08, "b2": t0 + 0.1}, ["b1", "b2"])
    assert r.first_ms["new"] == 100.0
    assert r.all_ms["new"] is not None and r.all_ms["new"] > 300  # the straggler moved "all denied" later
    assert r.violations == 1
    assert r.all_ms["pooled"] is None and r.pooled_violations > 0
    assert r.envoy_ms == {"b1": 80.0, "b2": 100.0}
