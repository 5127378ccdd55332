"""The parsed-HCL cache gives back exactly what pyhcl makes of each text, and never a stale one."""

from __future__ import annotations

import json

import pytest

from loadgen.mesh import hcl_cache, stages
from loadgen.paths import consul_dir


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LOADGEN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


class Counted:
    """A parse that counts its calls."""

    def __init__(self, parse):
        self.parse, self.calls = parse, 0

    def __call__(self, text):
        self.calls += 1
        return self.parse(text)


@pytest.mark.parametrize("path", sorted(consul_dir().rglob("*.hcl")), ids=lambda p: p.name)
def test_every_config_file_comes_back_from_the_cache_as_pyhcl_parses_it(path):
    text = path.read_text()
    parse = Counted(stages._parse_hcl_now)
    first = hcl_cache.cached_parse(text, parse)
    again = hcl_cache.cached_parse(text, parse)
    assert parse.calls == 1, "the second read parsed again"
    assert again == first == stages._parse_hcl_now(text)
    assert json.dumps(again) == json.dumps(first)  # same key order too


def test_a_changed_text_is_parsed_again():
    parse = Counted(stages._parse_hcl_now)
    assert hcl_cache.cached_parse('Kind = "service-defaults"\nName = "a"\n', parse)["Name"] == "a"
    assert hcl_cache.cached_parse('Kind = "service-defaults"\nName = "b"\n', parse)["Name"] == "b"
    assert parse.calls == 2


def test_a_damaged_entry_is_parsed_again_and_replaced(own_cache):
    text = 'Kind = "service-defaults"\nName = "a"\n'
    hcl_cache.cached_parse(text, stages._parse_hcl_now)
    (entry,) = (own_cache / "hcl").iterdir()
    entry.write_text('{"Kind": "servi')
    parse = Counted(stages._parse_hcl_now)
    assert hcl_cache.cached_parse(text, parse) == {"Kind": "service-defaults", "Name": "a"}
    assert parse.calls == 1
    assert json.loads(entry.read_text()) == {"Kind": "service-defaults", "Name": "a"}


def test_a_value_json_would_change_is_not_stored(own_cache):
    for value in ({"Weight": (1, 2)}, {1: "int key"}):
        parse = Counted(lambda _text, v=value: v)
        hcl_cache.cached_parse(repr(value), parse)
        assert hcl_cache.cached_parse(repr(value), parse) == value
        assert parse.calls == 2, f"{value!r} was stored"
    assert not (own_cache / "hcl").exists() or not list((own_cache / "hcl").iterdir())


def test_bools_and_floats_come_back_as_they_were():
    value = {"Flag": True, "N": 1.0, "M": 1, "L": [False, 0.5]}
    parse = Counted(lambda _text: value)
    hcl_cache.cached_parse("typed", parse)
    again = hcl_cache.cached_parse("typed", parse)
    assert parse.calls == 1
    assert again == value
    assert [type(again[k]) for k in ("Flag", "N", "M")] == [bool, float, int]
    assert [type(v) for v in again["L"]] == [bool, float]


def test_a_parse_error_is_not_stored_and_raises_each_time(own_cache):
    for _ in range(2):
        with pytest.raises(ValueError):
            hcl_cache.cached_parse('Kind = "x"\nName = {{{', stages._parse_hcl_now)
    assert not (own_cache / "hcl").exists() or not list((own_cache / "hcl").iterdir())


def test_an_unwritable_cache_costs_only_the_parse(own_cache):
    own_cache.parent.mkdir(parents=True, exist_ok=True)
    own_cache.write_text("a file where the cache directory would be")
    parse = Counted(stages._parse_hcl_now)
    for _ in range(2):
        assert hcl_cache.cached_parse('Kind = "k"\nName = "n"\n', parse) == {"Kind": "k", "Name": "n"}
    assert parse.calls == 2
