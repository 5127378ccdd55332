"""Identity values that are subset names (``--subset-from json:upstream.version`` answering "v1")
name those subsets; values that are neither a mapped APP_ID nor a subset name are a usage
problem (one line, exit 2, naming the values and the map), not a FAIL of the split -- live and
in a replay."""

from __future__ import annotations

import json
import socket
from collections import Counter

import numpy as np

from loadgen.canary.expectation import UNMAPPED_STOP, Expectation
from loadgen.mesh.subsets import SubsetMap
from loadgen.stats import SplitSpec
from tests.integration.local_target import local_target
from tests.unit.cli_in_process import loadgen_in_process

SPEC = SplitSpec(("v1", "v2"), (0.85, 0.15))
CONSUL_MAP = SubsetMap(("v1", "v2"), {"1": "v1", "2": "v2"}, "service-resolver/service-b subsets in Consul")


def test_subset_names_map_to_themselves_and_the_map_still_wins():
    expectation = Expectation(SPEC, CONSUL_MAP)
    assert expectation.classify(Counter({"v1": 850, "v2": 150, "1": 10})) == (Counter({"v1": 860, "v2": 150}), 0)
    assert expectation.subset_of("v3") is None and CONSUL_MAP.subset_of("v2") == "v2"
    # An APP_ID that the map sends elsewhere keeps the map's meaning, even if it looks like a subset.
    crossed = Expectation(SPEC, SubsetMap(("v1", "v2"), {"v1": "v2", "v2": "v1"}, "--map"))
    assert crossed.subset_of("v1") == "v2"
    # Positional spec names with an empty map (a replay's): still themselves.
    assert Expectation(SPEC, SubsetMap((), {}, "none")).subset_of("v2") == "v2"


def test_values_matching_nothing_are_a_usage_problem_once_enough_answered():
    expectation = Expectation(SPEC, CONSUL_MAP)
    assert expectation.unmapped_identities({"blue": UNMAPPED_STOP - 1}) is None  # not yet sure
    assert expectation.unmapped_identities({"blue": 3}, final=True) is not None  # the run is over: it is
    problem = expectation.unmapped_identities({"blue": 40, "green": 10})
    assert problem is not None
    assert "'blue', 'green'" in problem and "1=v1, 2=v2" in problem and "service-resolver/service-b" in problem
    assert "v1, v2" in problem and "--map blue=SUBSET" in problem
    # One value that maps makes the others unknown APP_IDs, the judge's business (--max-unknown).
    assert expectation.unmapped_identities({"blue": 400, "1": 1}, final=True) is None
    assert expectation.unmapped_identities({"blue": 400, "v2": 1}, final=True) is None


def run(*args, tmp_path):
    return loadgen_in_process("canary", *args, tmp_path=tmp_path, env={"CONSUL_HTTP_ADDR": None})


def _recording(path, names: tuple[str, str], p: float = 0.85, n: int = 20_000, seed: int = 3) -> None:
    rng = np.random.default_rng(seed)
    with path.open("w") as fh:
        for i in range(n):
            name = names[0] if rng.random() < p else names[1]
            fh.write(json.dumps({"t": i / 500, "status": 200, "app_id": name, "latency_ms": 2.0, "error": None}) + "\n")


def test_a_replay_of_subset_names_passes(tmp_path):
    rec = tmp_path / "versions.jsonl"
    _recording(rec, ("v1", "v2"))
    proc = run("--replay", str(rec), "--expect", "85/15", "--map", "1=v1,2=v2", "--json", "-", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert result["verdict"] == "PASS" and set(result["app_id_counts"]) == {"v1", "v2"}


def test_a_replay_whose_values_match_nothing_exits_2_naming_them_and_the_map(tmp_path):
    rec = tmp_path / "colours.jsonl"
    _recording(rec, ("blue", "green"))
    proc = run("--replay", str(rec), "--expect", "85/15", "--map", "1=v1,2=v2", tmp_path=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("loadgen: error:"), proc.stderr
    assert "'blue', 'green'" in lines[0] and "1=v1, 2=v2" in lines[0] and "--map" in lines[0]


def test_a_live_run_whose_values_match_nothing_exits_2(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    with local_target() as target:  # answers {"app_id": "1" | "2"}: not in a map of 7 and 8
        proc = run("--target", target.url, "--consul", f"127.0.0.1:{closed}", "--map", "7=v1,8=v2",
                   "--expect", "85/15", "--subset-from", "json:app_id", "--rate", "200", "-q", tmp_path=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("loadgen: error: --subset-from json:app_id: "), proc.stderr
    assert "'1', '2'" in lines[0] or "'2', '1'" in lines[0]
    assert "7=v1, 8=v2 (--map)" not in lines[0] and "7=v1, 8=v2; --map" in lines[0]
