"""`loadgen report`: the HTML page comparing a run's stages, built from real summary.json files.

The summaries are made by the same build_summary that `loadgen run` uses (fed with synthetic
samples), so these tests break when the contract and the page drift apart.
"""

from __future__ import annotations

import functools
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from loadgen.commands.report import report
from loadgen.errors import UsageError
from loadgen.load.health import GeneratorHealth
from loadgen.load.sample import Sample
from loadgen.load.tally import Tally
from loadgen.report.html import load_run, nice_ticks, render, write_report, x_fraction
from loadgen.report.run_files import build_summary
from loadgen.report.summary import StageInfo, StageSummary

TARGET = "http://127.0.0.1:3000/hello_a"


def make_summary(stage: str, n: int = 600, base_ms: float = 1.2, tail_ms: float = 0.0, errors: int = 0,
                 valid: bool = True, interrupted: bool = False, started_at: str = "2026-01-01T10:00:00+00:00",
                 share_1: float = 0.85) -> dict[str, Any]:
    """A stage's summary.json as `loadgen run` writes it, from deterministic synthetic samples."""
    return json.loads(_summary_text(stage, n, base_ms, tail_ms, errors, valid, interrupted, started_at, share_1))


@functools.cache  # building the histograms takes a fifth of a second; tests edit fresh copies
def _summary_text(stage: str, n: int, base_ms: float, tail_ms: float, errors: int, valid: bool, interrupted: bool,
                  started_at: str, share_1: float) -> str:
    tally = Tally()
    for i in range(n):
        app_id = "1" if (i % 100) < share_1 * 100 else "2"
        latency = base_ms + (i % 50) * 0.02 + (tail_ms if i % 97 == 0 else 0.0)
        tally.add(Sample(t=i / 300, status=200, app_id=app_id, latency_ms=latency, error=None,
                         service_ms=latency * 0.8))
    for i in range(errors):
        tally.add(Sample(t=i / 300, status=503, app_id=None, latency_ms=0.9, error="http_503", service_ms=0.8))
    info = StageInfo(runtime="process", stage=stage, target=TARGET, mode="open", concurrency=None, schedule="300",
                     rate_asked=300.0, duration_s=n / 300, rate_achieved=299.8, started_at=started_at,
                     interrupted=interrupted, stopped_by="max_time", timeout_s=5.0, new_connection=False)
    problems = [] if valid else ["5.6% of requests started late (limit 5%)"]
    health = GeneratorHealth(valid=valid, problems=problems, late=0 if valid else 34,
                             late_share=0.0 if valid else 0.056, max_late_ms=0.0, cpu_share=0.05, workers=1)
    summary = build_summary(tally, info, health)
    return json.dumps(summary.to_json(), default=str)  # exactly what the file holds


def typed(summaries: list[dict[str, Any]]) -> list[StageSummary]:
    """Summaries as load_run gives them to render (checked and typed)."""
    return [StageSummary.from_json(s) for s in summaries]


def write_run(run_dir: Path, summaries: list[dict[str, Any]]) -> Path:
    """reports/<run-id>/<stage>/summary.json for each summary."""
    for s in summaries:
        (run_dir / s["stage"]).mkdir(parents=True, exist_ok=True)
        (run_dir / s["stage"] / "summary.json").write_text(json.dumps(s, indent=2))
    return run_dir


def three_stages() -> list[dict[str, Any]]:
    return [
        make_summary("basic", started_at="2026-01-01T10:00:00+00:00", share_1=0.5),
        make_summary("l7-router", started_at="2026-01-01T10:01:00+00:00", tail_ms=30, valid=False),
        make_summary("splitter", started_at="2026-01-01T10:02:00+00:00", errors=12, interrupted=True),
    ]


class _Balance(HTMLParser):
    """Checks that every opened element is closed in order (void elements aside)."""

    VOID = frozenset({"meta", "link", "br", "hr", "img", "input", "col", "source", "wbr"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def assert_well_formed(page: str) -> None:
    parser = _Balance()
    parser.feed(page)
    parser.close()
    assert not parser.problems, parser.problems[:5]
    assert not parser.stack, f"unclosed: {parser.stack}"


def test_page_shows_every_stage_in_run_order(tmp_path):
    run_dir = write_run(tmp_path / "nightly-42", list(reversed(three_stages())))
    summaries = load_run(run_dir)
    assert [s.stage for s in summaries] == ["basic", "l7-router", "splitter"]  # by started_at
    page = render("nightly-42", summaries)
    assert "<title>loadgen report: nightly-42</title>" in page
    for stage in ("basic", "l7-router", "splitter"):
        assert page.count(f'data-stage="{stage}"') == 1
        assert page.count(f'data-series="{stage}"') == 1
    assert_well_formed(page)


def test_page_reports_the_numbers(tmp_path):
    summaries = three_stages()
    page = render("r", typed(summaries))
    splitter = summaries[2]
    assert f"{splitter['latency_ms']['corrected']['p99']:.2f}" in page
    assert f"{splitter['latency_ms']['service']['p99']:.2f}" in page
    assert "http_503: 12" in page  # errors by kind
    assert "1: 50.0 % (300)" in page and "2: 50.0 % (300)" in page  # basic's split
    assert "INVALID" in page and "5.6% of requests started late" in page  # l7-router's generator
    assert "CPU 5 %, 1 worker<" in page
    assert "stage splitter: interrupted" in page
    assert "APP_ID 1" in page and "APP_ID 2" in page  # per-instance tables
    # Every stage draws a corrected (solid) and a service (dashed) line.
    assert page.count('<polyline class="corrected"') == 3
    assert page.count('<polyline class="service"') == 3
    assert page.count('stroke-dasharray="6 4"/>') >= 3


def test_page_is_self_contained():
    page = render("r", typed(three_stages()))
    lowered = page.lower()
    for needle in ("<script", "src=", "<link href=\"http", "@import", "url(", "<iframe", "<object", "<embed"):
        assert needle not in lowered, needle
    # The only http(s) text on the page is the target's URL, shown as text.
    assert not re.search(r"https?://", page.replace(TARGET, "")), "external reference"
    assert "Content-Security-Policy" in page and "default-src 'none'" in page


def test_text_from_the_files_is_escaped():
    s = make_summary('<script>alert("x")</script>')
    s["generator"]["problems"] = ["<b>late</b>"]
    s["generator"]["valid"] = False
    page = render("<run>", typed([s]))
    assert "<script" not in page and "<b>late</b>" not in page
    assert "&lt;script&gt;" in page and "&lt;run&gt;" in page
    assert_well_formed(page)


def test_stage_without_answers_renders(tmp_path):
    failing = make_summary("intentions", n=0, errors=50)  # every request denied: no APP_ID, no split
    failing["spectrum"] = []
    empty = make_summary("down", n=0)
    run_dir = write_run(tmp_path / "r", [make_summary("basic"), failing, empty])
    page = render("r", load_run(run_dir))
    assert 'data-stage="intentions"' in page and 'data-stage="down"' in page
    assert "No answer named an APP_ID." in page
    assert "(no data)" in page
    assert_well_formed(page)


def test_page_with_no_latency_at_all():
    page = render("r", typed([make_summary("down", n=0)]))
    assert "no stage has latency data" in page
    assert_well_formed(page)


def test_stage_name_defaults_to_directory(tmp_path):
    s = make_summary("basic")
    del s["stage"]
    (tmp_path / "r" / "basic").mkdir(parents=True)
    (tmp_path / "r" / "basic" / "summary.json").write_text(json.dumps(s))
    assert [x.stage for x in load_run(tmp_path / "r")] == ["basic"]


def test_write_report_default_and_out(tmp_path):
    run_dir = write_run(tmp_path / "r", three_stages())
    path = write_report(run_dir)
    assert path == run_dir / "report.html" and path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    other = write_report(run_dir, tmp_path / "elsewhere.html")
    assert other == tmp_path / "elsewhere.html" and other.exists()


def test_missing_run_dir(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        load_run(tmp_path / "nope")


def test_empty_run_dir(tmp_path):
    (tmp_path / "r" / "basic").mkdir(parents=True)  # a stage directory without its summary
    with pytest.raises(UsageError, match=r"no stage results \(no \*/summary.json\)"):
        write_report(tmp_path / "r")


def test_run_dir_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(UsageError, match="not a directory"):
        load_run(tmp_path / "f")


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "the top level is a JSON list, not an object"),
        (b"\xff\xfe\x00garbage", "not valid JSON"),
    ],
)
def test_malformed_file_names_the_file(tmp_path, content, needle):
    run_dir = write_run(tmp_path / "r", [make_summary("basic")])
    bad = run_dir / "splitter" / "summary.json"
    bad.parent.mkdir()
    bad.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(UsageError) as info:
        load_run(run_dir)
    assert str(bad) in str(info.value) and needle in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda s: s.pop("requests"), "requests is missing"),
        (lambda s: s["requests"].update(sent="many"), 'requests.sent is "many", not a whole number'),
        (lambda s: s["latency_ms"].pop("corrected"), "latency_ms.corrected is missing"),
        (lambda s: s["latency_ms"]["corrected"].update(p99="fast"), "latency_ms.corrected.p99 is \"fast\""),
        (lambda s: s["spectrum"].append([99, 1.0]), "spectrum[13] is not [percentile"),
        (lambda s: s["spectrum"].append([101, 1.0, 1.0]), "not a percentile between 0 and 100"),
        (lambda s: s["spectrum"][0].__setitem__(1, None), "spectrum[0][1] is missing"),
        (lambda s: s["by_app_id"]["1"].update(service=[]), "by_app_id.1.service is [], not an object"),
        (lambda s: s["split"]["1"].update(share="85%"), "split.1.share"),
        (lambda s: s["generator"].update(valid="yes"), "generator.valid is \"yes\", not true or false"),
        (lambda s: s["generator"].update(problems=[3]), "generator.problems[0] is 3, not a string"),
        (lambda s: s["generator"].update(workers=-1), "generator.workers is -1, not a whole number >= 0"),
        (lambda s: s.update(stage=7), "stage is 7, not a string"),
    ],
)
def test_malformed_summary_names_file_and_field(tmp_path, edit, needle):
    s = make_summary("basic")
    edit(s)
    run_dir = write_run(tmp_path / "r", [make_summary("splitter")])
    (run_dir / "basic").mkdir()
    (run_dir / "basic" / "summary.json").write_text(json.dumps(s))
    with pytest.raises(UsageError) as info:
        load_run(run_dir)
    message = str(info.value)
    assert message.startswith(f"{run_dir / 'basic' / 'summary.json'}: malformed summary: "), message
    assert needle in message


def test_non_finite_numbers_are_malformed(tmp_path):
    run_dir = write_run(tmp_path / "r", [make_summary("basic")])
    path = run_dir / "basic" / "summary.json"
    path.write_text(path.read_text().replace('"rate_achieved": 299.8', '"rate_achieved": NaN'))
    with pytest.raises(UsageError, match="rate_achieved is NaN, not a finite number"):
        load_run(run_dir)


def test_x_axis_matches_the_png():
    # log10(1/(1-p)) over log10(1e5): 0 % at the left, 90 % at 1/5, 99.9 % at 3/5, max at the right.
    assert x_fraction(0) == 0
    assert x_fraction(90) == pytest.approx(0.2)
    assert x_fraction(99.9) == pytest.approx(0.6)
    assert x_fraction(100) == 1
    assert x_fraction(99.9999) == 1  # beyond the last tick: drawn at max rather than off the chart


@pytest.mark.parametrize(
    ("top", "ticks"),
    [(4.955, [0, 1, 2, 3, 4, 5]), (43.3, [0, 10, 20, 30, 40, 50]), (0.0, [0, 0.2, 0.4, 0.6, 0.8, 1.0]),
     (1200, [0, 250, 500, 750, 1000, 1250])],
)
def test_nice_ticks(top, ticks):
    assert nice_ticks(top) == pytest.approx(ticks)


def _cli(*args: str):
    from loadgen.cli import LoadgenGroup  # the real group: it turns UsageError into one line and exit 2

    group = LoadgenGroup(name="loadgen", commands={"report": report})
    return CliRunner().invoke(group, ["report", *args])


def test_cli_prints_the_path(tmp_path):
    run_dir = write_run(tmp_path / "r", three_stages())
    result = _cli(str(run_dir), "--out", str(tmp_path / "x.html"))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(tmp_path / "x.html")
    assert (tmp_path / "x.html").exists()


def test_cli_errors_are_one_line_exit_2(tmp_path):
    result = _cli(str(tmp_path / "missing"))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("loadgen: error: run directory"), result.stderr
