"""SplitSpec and --map parsing: every accepted form, every rejected one with a clear line."""

import pytest

from loadgen.errors import ExitCode
from loadgen.stats import SpecError, SplitSpec, parse_app_id_map


@pytest.mark.parametrize(
    ("text", "names", "weights"),
    [
        ("85/15", ("v1", "v2"), (0.85, 0.15)),
        ("v1=85,v2=15", ("v1", "v2"), (0.85, 0.15)),
        (" v2 = 15 , v1 = 85 ", ("v2", "v1"), (0.15, 0.85)),
        ("70/20/10", ("v1", "v2", "v3"), (0.7, 0.2, 0.1)),
        ("0/100", ("v1", "v2"), (0.0, 1.0)),
        ("100/0", ("v1", "v2"), (1.0, 0.0)),
        ("33.3/33.3/33.4", ("v1", "v2", "v3"), (0.333, 0.333, 0.334)),
        ("85%/15%", ("v1", "v2"), (0.85, 0.15)),
    ],
)
def test_accepted(text, names, weights):
    spec = SplitSpec.parse(text)
    assert spec.names == names
    assert spec.weights == pytest.approx(weights)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("85/16", "add up to 101, not 100"),
        ("85", "names one weight only"),
        ("abc", "'abc' in 'abc' is not a number"),
        ("-5/105", "weight -5 in '-5/105' is not between 0 and 100"),
        ("85/15/0/x", "'x' in '85/15/0/x' is not a number"),
        ("v1=50,v1=50", "subset 'v1' is named twice"),
        ("", "empty split"),
        ("v1=85,=15", "cannot read '=15'"),
        ("nan/nan", "not between 0 and 100"),
        ("v1=100", "at least 2 subsets"),
    ],
)
def test_rejected_with_one_clear_line(text, message):
    with pytest.raises(SpecError) as exc:
        SplitSpec.parse(text)
    assert message in exc.value.message
    assert "\n" not in exc.value.message
    assert exc.value.code == ExitCode.USAGE


def test_positional_uses_given_names():
    assert SplitSpec.parse("85/15", names=["blue", "green"]).names == ("blue", "green")
    with pytest.raises(SpecError, match="has 3 weights but the service has 2 subsets"):
        SplitSpec.parse("70/20/10", names=["v1", "v2"])


def test_from_splitter_entry():
    entry = {"Kind": "service-splitter", "Name": "service-b",
             "Splits": [{"Weight": 85, "ServiceSubset": "v1"}, {"Weight": 15, "ServiceSubset": "v2"}]}
    spec = SplitSpec.from_splitter(entry)
    assert spec.as_dict() == pytest.approx({"v1": 0.85, "v2": 0.15})
    assert spec.as_percent() == "v1=85,v2=15"
    with pytest.raises(SpecError, match="no Splits"):
        SplitSpec.from_splitter({"Kind": "service-splitter", "Splits": []})


def test_app_id_map():
    assert parse_app_id_map("1=v1,2=v2") == {"1": "v1", "2": "v2"}
    for bad in ("1=v1,1=v2", "1", "=v1", "1=", "1:v1"):
        with pytest.raises(SpecError):
            parse_app_id_map(bad)
