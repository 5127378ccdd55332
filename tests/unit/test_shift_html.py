"""The shift's HTML report and PNG timeline, drawn from --json timelines (ShiftReport.to_json() dicts).

The samples are shaped as real shifts wrote them on the local mesh (a clean 25/50/100, a gate
failure at step 1 rolled back), plus degenerate ones: no looks, a phase stopped with None
everywhere, no phase at all.
"""

from __future__ import annotations

import copy
import struct
from pathlib import Path
from typing import Any

import pytest

from loadgen.report.shift_html import PNG_NAME, render_shift, write_shift_html
from loadgen.report.shift_plot import shift_timeline_png, watched_subset
from loadgen.shift.timeline import Look, PhaseRecord, ShiftReport

START = {"v1": 85.0, "v2": 15.0}
PLANNED = [{"v1": 75.0, "v2": 25.0}, {"v1": 50.0, "v2": 50.0}, {"v1": 0.0, "v2": 100.0}]
NASTY = 'gate: v2 p99 <b>"slow"</b> & --apply-cmd said <script>alert(1)</script>'


def _looks(t0: float, t1: float, share: float, n: int = 40) -> list[Look]:
    """A verification's looks: the interval narrows around ``share`` as requests come in."""
    looks = []
    for i in range(1, n + 1):
        half = 0.5 / (i ** 0.5)
        looks.append(Look(t0 + (t1 - t0) * i / n, share, max(0.0, share - half), min(1.0, share + half)))
    return looks


def _phase(name: str, weights: dict[str, float], started: float, ended: float, written: bool = True,
           p99: tuple[float, float] = (70.0, 84.0), passed: bool = True, failure: str | None = None,
           gated: bool = True) -> PhaseRecord:
    share = weights["v2"] / 100
    phase = PhaseRecord(name, dict(weights), started=started, written=started + 0.01 if written else None,
                        modify_index=40 if written else None, consul_ms=19.3 if written else None,
                        envoy_ms=285.4 if written else None, verdict="PASS",
                        reason="every subset is within its band (99 % confidence, n=2266)",
                        interval={"v1": [1 - share - 0.02, 1 - share + 0.02], "v2": [share - 0.02, share + 0.02]},
                        observed={"v1": 1 - share, "v2": share}, requests=2366,
                        subsets={"v1": {"answers": 1918, "p99_ms": p99[0], "errors": 0, "requests": 2008},
                                 "v2": {"answers": 348, "p99_ms": p99[1], "errors": 3, "requests": 358}},
                        ended=ended, passed=passed, failure=failure)
    phase.gate = {"held": failure is None, "problems": [failure] if failure else [], "notes": []} if gated else None
    phase.looks = _looks(started + 1, ended - 0.3, share)
    return phase


def clean_report() -> dict[str, Any]:
    report = ShiftReport("service-b", "v2", dict(START), None, copy.deepcopy(PLANNED))
    report.phases = [_phase("start", START, 0.0, 12.3, written=False, gated=False)]
    t = 12.3
    for i, weights in enumerate(PLANNED, start=1):
        report.phases.append(_phase(f"step {i}", weights, t, t + 25))
        t += 25
    return report.to_json()


def failed_report(failure: str = NASTY) -> dict[str, Any]:
    report = ShiftReport("service-b", "v2", dict(START), None, copy.deepcopy(PLANNED))
    report.phases = [_phase("start", START, 0.0, 12.3, written=False, gated=False),
                     _phase("step 1", PLANNED[0], 12.3, 28.1, p99=(254.6, 214.5), passed=False,
                            failure=failure),
                     _phase("rollback", START, 28.1, 39.3, gated=False)]
    report.failure = f"step 1 (75/25): {failure}"
    report.rolled_back, report.rollback_note = True, "rolled back & verified in the data plane"
    return report.to_json()


def degenerate_report() -> dict[str, Any]:
    """Whole splits (no --subset), a start check with no looks, a step stopped before anything came
    back: no written_s, no ended_s, no verdict, a subset with no p99."""
    report = ShiftReport("service-b", None, dict(START), None, [{"v1": 50.0, "v2": 50.0}])
    start = PhaseRecord("start", dict(START), started=0.0, verdict="INCONCLUSIVE", ended=2.0, passed=True)
    start.subsets = {"v1": {"answers": 0, "p99_ms": None, "errors": None, "requests": None}}
    stopped = PhaseRecord("step 1", {"v1": 50.0, "v2": 50.0}, started=2.0)
    report.phases = [start, stopped]
    report.signum, report.failure = 2, "interrupted"
    return report.to_json()


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    assert data.endswith(b"IEND\xaeB`\x82"), "the PNG is cut short"
    return struct.unpack(">II", data[16:24])


SAMPLES = {"clean": clean_report, "failed": failed_report, "degenerate": degenerate_report}


@pytest.mark.parametrize("name", list(SAMPLES))
def test_png_is_a_whole_png_of_the_figure_size(tmp_path: Path, name: str) -> None:
    report = SAMPLES[name]()
    before = copy.deepcopy(report)
    path = shift_timeline_png(report, tmp_path / "out" / "t.png")
    assert path == tmp_path / "out" / "t.png"
    assert _png_size(path) == (1000, 600)  # 10 x 6 inches at dpi 100
    assert 10_000 < path.stat().st_size < 200_000
    assert [p.name for p in path.parent.iterdir()] == ["t.png"]  # no temporary file left behind
    assert report == before  # drawn from the dict, never changes it


def test_png_from_no_phase_at_all(tmp_path: Path) -> None:
    report = ShiftReport("service-b", "v2", dict(START), None, copy.deepcopy(PLANNED)).to_json()
    assert _png_size(shift_timeline_png(report, tmp_path / "t.png")) == (1000, 600)


def test_png_replaces_an_older_one(tmp_path: Path) -> None:
    path = tmp_path / "t.png"
    path.write_bytes(b"old")
    shift_timeline_png(clean_report(), path)
    assert _png_size(path) == (1000, 600)


def test_watched_subset_is_the_shifted_one_or_the_last() -> None:
    assert watched_subset(clean_report()) == "v2"
    assert watched_subset({"subset": None, "start": {"v1": 90.0, "canary": 10.0}, "phases": []}) == "canary"
    assert watched_subset({"subset": None, "start": {}, "phases": []}) is None


@pytest.mark.parametrize("name", list(SAMPLES))
def test_page_names_every_phase_and_points_at_the_png(tmp_path: Path, name: str) -> None:
    report = SAMPLES[name]()
    page = write_shift_html(report, tmp_path / "report")
    assert page == tmp_path / "report" / "index.html"
    html = page.read_text(encoding="utf-8")
    assert f'src="{PNG_NAME}"' in html
    _png_size(tmp_path / "report" / PNG_NAME)
    for phase in report["phases"]:
        assert f'<th scope="row">{phase["name"]}</th>' in html
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")


def test_page_is_self_contained(tmp_path: Path) -> None:
    html = render_shift(failed_report())
    assert "<script" not in html.lower()
    assert "<link rel=\"stylesheet\"" not in html
    assert "http://" not in html and "https://" not in html
    assert "Content-Security-Policy" in html and "default-src 'none'" in html


def test_page_escapes_the_failure_and_every_text() -> None:
    html = render_shift(failed_report())
    assert "<script>" not in html and "<b>\"slow\"</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;&quot;slow&quot;&lt;/b&gt; &amp; --apply-cmd" in html
    assert "rolled back &amp; verified in the data plane" in html
    assert "failed" in html


def test_page_shows_weights_timings_shares_and_subsets() -> None:
    html = render_shift(failed_report())
    assert "v1 75 %, v2 25 %" in html
    assert ">19<" in html and ">285<" in html  # consul ms, envoy ms
    assert "v2 25.0 % [23.0\u201327.0]" in html  # the watched subset's share and interval
    assert "v1 254.6" in html and "v2 214.5" in html  # p99 per subset
    assert '<span class="bad">3</span>' in html  # v2's 5xx
    assert "(not gated)" in html  # the start check and the rollback are not gated


def test_page_of_a_stopped_shift_says_so() -> None:
    html = render_shift(degenerate_report())
    assert "interrupted" in html and "not finished" in html
    assert "whole splits" in html


def test_png_draws_dollars_and_backslashes_as_text(tmp_path: Path) -> None:
    # mathtext would try to parse "$\frac{$" and fail the whole drawing
    report = failed_report(failure=r"--apply-cmd exited 1: sh: $\frac{$HOME: bad substitution")
    assert _png_size(shift_timeline_png(report, tmp_path / "t.png")) == (1000, 600)


def test_page_shows_each_steps_comparison_with_the_baseline() -> None:
    report = failed_report()
    report["phases"][1]["comparisons"] = {
        "latency": [{"quantile": "p99", "subset": "v2", "baseline": "v1", "verdict": "FAIL",
                     "reason": "v2's p99 is at least 52.6 ms, <more> than 10 % above v1's",
                     "canary_ms": [52.6, None], "baseline_ms": [14.2, 42.4], "ratio": [1.24, None],
                     "requests": 300, "baseline_requests": 1700}],
        "errors": [{"subset": "v2", "baseline": "v1", "verdict": "PASS", "reason": "ok", "rate": 0.0,
                    "rate_interval": [0.0, 0.004], "baseline_rate": 0.0, "baseline_interval": [0.0, 0.001]}]}
    html = render_shift(report)
    assert "canary vs baseline" in html
    assert 'latency p99 v2 vs v1: 1.24-inf x <span class="bad" title="v2&#x27;s p99 is at least 52.6 ms, ' \
           '&lt;more&gt; than 10 % above v1&#x27;s">FAIL</span>' in html
    assert "errors v2 vs v1:" in html and '>PASS</span>' in html
    assert "canary vs baseline" not in render_shift(failed_report())  # no column when nothing was compared
