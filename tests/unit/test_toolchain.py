"""Version parsing and the compatibility rule of the toolchain lookup (no binaries run)."""

import re

from loadgen.mesh.toolchain import PARTS


def _parse(name: str, text: str) -> str | None:
    m = re.search(PARTS[name].version_pattern, text)
    return m.group(1) if m else None


def test_version_patterns_match_real_outputs():
    assert _parse("consul", "Consul v1.14.8\nBuild Date 1970-01-01T00:00:01Z\n") == "1.14.8"
    assert _parse("nomad", "Nomad v1.6.3\nBuildDate 2023-10-30T12:58:10Z\n") == "1.6.3"
    envoy = "envoy  version: dc2d3098ae5641555f15c71d5bb5ce0060a8015c/1.36.2/Clean/RELEASE/BoringSSL"
    assert _parse("envoy", envoy) == "1.36.2"


def test_same_series_is_compatible():
    assert PARTS["consul"].compatible("1.14.10")
    assert not PARTS["consul"].compatible("1.15.0")
    assert not PARTS["consul"].compatible("1.1.4")
    assert PARTS["envoy"].compatible("1.36.9")
    assert not PARTS["envoy"].compatible("1.37.0")
    assert PARTS["nomad"].compatible("1.6.5")
    assert not PARTS["nomad"].compatible("1.7.0")


def test_series_for_people():
    assert PARTS["consul"].series == "1.14.x"
    assert PARTS["nomad"].series == "1.6.x"
