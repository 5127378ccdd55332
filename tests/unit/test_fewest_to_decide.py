"""The smallest budget the canary accepts (issue 25, item 7): fewest_to_decide is the first n at
which the judges themselves can decide the split in its clearest cases, checked against the real
judges -- below it every stream ends INCONCLUSIVE, at it one of the clear cases is decided."""

from __future__ import annotations

import itertools

import pytest

from loadgen.stats import FixedJudge, JudgeConfig, SplitSpec, Tolerance
from loadgen.stats.plan import fewest_to_decide
from loadgen.stats.sequential import SequentialJudge
from loadgen.stats.verdict import VerdictState


def _clear_cases(spec: SplitSpec, n: int) -> list[dict[str, int]]:
    """Every subset getting all of n answers, or none of them (the rest shared by the others), and
    the answers exactly at the expected split."""
    cases = []
    for i, name in enumerate(spec.names):
        cases.append({name: n})
        others = [m for j, m in enumerate(spec.names) if j != i]
        cases.append({others[0]: n})
    exact = {name: round(w * n) for name, w in zip(spec.names, spec.weights, strict=True)}
    cases.append(exact)
    return cases


def _decided(spec: SplitSpec, config: JudgeConfig, method: str, counts: dict[str, int]) -> bool:
    judge = FixedJudge(spec, config) if method == "fixed" else SequentialJudge(spec, config)
    return judge.finish(counts).state in (VerdictState.PASS, VerdictState.FAIL)


@pytest.mark.parametrize(("split", "tolerance", "method"), list(itertools.product(
    ["85/15", "50/50", "99/1", "70/20/10"], ["2", "5", "20%"], ["sequential", "fixed"])))
def test_the_bound_is_where_the_judges_first_decide_a_clear_case(split, tolerance, method):
    spec = SplitSpec.parse(split)
    config = JudgeConfig(tolerance=Tolerance.parse(tolerance))
    n = fewest_to_decide(spec, config, method)
    assert any(_decided(spec, config, method, c) for c in _clear_cases(spec, n)), n
    if n > 1:
        assert not any(_decided(spec, config, method, c) for c in _clear_cases(spec, n - 1)), n


def test_a_subset_expected_at_zero_is_decided_by_one_answer():
    assert fewest_to_decide(SplitSpec.parse("100/0"), JudgeConfig()) == 1


def test_narrower_bands_need_more_answers():
    spec = SplitSpec.parse("85/15")
    wide, narrow = (fewest_to_decide(spec, JudgeConfig(tolerance=Tolerance.parse(t))) for t in ("5", "0.1"))
    assert wide < narrow
