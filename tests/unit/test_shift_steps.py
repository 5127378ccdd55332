"""The progressive shift's steps (pure): shares for one subset or whole splits, each adding up to 100."""

from __future__ import annotations

import pytest

from loadgen.errors import UsageError
from loadgen.shift.splitter import StartPoint, with_weights
from loadgen.shift.steps import plan_steps

START = {"v1": 85.0, "v2": 15.0}


def test_shares_for_one_subset_keep_the_others_in_proportion():
    steps = plan_steps("25,50,100", START, "v2")
    assert [s.weights for s in steps] == [{"v1": 75, "v2": 25}, {"v1": 50, "v2": 50}, {"v1": 0, "v2": 100}]
    assert [s.index for s in steps] == [1, 2, 3] and steps[0].label() == "75/25"
    three = plan_steps("30,60", {"v1": 60.0, "v2": 30.0, "v3": 10.0}, "v3")
    # v1:v2 stays 2:1; two decimals each, the remainder on the largest other, v3 exactly its share.
    assert three[0].weights == {"v1": 46.67, "v2": 23.33, "v3": 30.0}
    assert all(round(sum(s.weights.values()), 6) == 100 for s in three)


def test_others_keep_their_proportions_even_at_zero():
    steps = plan_steps("40", {"v1": 100.0, "v2": 0.0, "v3": 0.0}, "v3")
    assert steps[0].weights == {"v1": 60.0, "v2": 0.0, "v3": 40.0}


def test_whole_splits_positional_or_named():
    assert [s.weights for s in plan_steps("90/10,50/50,0/100", START)] == \
        [{"v1": 90, "v2": 10}, {"v1": 50, "v2": 50}, {"v1": 0, "v2": 100}]
    assert [s.weights for s in plan_steps("v2=50,v1=50;v1=0,v2=100", START)] == \
        [{"v1": 50, "v2": 50}, {"v1": 0, "v2": 100}]


def test_apply_cmd_environment_names_every_subset():
    env = plan_steps("25", START, "v2")[0].env()
    assert env == {"LOADGEN_WEIGHTS": "v1=75,v2=25", "LOADGEN_STEP": "1", "LOADGEN_WEIGHT_V1": "75",
                   "LOADGEN_WEIGHT_V2": "25"}


@pytest.mark.parametrize(("steps", "subset", "said"), [
    ("5,25", "v2", "must go up"),  # 5 is below v2's 15 now
    ("25,20", "v2", "must go up"),
    ("25,,50", "v2", "is not a share"),
    ("25,x", "v2", "is not a share"),
    ("0,50", "v2", "more than 0 and at most 100"),
    ("25,150", "v2", "more than 0 and at most 100"),
    ("25", "v9", "--subset 'v9' is not in the splitter"),
    ("25,50", None, "needs --subset"),
    ("90/20", None, "add up to 110"),
    ("85/15", None, "already in force"),
    ("90/10,90/10", None, "already in force"),
    ("v1=50,v3=50", None, "names v1, v3"),
    ("50/30/20", None, "3 weights"),
])
def test_bad_steps_are_one_clear_line(steps, subset, said):
    with pytest.raises(UsageError) as exc:
        plan_steps(steps, START, subset)
    assert said in str(exc.value) and "\n" not in str(exc.value)


def test_the_entry_written_changes_only_the_weights():
    entry = {"Kind": "service-splitter", "Name": "service-b", "Meta": {"owner": "me"},
             "Splits": [{"Weight": 85, "ServiceSubset": "v1", "RequestHeaders": {"Set": {"x": "1"}}},
                        {"Weight": 15, "ServiceSubset": "v2"}]}
    start = StartPoint("service-b", dict(START), entry, 12, ("v1", "v2"))
    written = with_weights(start, {"v1": 66.67, "v2": 33.33})
    assert written["Meta"] == {"owner": "me"} and written["Splits"][0]["RequestHeaders"] == {"Set": {"x": "1"}}
    assert [s["Weight"] for s in written["Splits"]] == [66.67, 33.33]
    assert entry["Splits"][0]["Weight"] == 85  # the rollback point is untouched
    fresh = with_weights(StartPoint("service-b", {"v1": 100.0, "v2": 0.0}, None, 0, ("v1", "v2")),
                         {"v1": 75.0, "v2": 25.0})
    assert fresh == {"Kind": "service-splitter", "Name": "service-b",
                     "Splits": [{"Weight": 75, "ServiceSubset": "v1"}, {"Weight": 25, "ServiceSubset": "v2"}]}
