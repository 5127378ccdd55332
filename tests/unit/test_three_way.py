"""Consul / Envoy / traffic side by side: a stale sidecar FAILs whatever the traffic did, the
counters are a second observation, and every output carries the three columns."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from loadgen.canary.consul_view import chain_request, consul_view
from loadgen.canary.result import CanaryResult
from loadgen.canary.three_way import ThreeWay
from loadgen.mesh.programmed import ClusterCounters
from loadgen.mesh.subsets import SubsetMap
from loadgen.stats import JudgeConfig, SequentialJudge, SplitSpec, VerdictState, plan_sample_size
from tests.unit.test_consul_view import fake_consul

DATA = Path(__file__).parent / "data"
DUMP = json.loads((DATA / "splitter-service-a.json").read_text())
TRUST = "48b1cf02-53f6-f72b-7dad-5a7b1fb0a918"


class FakeAdmin:
    """Stands in for a sidecar's admin: a dump whose weights the test sets, counters it advances."""

    address = "127.0.0.1:19000"

    def __init__(self, weights: tuple[int, int], version: str = "v-1") -> None:
        self.dump = copy.deepcopy(DUMP)
        self.set(weights, version)
        self.counts = {"v1": 0, "v2": 0}

    def set(self, weights: tuple[int, int], version: str) -> None:
        for cfg in self.dump["configs"]:
            if cfg["@type"].endswith(".RoutesConfigDump"):
                item = cfg["dynamic_route_configs"][0]
                item["version_info"] = version
                clusters = item["route_config"]["virtual_hosts"][0]["routes"][0]["route"]["weighted_clusters"]
                for c, w in zip(clusters["clusters"], weights, strict=True):
                    c["weight"] = w

    def config_dump(self) -> dict:
        return self.dump

    def cluster_stats(self, clusters: list[str]) -> dict[str, ClusterCounters]:
        return {c: ClusterCounters(self.counts[c[:2]], self.counts[c[:2]], 0) for c in clusters if c[:2] in self.counts}


def view_with_trust(chain: str = "splitter"):
    """Consul's view, its clusters named in the recorded dump's trust domain."""
    with fake_consul(chain) as consul:
        view = consul_view(consul, "service-a", chain_request({}))
    for target in view.compiled.targets:
        object.__setattr__(target, "cluster", target.cluster.replace(target.cluster.split(".")[-2], TRUST))
    return view


def verdict_for(counts: dict[str, int], spec: SplitSpec):
    return SequentialJudge(spec, JudgeConfig()).finish(counts)


def test_in_step_sidecar_and_counters_agreeing():
    admin = FakeAdmin((8500, 1500))
    three = ThreeWay(view_with_trust(), admin, chain_request({}))  # type: ignore[arg-type]
    three.before()
    admin.counts = {"v1": 850, "v2": 150}
    three.after()
    assert three.stale() is None and three.envoy_shares() == {"v1": 0.85, "v2": 0.15}
    assert three.counter_deltas() == {"v1": 850, "v2": 150}
    verdict = verdict_for({"v1": 850, "v2": 150}, SplitSpec(("v1", "v2"), (0.85, 0.15)))
    judged, notes = three.judge(verdict, {"v1": 850, "v2": 150}, 0.01)
    assert judged is verdict and notes == []
    rows = three.to_json(verdict)["subsets"]
    assert rows["v2"]["consul"] == 0.15 and rows["v2"]["envoy"] == 0.15
    assert rows["v2"]["envoy_counters"] == {"requests": 150, "5xx": 0, "share": 0.15}
    assert rows["v2"]["traffic"]["count"] == 150


def test_a_stale_sidecar_fails_even_when_the_traffic_passes():
    admin = FakeAdmin((8500, 1500), version="old-hash")
    view = view_with_trust("nested")  # Consul now says 75/25
    three = ThreeWay(view, admin, chain_request({}))  # type: ignore[arg-type]
    three.before()
    three.after()
    stale = three.stale()
    assert stale is not None and "127.0.0.1:19000" in stale and "old-hash" in stale
    assert "routes v1 85 % / v2 15 % but Consul compiled v1 75 % / v2 25 %" in stale
    verdict = verdict_for({"v1": 8500, "v2": 1500}, SplitSpec(("v1", "v2"), (0.85, 0.15)))
    assert verdict.state is VerdictState.PASS
    judged, _ = three.judge(verdict, None, 0.01)
    assert judged.state is VerdictState.FAIL and "the traffic alone: PASS" in judged.reason
    result = CanaryResult(verdict=judged, spec=verdict_spec(), mapping=SubsetMap(("v1", "v2"), {}, "test"),
                          plan=plan_sample_size(verdict_spec(), JudgeConfig()), target="t", requests=1, duration_s=1,
                          rate_asked=None, rate_achieved=None, app_id_counts={}, errors={}, latency_ms={},
                          stopped_by="verdict", three_way=three.to_json(judged))
    assert result.exit_code == 1 and result.to_json()["three_way"]["stale"] == stale
    junit = result.junit()
    assert 'name="client sidecar routes as Consul compiled"' in junit and "old-hash" in junit


def verdict_spec() -> SplitSpec:
    return SplitSpec(("v1", "v2"), (0.85, 0.15))


def test_a_sidecar_that_catches_up_during_the_run_is_not_stale_but_its_versions_show():
    admin = FakeAdmin((8500, 1500), version="old")
    three = ThreeWay(view_with_trust("nested"), admin, chain_request({}))  # type: ignore[arg-type]
    three.before()
    admin.set((7500, 2500), "new")
    three.after()
    out = three.to_json()
    assert three.stale() is None and out["envoy"]["version_before"] == "old" and out["envoy"]["version"] == "new"


def test_counters_that_disagree_with_the_app_ids_are_a_warning():
    admin = FakeAdmin((8500, 1500))
    three = ThreeWay(view_with_trust(), admin, chain_request({}))  # type: ignore[arg-type]
    three.before()
    admin.counts = {"v1": 500, "v2": 500}  # e.g. other traffic through the sidecar
    three.after()
    verdict = verdict_for({"v1": 850, "v2": 150}, verdict_spec())
    _, notes = three.judge(verdict, {"v1": 850, "v2": 150}, 0.01)
    assert any("disagree more than chance" in n for n in notes)


def test_envoy_counts_are_routed_request_deltas_per_subset():
    """--subset-from envoy judges upstream_rq_total (counted when the sidecar routes a request, so in
    send order), not 2xx (counted when answered: the faster subset first, a failing one never)."""
    admin = FakeAdmin((8500, 1500))
    three = ThreeWay(view_with_trust(), admin, chain_request({}))  # type: ignore[arg-type]
    three.before()
    assert three.start is not None
    admin.counts = {"v1": 40, "v2": 7}
    answered_only = {c: ClusterCounters(n.rq_total, n.rq_total // 2, n.rq_total - n.rq_total // 2)
                     for c, n in three.counters_now().items()}
    assert three.answers(three.start.counters, answered_only) == {"v1": 40, "v2": 7}


def test_without_a_sidecar_the_envoy_columns_are_empty():
    three = ThreeWay(view_with_trust(), None, chain_request({}))
    three.before()
    three.after()
    rows = three.to_json()["subsets"]
    assert rows["v1"]["envoy"] is None and rows["v1"]["envoy_counters"] is None and three.stale() is None
