"""The stage files in consul/ parse into the stages the seed describes."""

from pathlib import Path

import pytest

from loadgen.errors import ExitCode, UsageError
from loadgen.mesh.stages import load_config_entry, load_stages


@pytest.fixture(scope="module")
def book():
    return load_stages()


def test_stage_names(book):
    assert book.names == ["basic", "intentions", "l7-router", "splitter", "header-route", "nested-splitter"]


def test_the_stages_beyond_the_notes_say_so(book):
    assert [s.name for s in book.stages.values() if s.origin == "loadgen"] == ["header-route", "nested-splitter"]
    assert {s.origin for s in book.stages.values()} == {"seed", "loadgen"}
    # The virtual service's entries come before the splitter that points at it (Consul checks the chain).
    nested = [e.path.name for e in book.get("nested-splitter").config_entries]
    assert nested.index("service-b-canary-defaults.hcl") < nested.index("service-b-splitter-nested.hcl")
    header = book.get("header-route")
    assert header.entry("service-router", "service-a").body["Routes"][0]["Destination"]["ServiceSubset"] == "v2"


def test_unknown_stage_is_a_usage_error(book):
    with pytest.raises(UsageError) as exc:
        book.get("canary")
    assert exc.value.code == ExitCode.USAGE
    assert "known stages: basic, intentions, l7-router, splitter" in exc.value.message


def test_instances_env_comes_from_registrations(book):
    basic = book.get("basic")
    env = {i.id: i.app_env() for i in basic.instances}
    assert env["service-b-1"] == {"PORT": "3001", "INSTANCE_ID": "service-b-1", "APP_ID": "1", "VERSION": "v1"}
    assert env["service-b-2"]["APP_ID"] == "2" and env["service-b-2"]["VERSION"] == "v2"
    assert env["service-a"]["SIDECAR_URL"] == "http://127.0.0.1:9000"
    assert basic.instance("service-a").upstream_ports() == [9000]


def test_l7_stages_route_service_a_through_its_own_virtual_service(book):
    # The seed's L7 trick: service-a's upstream is service-a; its router sends /hello_b to service-b.
    for name in ("l7-router", "splitter"):
        reg = book.get(name).instance("service-a").registration
        ups = reg["Connect"]["SidecarService"]["Proxy"]["Upstreams"]
        assert [u["DestinationName"] for u in ups] == ["service-a"]
    assert book.get("basic").instance("service-a").registration["Connect"]["SidecarService"]["Proxy"][
        "Upstreams"][0]["DestinationName"] == "service-b"


def test_splitter_entries_in_dependency_order(book):
    kinds = [e.kind for e in book.get("splitter").config_entries]
    assert kinds == ["service-defaults", "service-defaults", "service-router", "service-resolver",
                     "service-splitter"]
    splitter = book.get("splitter").entry("service-splitter", "service-b")
    assert splitter is not None
    assert sum(s["Weight"] for s in splitter.body["Splits"]) == 100
    assert {s["ServiceSubset"]: s["Weight"] for s in splitter.body["Splits"]} == {"v1": 85, "v2": 15}


def test_resolver_subsets_select_by_meta_version(book):
    resolver = book.get("splitter").entry("service-resolver", "service-b")
    assert resolver is not None
    subsets = resolver.body["Subsets"]
    assert subsets["v1"]["Filter"] == 'Service.Meta.version == v1'
    assert subsets["v2"]["Filter"] == 'Service.Meta.version == v2'


def test_intentions_stage_denies_service_a(book):
    entry = book.get("intentions").entry("service-intentions", "service-b")
    assert entry is not None
    assert entry.body["Sources"] == [{"Name": "service-a", "Action": "deny"}]
    assert book.get("intentions").expect.hello_a == "denied"


def test_malformed_entry_is_a_usage_error(tmp_path: Path):
    bad = tmp_path / "bad.hcl"
    bad.write_text('Kind = "service-router"\n')  # no Name
    with pytest.raises(UsageError, match="needs Kind and Name"):
        load_config_entry(bad)
    broken = tmp_path / "broken.hcl"
    broken.write_text("Kind = {{{")
    with pytest.raises(UsageError, match="cannot read config entry"):
        load_config_entry(broken)


def test_missing_stages_file(tmp_path: Path):
    with pytest.raises(UsageError, match="cannot read"):
        load_stages(tmp_path)


# -- a malformed stages.toml is refused as it is read, in one line naming file, stage, field ---
GOOD = """
[instances.a]
app = "service_a"
registration = "a.json"
envoy_admin_port = 19000

[stages.basic]
summary = "s"
instances = ["a"]
expect = { hello_a = "ok", app_ids = ["1"] }
"""


def _stages(tmp_path: Path, text: str) -> Path:
    (tmp_path / "a.json").write_text('{"Name": "a", "Port": 3000}')
    (tmp_path / "stages.toml").write_text(text)
    return tmp_path


@pytest.mark.parametrize(("change", "message"), [
    (('hello_a = "ok"', 'hello_a = "okk"'),
     "stage basic: expect.hello_a is 'okk'; it must be one of ok, denied"),
    (("hello_a =", "helo_a ="), "stage basic: expect has an unknown field 'helo_a' (known: hello_a, app_ids)"),
    (('app_ids = ["1"]', "app_ids = [1]"), "stage basic: expect.app_ids must list strings, not 1"),
    (('instances = ["a"]', 'instances = ["b"]'), "stage basic names unknown instance b"),
    (('instances = ["a"]', 'instances = "a"'), "stage basic: instances must be a list, not 'a'"),
    (('instances = ["a"]\n', ""), "stage basic needs the field instances"),
    (("envoy_admin_port = 19000", 'envoy_admin_port = "19000"'),
     "instance a: envoy_admin_port must be a whole number, not '19000'"),
    (('summary = "s"', 'sumary = "s"'), "stage basic has an unknown field 'sumary'"),
    (('summary = "s"', 'summary = "s"\norigin = "mine"'), "stage basic: origin is 'mine'; it must be one of seed, "
                                                         "loadgen"),
])
def test_a_malformed_stages_file_names_file_stage_and_field(tmp_path: Path, change, message):
    assert load_stages(_stages(tmp_path, GOOD)).names == ["basic"]
    base = _stages(tmp_path, GOOD.replace(*change))
    with pytest.raises(UsageError) as info:
        load_stages(base)
    assert info.value.code == ExitCode.USAGE
    assert info.value.message.startswith(f"{base / 'stages.toml'}: ")
    assert message in info.value.message and "\n" not in info.value.message


def test_the_cli_exits_2_with_one_line_on_a_malformed_stages_file(tmp_path: Path):
    import os
    import subprocess
    import sys

    (tmp_path / "consul").mkdir()
    _stages(tmp_path / "consul", GOOD.replace('hello_a = "ok"', 'hello_a = "okk"'))
    env = {**os.environ, "LOADGEN_PROJECT": str(tmp_path), "LOADGEN_RUN_DIR": str(tmp_path / "run")}
    env.pop("LOADGEN_DEBUG", None)
    proc = subprocess.run([sys.executable, "-m", "loadgen.cli", "stages"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        f"loadgen: error: {tmp_path / 'consul' / 'stages.toml'}: stage basic: expect.hello_a is 'okk'; "
        "it must be one of ok, denied"]
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_entries_are_removed_routes_and_splits_before_what_they_rely_on():
    from loadgen.mesh.entries import removal_order

    # As `up --stage splitter` then `up --stage nested-splitter` leave them in the run state.
    written = [("service-defaults", "service-a"), ("service-defaults", "service-b"), ("service-router", "service-a"),
               ("service-resolver", "service-b"), ("service-splitter", "service-b"),
               ("service-defaults", "service-b-canary"), ("service-splitter", "service-b-canary")]
    order = removal_order(written)
    assert order.index(("service-splitter", "service-b")) < order.index(("service-defaults", "service-b-canary"))
    assert order[0] == ("service-router", "service-a") and order[-1] == ("service-defaults", "service-a")
    assert sorted(order) == sorted(written)


# -- loadgen's own stages: where they come from, and the CLI saying so -------------------------

def test_header_route_keeps_the_splitter_stage_and_adds_its_own_router(book):
    splitter, header = book.get("splitter"), book.get("header-route")
    # Everything of the splitter stage but its router, which header-route replaces by its own file.
    assert {e.path.name for e in header.config_entries} - {"service-a-router-header.hcl"} == \
        {e.path.name for e in splitter.config_entries} - {"service-a-router.hcl"}
    router = header.entry("service-router", "service-a")
    assert router is not None and router.path.name == "service-a-router-header.hcl"
    first, second = router.body["Routes"]
    # The header route must come first: Consul (and Envoy) take the first route that matches.
    assert first["Match"]["HTTP"] == {"PathPrefix": "/hello_b", "Header": [{"Name": "x-canary", "Exact": "1"}]}
    assert first["Destination"] == {"Service": "service-b", "ServiceSubset": "v2"}
    assert second == {"Match": {"HTTP": {"PathPrefix": "/hello_b"}}, "Destination": {"Service": "service-b"}}
    assert splitter.entry("service-router", "service-a").path.name == "service-a-router.hcl"


def test_nested_splitter_multiplies_to_75_25(book):
    nested = book.get("nested-splitter")
    top = nested.entry("service-splitter", "service-b")
    canary = nested.entry("service-splitter", "service-b-canary")
    defaults = nested.entry("service-defaults", "service-b-canary")
    assert top is not None and canary is not None and defaults is not None
    assert defaults.body["Protocol"] == "http"  # Consul refuses a splitter on a tcp service
    effective: dict[str, float] = {}
    for split in top.body["Splits"]:
        if split.get("Service") == "service-b-canary":
            for inner in canary.body["Splits"]:
                effective[inner["ServiceSubset"]] = effective.get(inner["ServiceSubset"], 0) + \
                    split["Weight"] * inner["Weight"] / 100
        else:
            effective[split["ServiceSubset"]] = effective.get(split["ServiceSubset"], 0) + split["Weight"]
    assert effective == {"v1": 75, "v2": 25}
    # Both new stages must show both backends to count as live.
    for name in ("header-route", "nested-splitter"):
        assert book.get(name).expect.hello_a == "ok" and book.get(name).expect.app_ids == ("1", "2")


@pytest.mark.parametrize(("origin", "message"), [
    ("1", "stage basic: origin must be a string, not 1"),
    ('"Loadgen"', "stage basic: origin is 'Loadgen'; it must be one of seed, loadgen"),
])
def test_origin_must_be_seed_or_loadgen(tmp_path: Path, origin: str, message: str):
    ok = load_stages(_stages(tmp_path, GOOD.replace('summary = "s"', 'summary = "s"\norigin = "loadgen"')))
    assert ok.get("basic").origin == "loadgen"
    assert load_stages(_stages(tmp_path, GOOD)).get("basic").origin == "seed"  # the default
    with pytest.raises(UsageError, match=message):
        load_stages(_stages(tmp_path, GOOD.replace('summary = "s"', f'summary = "s"\norigin = {origin}')))


def _loadgen(*args: str) -> str:
    import os
    import subprocess
    import sys

    env = {**os.environ, "COLUMNS": "250"}  # one table row per line
    proc = subprocess.run([sys.executable, "-m", "loadgen.cli", *args], capture_output=True, text=True, env=env,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_loadgen_stages_marks_loadgens_own(book):
    text = _loadgen("stages")
    rows = {line.split("│")[1].strip(): line for line in text.splitlines() if line.count("│") > 3}
    for st in book.stages.values():
        assert rows[st.name].rstrip(" │").endswith("loadgen" if st.origin == "loadgen" else "the original notes")
    assert "header-route, nested-splitter: loadgen's own stages, not from the original notes" in text


def test_up_stage_help_lists_every_stage(book):
    from loadgen.commands.mesh import up

    # The help spells the names out (reading stages.toml at import would turn a malformed file
    # into a traceback instead of its one-line error); this keeps them in step with the file.
    option = next(p for p in up.params if p.name == "stage_name")
    assert (option.help or "").split(" (see")[0].split(" | ") == book.names
