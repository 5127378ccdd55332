"""Option parsing shared by the commands: every bad value is one line, before anything runs."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from loadgen.commands.options import Duration, Rate, RunId, parse_headers, parse_rate, parse_run_id
from loadgen.errors import UsageError


# -- --header -------------------------------------------------------------------------------
def test_headers_parse() -> None:
    assert parse_headers(("X-Canary: yes", "Authorization:  Bearer abc ", "Host: svc.internal", "X-Empty:",
                          "X-Tab: a\tb")) == {
        "X-Canary": "yes", "Authorization": "Bearer abc", "Host": "svc.internal", "X-Empty": "", "X-Tab": "a\tb",
    }


@pytest.mark.parametrize("value", [
    "X-A: ok\r\nX-Injected: 1", "X-A: ok\nX-Injected: 1", "X-A: a\rb", "X-A: a\x00b", "X-A: a\x1bb", "X-A: a\x7fb",
])
def test_control_characters_in_a_value_are_refused(value: str) -> None:
    with pytest.raises(UsageError, match=r"--header .*control character") as info:
        parse_headers((value,))
    assert "\n" not in str(info.value) and "\r" not in str(info.value)


def test_a_refused_value_is_never_echoed() -> None:
    """It may be a credential: `--header "Authorization: Bearer $TOKEN"` with a newline in TOKEN."""
    for value in ("Authorization: Bearer s3cr3t-tok\n", "Authorization: Bearer s3cr3t-tök", "X-Token: s3cr3t-tok\x00"):
        with pytest.raises(UsageError) as info:
            parse_headers((value,))
        assert "s3cr3t" not in str(info.value) and value.split(":")[0] in str(info.value)
    with pytest.raises(UsageError) as info:
        parse_headers(("X-Token: s3cr3t-tok", "x-token: s3cr3t-tok2"))
    assert "s3cr3t" not in str(info.value)


def test_non_ascii_value_is_refused() -> None:
    with pytest.raises(UsageError, match=r"--header .*non-ASCII"):
        parse_headers(("X-Price: 5€",))


@pytest.mark.parametrize("value", ["X Foo: bar", "X\tFoo: bar", "X(a): b", "X\x00: b", "Ünïcode: b", "X\r\nY: b"])
def test_names_that_are_not_tokens_are_refused(value: str) -> None:
    with pytest.raises(UsageError, match="is not a header name") as info:
        parse_headers((value,))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("value", ["no colon", ": value", "  : value", ""])
def test_not_name_colon_value(value: str) -> None:
    with pytest.raises(UsageError, match="is not 'Name: value'"):
        parse_headers((value,))


@pytest.mark.parametrize("name", ["Content-Length", "content-length", "Transfer-Encoding", "Connection", "Upgrade",
                                  "Keep-Alive", "TE", "Trailer"])
def test_headers_the_client_manages_are_refused(name: str) -> None:
    with pytest.raises(UsageError, match=f"loadgen sends GET requests and manages {name} itself"):
        parse_headers((f"{name}: 5",))


def test_a_name_given_twice_is_refused_in_any_case() -> None:
    with pytest.raises(UsageError, match="X-A is given twice"):
        parse_headers(("X-A: 1", "x-a: 2"))


# -- --rate ---------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "0", "-5", "x", "", True])
def test_bad_rates(value: object) -> None:
    with pytest.raises(UsageError, match=r"^--rate: "):
        parse_rate(value)  # type: ignore[arg-type]


def test_good_rates() -> None:
    assert parse_rate("200") == 200.0
    assert parse_rate(0.5) == 0.5
    assert parse_rate("1e3", "--pooled-rate") == 1000.0


def _cli() -> click.Command:
    @click.command()
    @click.option("--rate", type=Rate(min=0.1, max=100_000), default=500.0)
    @click.option("--max-time", type=Duration(), default="120s")
    @click.option("--warmup", type=Duration(allow_zero=True), default=None)
    @click.option("--run-id", type=RunId(), default=None)
    def cmd(rate: float, max_time: float, warmup: float | None, run_id: str | None) -> None:
        click.echo(f"{rate!r} {max_time!r} {warmup!r} {run_id!r}")
    return cmd


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(_cli(), list(args))
    return result.exit_code, result.output.strip().splitlines()[-1]


def test_option_types_accept_good_values_and_defaults() -> None:
    assert _invoke() == (0, "500.0 120.0 None None")
    assert _invoke("--rate", "0.1", "--max-time", "2m", "--warmup", "0", "--run-id", "nightly-42") == (
        0, "0.1 120.0 0.0 'nightly-42'")
    assert _invoke("--warmup", "0s")[1].endswith(" 0.0 None")
    assert _invoke("--warmup", "250ms")[1].endswith(" 0.25 None")


@pytest.mark.parametrize(("args", "message"), [
    (("--rate", "nan"), "Invalid value for '--rate': 'nan' is not a finite number"),
    (("--rate", "inf"), "Invalid value for '--rate': 'inf' is not a finite number"),
    (("--rate", "0"), "Invalid value for '--rate': rates must be more than 0"),
    (("--rate", "-1"), "Invalid value for '--rate': rates must be more than 0"),
    (("--rate", "1e6"), "Invalid value for '--rate': 1e6 is not in the range 0.1 to 100000"),
    (("--rate", "0.01"), "Invalid value for '--rate': 0.01 is not in the range 0.1 to 100000"),
    (("--max-time", "0"), "Invalid value for '--max-time': duration '0' must be more than 0"),
    (("--max-time", "nan"), "Invalid value for '--max-time': 'nan' is not a duration"),
    (("--max-time", "inf"), "Invalid value for '--max-time': 'inf' is not a duration"),
    (("--max-time", "-3s"), "Invalid value for '--max-time': '-3s' is not a duration"),
    (("--warmup", "-1"), "Invalid value for '--warmup': '-1' is not a duration"),
    (("--run-id", "../../x"), "Invalid value for '--run-id': '../../x' must be one directory name"),
])
def test_option_types_refuse_with_one_line(args: tuple[str, ...], message: str) -> None:
    code, last = _invoke(*args)
    assert code == 2
    assert message in last


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0, -1.0])
def test_duration_checks_numbers_too(value: float) -> None:
    with pytest.raises(click.BadParameter, match="must be a finite number of seconds"):
        Duration().convert(value, None, None)


def test_duration_allows_zero_only_when_asked() -> None:
    assert Duration(allow_zero=True).convert(0, None, None) == 0.0
    with pytest.raises(click.BadParameter):
        Duration(allow_zero=True).convert(float("nan"), None, None)
    with pytest.raises(click.BadParameter):
        Duration().convert("0s", None, None)


# -- --run-id -------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["nightly", "2026-11-28T10.00.00Z", "a_b.c-d", "x" * 100, ".hidden"])
def test_good_run_ids(value: str) -> None:
    assert parse_run_id(value) == value


@pytest.mark.parametrize("value", ["../../x", "..", ".", "", "a/b", "/abs", "x" * 101, "a b", "a\nb", "a\\b",
                                   "näme"])
def test_bad_run_ids(value: str) -> None:
    with pytest.raises(UsageError, match=r"^--run-id .* must be one directory name") as info:
        parse_run_id(value)
    assert "\n" not in str(info.value)
