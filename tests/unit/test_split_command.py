"""Issue 25, item 6: `loadgen split` exits non-zero when no answer named a backend."""

from __future__ import annotations

import json

import pytest

from tests.unit.cli_in_process import loadgen_in_process
from tests.unit.standin_target import standin_target


def test_answers_with_an_app_id_are_exit_0(tmp_path):
    with standin_target(lambda n: (200, "1" if n % 2 else "2")) as url:
        result = loadgen_in_process("split", "-n", "4", "--url", url, "--json", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["app_ids"] == {"1": 2, "2": 2}


def test_all_500s_are_exit_1_with_the_table_printed(tmp_path):
    with standin_target(lambda n: (500, None)) as url:
        result = loadgen_in_process("split", "-n", "3", "--url", url, tmp_path=tmp_path)
    assert result.returncode == 1
    assert "HTTP 500" in result.stdout and "no answer named its backend" in result.stderr


def test_200s_without_an_app_id_are_exit_1(tmp_path):
    with standin_target(lambda n: (200, None)) as url:
        result = loadgen_in_process("split", "-n", "3", "--url", url, "--json", tmp_path=tmp_path)
    assert result.returncode == 1
    assert json.loads(result.stdout)["errors"] == {"HTTP 200": 3}


@pytest.mark.parametrize("fault", ["garbage", "cut"])
def test_a_target_that_never_answers_http_is_exit_4(tmp_path, fault):
    with standin_target(lambda n: fault) as url:
        result = loadgen_in_process("split", "-n", "2", "--url", url, tmp_path=tmp_path)
    assert result.returncode == 4, result.stderr
    assert "did not answer HTTP" in result.stderr


@pytest.mark.parametrize("url", ["ftp://x/hello_a", "http://", "http://127.0.0.1:99999/"])
def test_a_url_that_is_not_http_is_exit_2(tmp_path, url):
    result = loadgen_in_process("split", "--url", url, tmp_path=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr


def test_a_request_id_as_app_id_does_not_flood_the_table(tmp_path):
    with standin_target(lambda n: (200, f"req-{n:04d}" + "x" * 500)) as url:
        result = loadgen_in_process("split", "-n", "20", "--url", url, tmp_path=tmp_path)
    assert result.returncode == 0
    assert "15 other APP_IDs" in result.stdout and len(result.stdout) < 5000
