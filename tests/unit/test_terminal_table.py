"""The canary's results table in a CI log (stdout not a terminal, 80 columns or COLUMNS): no
number and no header is ever cut short."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from loadgen.canary.consul_view import chain_request
from loadgen.canary.result import CanaryResult
from loadgen.canary.three_way import ThreeWay
from loadgen.commands import canary as canary_cmd
from loadgen.mesh.subsets import SubsetMap
from loadgen.report.terminal import verdict_table
from loadgen.stats import JudgeConfig, SplitSpec, plan_sample_size
from tests.unit.test_three_way import FakeAdmin, verdict_for, view_with_trust

SPEC = SplitSpec(("v1", "v2"), (0.85, 0.15))
HEADERS = ("subset", "expected", "band", "Consul", "Envoy", "traffic", "interval", "n", "counters")


def judged():
    admin = FakeAdmin((8500, 1500))
    three = ThreeWay(view_with_trust(), admin, chain_request({}))  # type: ignore[arg-type]
    three.before()
    admin.counts = {"v1": 8312, "v2": 1688}
    three.after()
    verdict = verdict_for({"v1": 8312, "v2": 1688}, SPEC)
    return verdict, three.to_json(verdict)


def whole_values(verdict, three_way) -> list[str]:
    """Every number of the table, formatted as a reader needs to see it."""
    out = []
    for s in verdict.subsets:
        row = three_way["subsets"][s.name]
        lo, hi = round(s.band[0] * 100), round(s.band[1] * 100)
        out += [f"{s.expected * 100:g} %", f"{lo}-{hi} %", f"{row['consul'] * 100:g} %", f"{row['envoy'] * 100:g} %",
                f"{s.share * 100:.1f} %", f"{s.lower * 100:.1f}-{s.upper * 100:.1f} %", str(s.count),
                f"{row['envoy_counters']['requests']:,}"]
    return out


def render(console: Console, verdict, three_way) -> str:
    console.print(verdict_table(verdict, three_way, plain=not console.is_terminal))
    assert isinstance(console.file, io.StringIO)
    return console.file.getvalue()


@pytest.mark.parametrize("width", [80, 60, 200])
def test_a_non_terminal_console_shows_every_number_and_header_whole(width):
    verdict, three_way = judged()
    console = Console(file=io.StringIO(), width=width, force_terminal=False)
    text = render(console, verdict, three_way)
    assert "…" not in text
    assert all(len(line) <= width for line in text.splitlines()[:4]), text
    table = text.split("verdict:")[0]
    for value in whole_values(verdict, three_way):
        assert value in table, (value, table)
    for header in HEADERS:
        assert header in table, (header, table)


def test_rich_table_would_cut_them_at_80_columns():
    """What the plain layout replaces: the boxed table squeezed into 80 columns."""
    verdict, three_way = judged()
    console = Console(file=io.StringIO(), width=80, force_terminal=False)
    console.print(verdict_table(verdict, three_way))
    assert "…" in console.file.getvalue()  # type: ignore[attr-defined]


def test_columns_is_respected(monkeypatch):
    verdict, three_way = judged()
    monkeypatch.setenv("COLUMNS", "140")
    wide = Console(file=io.StringIO(), force_terminal=False)
    text = render(wide, verdict, three_way)
    assert wide.width == 140
    assert text.splitlines()[0].split() == list(HEADERS)  # wide enough: one aligned row per subset
    monkeypatch.setenv("COLUMNS", "80")
    narrow = Console(file=io.StringIO(), force_terminal=False)
    text = render(narrow, verdict, three_way)
    assert narrow.width == 80 and text.startswith("subset v1: ")  # too narrow: a wrapped block per subset


def test_the_canary_command_prints_the_plain_layout_when_stdout_is_not_a_terminal(monkeypatch):
    verdict, three_way = judged()
    result = CanaryResult(verdict=verdict, spec=SPEC, mapping=SubsetMap(("v1", "v2"), {"1": "v1", "2": "v2"}, "test"),
                          plan=plan_sample_size(SPEC, JudgeConfig()), target="t", requests=10_000, duration_s=20.0,
                          rate_asked=500.0, rate_achieved=500.0, app_id_counts={"1": 8312, "2": 1688}, errors={},
                          latency_ms={}, stopped_by="max_requests", three_way=three_way)
    console = Console(file=io.StringIO(), width=80, force_terminal=False)
    monkeypatch.setattr(canary_cmd, "out", console)
    canary_cmd._print_result(result)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    table = text.split("verdict:")[0]
    assert "…" not in table
    for value in whole_values(verdict, three_way):
        assert value in table, (value, table)
