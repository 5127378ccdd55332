"""Locust with loadgen's plugin on the real mesh: CI gate, distributed merge, the Split tab in a browser."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from loadgen.stats import SequentialJudge, SplitSpec, VerdictState
from tests.integration.fault_injection import fault
from tests.integration.parts import missing

ROOT = Path(__file__).resolve().parents[2]
LOCUST = [str(Path(sys.executable).with_name("locust")), "-f", str(ROOT / "locustfiles" / "mesh.py")]
SCREENSHOT = ROOT / "reports" / "locust-split-tab.png"


@contextlib.contextmanager
def locust_sees_the_mesh_of(loadgen) -> Iterator[None]:
    """Locust (run below with this process's environment) finds the local mesh where the session's
    `loadgen up` recorded it: without a local mesh the plugin reads no local sidecar
    (loadgen.locust_options.local_mesh_up)."""
    before = os.environ.get("LOADGEN_RUN_DIR")
    os.environ["LOADGEN_RUN_DIR"] = str(loadgen.run_dir)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("LOADGEN_RUN_DIR", None)
        else:
            os.environ["LOADGEN_RUN_DIR"] = before


@pytest.fixture(scope="module", autouse=True)
def splitter(splitter_mesh, loadgen):
    """The session's shared process mesh at stage splitter (tests/integration/conftest.py)."""
    with locust_sees_the_mesh_of(loadgen):
        yield


def locust(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LOCUST, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def _schema(doc: dict) -> dict:
    """The keys of a canary JSON, and of its objects with fixed keys (the others are keyed by data)."""
    return {k: sorted(v) if k in ("judge", "plan", "mapping", "generator", "warmup") else None for k, v in doc.items()}


def test_headless_gate_pass_writes_outputs(tmp_path, loadgen):
    out_json, out_xml = tmp_path / "l.json", tmp_path / "l.xml"
    proc = locust("--headless", "-u", "10", "-r", "10", "-t", "60s", "--expect", "85/15", "--tolerance", "5",
                  "--stop-on-verdict", "--canary-json", str(out_json), "--canary-junit", str(out_xml), "--only-summary")
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out_json.read_text())
    assert result["verdict"] == "PASS" and set(result["app_id_counts"]) == {"1", "2"}
    assert set(result["by_app_id"]) == {"1", "2"}
    for lat in result["by_app_id"].values():
        assert lat["p99"] <= lat["max"]  # HDR, not rounded buckets: p99 never above max
    assert "<testsuite" in out_xml.read_text()
    # The same schema as `loadgen canary --json` (one CanaryResult for both), told apart by "source".
    cli = tmp_path / "cli.json"
    loadgen("canary", "--expect", "85/15", "--tolerance", "5", "--max-time", "20s", "-q", "--json", str(cli))
    cli_result = json.loads(cli.read_text())
    assert _schema(result) == _schema(cli_result)
    assert (result["source"], cli_result["source"]) == ("locust", "loadgen canary")
    assert result["requests"] == sum(result["app_id_counts"].values()) + sum(result["errors"].values())


def test_headless_gate_fail():
    proc = locust("--headless", "-u", "10", "-r", "10", "-t", "60s", "--expect", "50/50", "--stop-on-verdict",
                  "--only-summary")
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "loadgen canary: FAIL" in proc.stderr


def test_headless_gate_fails_a_slower_canary_on_latency(tmp_path):
    """v2 answers 40 ms later (service-b's fault injection): the split still PASSes, the latency
    comparison FAILs, and the headless run exits 1 with the comparison in its JSON and JUnit."""
    out_json, out_xml = tmp_path / "l.json", tmp_path / "l.xml"
    with fault("2", delay_ms=40):
        proc = locust("--headless", "-u", "10", "-r", "10", "-t", "90s", "--expect", "85/15", "--tolerance", "5",
                      "--latency", "p99", "--latency-margin", "10%", "--stop-on-verdict", "--canary-json",
                      str(out_json), "--canary-junit", str(out_xml), "--only-summary")
    assert proc.returncode == 1, proc.stderr[-2000:]
    result = json.loads(out_json.read_text())
    assert result["verdict"] == "FAIL" and "v2's p99 is at least" in result["reason"], result["reason"]
    (latency,) = result["comparisons"]["latency"]
    assert (latency["subset"], latency["baseline"], latency["verdict"]) == ("v2", "v1", "FAIL")
    assert latency["ratio"][0] > 1.1 and latency["requests"] <= result["app_id_counts"]["2"]
    assert "LatencyWorse" in out_xml.read_text()


def test_distributed_master_sums_workers_exactly(tmp_path):
    workers = [subprocess.Popen([*LOCUST, "--worker", "--master-host", "127.0.0.1", "--canary-json",
                                 str(tmp_path / f"w{k}.json")], cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL) for k in range(2)]
    try:
        master = locust("--master", "--master-bind-host", "127.0.0.1", "--headless", "-u", "8", "-r", "8",
                        "-t", "6s", "--expect-workers", "2", "--expect", "50/50", "--latency", "p99.9",
                        "--latency-margin", "1%", "--canary-json",
                        str(tmp_path / "m.json"), "--only-summary")
    finally:
        for w in workers:
            w.wait(timeout=60)
    assert master.returncode == 1, master.stderr[-2000:]
    m = json.loads((tmp_path / "m.json").read_text())
    reports = [json.loads((tmp_path / f"w{k}.json").read_text()) for k in range(2)]
    assert len(m["workers"]) == 2
    for app_id in ("1", "2"):
        assert m["app_id_counts"][app_id] == sum(r["app_ids"].get(app_id, 0) for r in reports) > 0
    # The latency comparison judged the workers' merged buckets: every answer of each subset, once.
    # (A p99.9 within 1 % cannot be decided in 6 s: its last look is the final one, over every
    # answer; a decided comparison keeps the figures of the look that decided it.)
    (latency,) = m["comparisons"]["latency"]
    assert latency["verdict"] == "INCONCLUSIVE", latency
    assert (latency["requests"], latency["baseline_requests"]) == (m["app_id_counts"]["2"], m["app_id_counts"]["1"])
    # The verdict is what the judge says of the merged counts directly.
    merged = {"v1": m["app_id_counts"]["1"], "v2": m["app_id_counts"]["2"]}
    direct = SequentialJudge(SplitSpec.parse("50/50")).update(merged, errors=sum(m["errors"].values()))
    assert direct.state is VerdictState.FAIL and m["verdict"] == direct.state.value


def test_split_tab_in_a_real_browser():
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if sync_playwright is None or not os.access(chromium, os.X_OK):
        missing("needs Debian's chromium and the playwright package (scripts/bootstrap.sh installs both)")
    ui = subprocess.Popen([*LOCUST, "--web-host", "127.0.0.1", "--web-port", "18089", "--expect", "85/15"],
                          cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get("http://127.0.0.1:18089/", timeout=1)
                break
            except httpx.HTTPError:
                assert ui.poll() is None and time.monotonic() < deadline, "Locust's web UI did not start"
                time.sleep(0.2)
        errors: list[str] = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto("http://127.0.0.1:18089/")
            page.fill("input[name='userCount']", "5")
            page.fill("input[name='spawnRate']", "5")
            page.get_by_role("button", name="Start").click()
            page.get_by_role("tab", name="Split").click()
            # Both subsets have answered once the v2 row shows a non-zero count.
            page.wait_for_function(
                """() => [...document.querySelectorAll('tr')].some(r => r.innerText.startsWith('v2')
                      && /\\t[1-9][0-9]*\\t/.test(r.innerText))""", timeout=30_000)
            rows = {r.split("\t")[0]: r.split("\t") for r in page.locator("tr").all_inner_texts()}
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
            browser.close()
        assert not errors, errors
        head = rows["Subset"]
        count, consul, envoy = (head.index(t) for t in ("Count", "Consul compiled", "Envoy programmed"))
        assert int(rows["v1"][count]) > 0 and int(rows["v2"][count]) > 0, rows
        # Beside the traffic: the split Consul compiled and the one service-a's sidecar holds.
        assert rows["v1"][consul] == rows["v1"][envoy] == "85 %" and rows["v2"][envoy] == "15 %", rows
        assert "83-87 %" in rows["v1"] and "13-17 %" in rows["v2"], rows  # each subset's band
        assert "VERDICT" in rows
    finally:
        ui.terminate()
        ui.wait(timeout=30)
