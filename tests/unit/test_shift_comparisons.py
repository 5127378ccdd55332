"""Which steps of a shift compare the canary with the baseline (shift.runner.comparison_options)."""

from loadgen.shift.runner import ShiftSettings, comparison_options


def test_no_comparison_unless_asked():
    # A shift without --latency / --error-margin must not hand the canary a lone --baseline
    # (that is refused as a usage error: every step would fail).
    assert comparison_options(ShiftSettings(steps="25,50"), "v1", {"v1": 75, "v2": 25}) == {}


def test_a_step_compares_only_where_both_sides_get_traffic():
    settings = ShiftSettings(steps="25,50,100", latency="p99", latency_margin="10%")
    assert comparison_options(settings, "v1", {"v1": 75, "v2": 25}) == {
        "latency": "p99", "latency_margin": "10%", "error_margin": None, "baseline": "v1"}
    assert comparison_options(settings, "v1", {"v1": 0, "v2": 100}) == {}  # the baseline gets nothing
    assert comparison_options(settings, "v1", {"v1": 100, "v2": 0}) == {}  # nothing to compare it with
    assert comparison_options(ShiftSettings(steps="50", error_margin="0.5"), "v1", {"v1": 50, "v2": 50}) == {
        "latency": None, "latency_margin": None, "error_margin": "0.5", "baseline": "v1"}
