"""The probes' typed results: one figure per meaning, and the --json they write (schema unchanged)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadgen.errors import UsageError
from loadgen.load.sample import Sample
from loadgen.probes import intentions
from loadgen.probes.intention_phase import PhaseResult, analyse, when_all_sidecars_showed
from loadgen.probes.intention_report import Distribution, IntentionCycle, IntentionsReport, ProtocolResult
from loadgen.probes.propagation import ChangeResult, PropagationResult
from loadgen.probes.target import TargetOptions, parse_envoy_admins, probe_target
from loadgen.probes.watch import Observation

PHASE_KEYS = ["write_index", "first_ms", "all_ms", "envoy_ms", "pooled_kept_flowing_ms", "violations",
              "violation_window_ms", "pooled_violations", "requests"]
FIGURE_KEYS = ["first_new_connection", "all_new_connections", "envoy_all_sidecars", "first_pooled", "all_pooled"]


def _obs(stream, t, ok):
    s = Sample(t=t, status=200 if ok else None, app_id="1" if ok else None, latency_ms=1.0,
               error=None if ok else "reset")
    return Observation(stream, t, s)


def _deny(t0=100.0, leak=False, pooled_flow=True):
    obs = [_obs("new", t0 + i * 0.002, ok=i < 50) for i in range(200)]
    obs += [_obs("pooled", t0 + i * 0.005, ok=pooled_flow or i < 10) for i in range(80)]
    if leak:
        obs.append(_obs("new", t0 + 0.3001, ok=True))
    return analyse("deny", t0, 7, obs, {"b1": t0 + 0.08, "b2": t0 + 0.1}, ["b1", "b2"])


def _allow(t0=200.0, sidecars_shown=("b1", "b2")):
    obs = [_obs("new", t0 + i * 0.002, ok=i >= 25) for i in range(200)]
    envoy = {"b1": t0 + 0.03, "b2": t0 + 0.04}
    return analyse("allow", t0, 0, obs, {k: v for k, v in envoy.items() if k in sidecars_shown}, ["b1", "b2"])


def test_all_sidecars_figure_is_never_when_one_sidecar_never_showed_it():
    assert when_all_sidecars_showed({"b1": 80.0, "b2": 100.0}) == 100.0
    # The old progress line took the max of those that showed it (here 80): now it says never,
    # as the table and the JSON's envoy_all_sidecars always did.
    assert when_all_sidecars_showed({"b1": 80.0, "b2": None}) is None
    assert when_all_sidecars_showed({}) is None  # no sidecars: nothing showed it (was a ValueError)
    assert _allow(sidecars_shown=("b1",)).all_sidecars_ms is None
    assert _allow().all_sidecars_ms == 40.0


def test_distribution_json_is_as_before():
    assert Distribution.of([None, None]).to_json() == {"n": 0}
    d = Distribution.of([10.0, 20.0, None, 30.0])
    assert d.to_json() == {"n": 3, "min": 10.0, "median": 20.0, "p95": 29.0, "max": 30.0, "missing": 1}
    assert list(d.to_json()) == ["n", "min", "median", "p95", "max", "missing"]


def test_intentions_json_keeps_its_schema_and_counts_violations(tmp_path):
    cycles = [IntentionCycle(_deny(leak=True), _allow()), IntentionCycle(_deny(pooled_flow=False), _allow())]
    result = ProtocolResult("tcp", cycles, plots=[tmp_path / "a.png"])
    lenient, strict = IntentionsReport(rate=500.0, strict=False), IntentionsReport(rate=500.0, strict=True)
    lenient.protocols["tcp"] = strict.protocols["tcp"] = result
    doc = json.loads(json.dumps(lenient.to_json()))
    assert list(doc) == ["resolution_ms", "protocols", "violations"] and doc["resolution_ms"] == 2.0
    proto = doc["protocols"]["tcp"]
    assert list(proto) == ["repeats", "deny_distribution_ms", "allow_distribution_ms", "plots"]
    assert proto["plots"] == [str(tmp_path / "a.png")]
    assert list(proto["repeats"][0]) == ["deny", "allow"] and list(proto["repeats"][0]["deny"]) == PHASE_KEYS
    assert proto["repeats"][0]["deny"]["envoy_ms"] == {"b1": 80.0, "b2": 100.0}
    assert list(proto["deny_distribution_ms"]) == FIGURE_KEYS
    assert proto["deny_distribution_ms"]["envoy_all_sidecars"]["n"] == 2
    assert proto["deny_distribution_ms"]["envoy_all_sidecars"]["max"] == 100.0
    assert proto["deny_distribution_ms"]["first_new_connection"]["median"] == 100.0
    # The leak is a violation; pooled successes after the deny count only with --strict.
    pooled = sum(c.deny.pooled_violations for c in cycles)
    assert pooled > 0
    assert lenient.violations == 1 and doc["violations"] == 1
    assert strict.violations == 1 + pooled


def test_progress_line_and_table_read_the_same_envoy_figure(monkeypatch):
    """The progress line says "envoy never" exactly when the table's "deny envoy" is "-"."""
    lines = []
    # One repeat where b2 never showed the deny.
    second_deny = _deny()
    second_deny.envoy_ms["b2"] = None
    phases = iter([_deny(), _allow(), second_deny, _allow()])

    class Quiet:
        def __init__(self, *args, **kwargs):
            pass

        start = stop = lambda self: None

    class Consul:
        def get_config(self, kind, name):
            return None

        def write_config(self, entry):
            return 1

        def delete_config(self, kind, name):
            pass

    monkeypatch.setattr(intentions, "ProbeTraffic", Quiet)
    monkeypatch.setattr(intentions, "EnvoyWatcher", Quiet)
    monkeypatch.setattr(intentions.IntentionProbe, "_phase", lambda self, action, traffic, watcher: next(phases))
    probe = intentions.IntentionProbe(Consul(), {"b1": "x:1", "b2": "x:2"}, say=lines.append)  # type: ignore[arg-type]
    cycles = probe.run(2)
    assert "(envoy 100 ms)" in lines[0] and cycles[0].deny.all_sidecars_ms == 100.0
    assert "(envoy never)" in lines[1] and cycles[1].deny.all_sidecars_ms is None
    dist = ProtocolResult("tcp", cycles).distributions("deny")["envoy_all_sidecars"]
    assert dist.n == 1 and dist.missing == 1


def test_change_json_leaves_out_the_timeline():
    c = ChangeResult(to="v1=50,v2=50", write_index=3, envoy_ms=12.0, change_ms=40.5, detected_ms=60.0,
                     detection_delay_ms=19.5, share_before={"v1": 0.85}, share_after={"v1": 0.5}, requests=9,
                     timeline=[(1.0, "v1")])
    doc = PropagationResult(rate=400.0, changes=[c], plotted_subset="v1", plots=[Path("p.png")]).to_json()
    assert doc == {"resolution_ms": 2.5, "plots": ["p.png"], "changes": [{
        "to": "v1=50,v2=50", "write_index": 3, "envoy_ms": 12.0, "change_ms": 40.5, "detected_ms": 60.0,
        "detection_delay_ms": 19.5, "share_before": {"v1": 0.85}, "share_after": {"v1": 0.5}, "requests": 9}]}


@pytest.mark.parametrize(
    ("given", "needle"),
    [
        (TargetOptions(url="http://h:9000/hello_b"), "--target needs --consul"),
        (TargetOptions(url="http://h:9000/hello_b", consul="h:8500"), "--target needs --consul"),
        (TargetOptions(consul="h:8500"), "go with --target"),
        (TargetOptions(envoy_admins=("h:19001",)), "go with --target"),
        (TargetOptions(url="http://h:9000/hello_b", consul="h:8500", envoy_admins=("b1=nowhere",)),
         "is not [NAME=]HOST:PORT"),
    ],
)
def test_target_options_that_do_not_go_together(given, needle):
    with pytest.raises(UsageError) as caught, probe_target("basic", given, "service-b", print):
        pass
    assert needle in str(caught.value)


def test_a_given_deployment_is_used_as_given():
    given = TargetOptions(url="http://h:9000/hello_b", consul="h:8500", envoy_admins=("b1=h:19001", "h:19002"))
    with probe_target("basic", given, "service-b", print) as target:
        assert (target.url, target.consul_address) == ("http://h:9000/hello_b", "h:8500")
        assert target.sidecar_admin == {"b1": "h:19001", "service-b-2": "h:19002"}
    assert parse_envoy_admins((" a = h:1 ",), "service-a") == {"a": "h:1"}


def test_phase_json_has_no_timeline():
    p: PhaseResult = _deny()
    assert p.timeline and "timeline" not in p.to_json()


def test_tables_print_what_the_results_hold(monkeypatch):
    from rich.console import Console

    from loadgen.commands import probes as commands

    monkeypatch.setattr(commands, "out", Console(width=200))  # one line per row, whatever the terminal

    partial = _deny()
    partial.envoy_ms["b2"] = None  # b2 never showed the deny: "deny envoy" is "-", as the progress line's never
    result = ProtocolResult("tcp", [IntentionCycle(_deny(leak=True), _allow()), IntentionCycle(partial, _allow())])
    with commands.out.capture() as captured:
        commands._print_intentions(result, 500.0)
    rows = [line for line in captured.get().splitlines() if line.strip().startswith(("│ 1 ", "│ 2 "))]
    cells = [[c.strip() for c in row.strip("│ ").split("│")] for row in rows]
    assert cells[0][:2] == ["1", "100"] and cells[1][:2] == ["2", "-"], captured.get()
    assert cells[0][-1] == "1 in 200 ms" and cells[1][-1] == "0"
    assert "envoy (all sidecars)" in captured.get()

    change = ChangeResult(to="v1=50,v2=50", write_index=3, envoy_ms=12.0, change_ms=None, detected_ms=60.4,
                          detection_delay_ms=None, share_before={}, share_after={"v1": 0.5, "v2": 0.5}, requests=9,
                          timeline=[])
    with commands.out.capture() as captured:
        commands._print_propagation(PropagationResult(400.0, [change], "v1"), 400.0)
    assert "v1:50.0% v2:50.0%" in captured.get() and "│ 12 " in captured.get() and "│ 60 " in captured.get()


def test_intentions_junit_fails_the_repeats_the_exit_code_counts():
    import xml.etree.ElementTree as ET

    # The first repeat leaked a new-connection request past the deny in force; the second did not.
    cycles = [IntentionCycle(_deny(leak=True), _allow()), IntentionCycle(_deny(pooled_flow=False), _allow())]
    report = IntentionsReport(rate=500.0, strict=False)
    report.protocols["tcp"] = ProtocolResult("tcp", cycles)
    suite = ET.fromstring(report.junit())
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["tcp repeat 1", "tcp repeat 2"]
    assert suite.get("failures") == "1" and int(suite.get("failures")) == (report.violations > 0)
    failure = cases[0].find("failure")
    assert failure.get("type") == "Violation" and failure.get("message").startswith(f"{report.violations} request")
    assert cases[1].find("failure") is None and "deny shown by every sidecar 100" in cases[1].find("system-out").text
