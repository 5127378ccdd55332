"""A missing real part: a failure in CI (CI or LOADGEN_REQUIRE_ALL set), a skip on a dev machine."""

from __future__ import annotations

import os

import pytest


def required() -> bool:
    return bool(os.environ.get("LOADGEN_REQUIRE_ALL") or os.environ.get("CI"))


def missing(message: str) -> None:
    if required():
        pytest.fail(message)
    pytest.skip(message)
