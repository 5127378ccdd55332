"""examples/: each file checked against what reads it.

* The CI files (GitHub Actions, GitLab CI) against the schemas that ship inside check-jsonschema
  (``--builtin-schema vendor.*``: files of the installed package, nothing downloaded).
* The Argo Rollouts and Flagger manifests parsed and checked against the fields their controllers
  document: https://argo-rollouts.readthedocs.io/en/stable/analysis/job/ ,
  https://argo-rollouts.readthedocs.io/en/stable/analysis/web/ ,
  https://argo-rollouts.readthedocs.io/en/stable/features/analysis/ (metric fields),
  https://docs.flagger.app/usage/webhooks .
* Every ``loadgen ...`` command in them parsed by loadgen's own click command and validated as the
  CLI validates it before it starts, and Flagger's webhook metadata by the gate's own parser: an
  example can never name an option that does not exist.
* The Web provider's template polled against a real ``loadgen serve`` (in-process, stand-in target),
  with its own URL, jsonPath and conditions (tests/unit/controller_exchanges.py's replay of the provider).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from loadgen.serve.app import MAX_WAIT_S, ServeSettings
from tests.unit.controller_exchanges import argo_web_measurement
from tests.unit.serve_in_thread import serving, split_target
from tests.unit.test_serve_api import FAST, poll

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
GITHUB = EXAMPLES / "github-actions" / "loadgen-canary.yml"
GITLAB = EXAMPLES / "gitlab-ci" / ".gitlab-ci.yml"
ARGO_JOB = EXAMPLES / "argo-rollouts" / "analysis-job.yaml"
ARGO_WEB = EXAMPLES / "argo-rollouts" / "analysis-web.yaml"
FLAGGER = EXAMPLES / "flagger" / "canary.yaml"

# The fields the controllers document (URLs in the module docstring): a field outside these sets
# is a typo the controller would ignore or refuse.
ARGO_METRIC_FIELDS = {"name", "interval", "initialDelay", "count", "successCondition", "failureCondition",
                      "failureLimit", "inconclusiveLimit", "consecutiveErrorLimit", "consecutiveSuccessLimit",
                      "provider"}
ARGO_WEB_FIELDS = {"url", "method", "headers", "body", "jsonBody", "timeoutSeconds", "jsonPath", "insecure"}
ARGO_JOB_FIELDS = {"metadata", "spec"}
FLAGGER_WEBHOOK_FIELDS = {"name", "type", "url", "timeout", "metadata", "muteAlert"}
FLAGGER_WEBHOOK_TYPES = {"confirm-rollout", "pre-rollout", "rollout", "confirm-traffic-increase",
                         "confirm-promotion", "post-rollout", "rollback", "event"}
ARGO_WEB_TIMEOUT_S = 10  # the Web provider's default timeoutSeconds


def load(path: Path) -> Any:
    return YAML(typ="safe", pure=True).load(path.read_text())


def duration_s(text: str) -> float:
    """Kubernetes-style durations as these examples write them: 15s, 1m."""
    match = re.fullmatch(r"(\d+)([sm])", str(text))
    assert match, f"not a duration this test reads: {text!r}"
    return int(match[1]) * (60 if match[2] == "m" else 1)


# -- the CI files --------------------------------------------------------------------------------


def check_jsonschema(schema: str, path: Path) -> tuple[int, str]:
    """check-jsonschema's own CLI, in-process, with a schema that ships inside the package."""
    from check_jsonschema.cli.main_command import main

    result = CliRunner().invoke(main, ["--builtin-schema", schema, str(path)])
    return result.exit_code, result.output


@pytest.mark.parametrize(("schema", "path"), [("vendor.github-workflows", GITHUB), ("vendor.gitlab-ci", GITLAB)])
def test_the_ci_files_are_valid_against_the_vendored_schemas(schema, path):
    import importlib.resources

    name = schema.removeprefix("vendor.")
    assert (importlib.resources.files("check_jsonschema") / "builtin_schemas" / "vendor" / f"{name}.json").is_file()
    code, output = check_jsonschema(schema, path)
    assert code == 0, output


@pytest.mark.parametrize(("schema", "path", "broken"), [
    ("vendor.github-workflows", GITHUB, lambda doc: doc["jobs"]["canary"].pop("runs-on")),
    ("vendor.gitlab-ci", GITLAB, lambda doc: doc["loadgen-canary"]["artifacts"].update(when="sometimes")),
])
def test_the_schemas_refuse_a_broken_copy(schema, path, broken, tmp_path):
    """The validation can fail: the same file with one documented mistake is refused."""
    yaml = YAML(typ="safe", pure=True)
    doc = load(path)
    broken(doc)
    copy = tmp_path / path.name
    with copy.open("w") as fh:
        yaml.dump(doc, fh)
    code, output = check_jsonschema(schema, copy)
    assert code == 1, output


def shell_commands(script: str) -> list[list[str]]:
    """The loadgen commands of a shell script: one argv per `loadgen ...` (or `.venv/bin/loadgen`)."""
    found = []
    for line in script.replace("\\\n", " ").splitlines():
        for part in re.split(r"&&|\|\||;|\|", line):
            argv = shlex.split(part, comments=True)
            if argv and Path(argv[0]).name == "loadgen":
                found.append(argv[1:])
    return found


def test_github_runs_the_readme_canary_on_a_pull_request_and_publishes_the_junit():
    doc = load(GITHUB)
    on = doc.get("on", doc.get(True))  # YAML 1.1 reads a bare `on` as true
    assert "pull_request" in on
    steps = doc["jobs"]["canary"]["steps"]
    commands = [argv for step in steps if "run" in step for argv in shell_commands(step["run"])]
    assert [argv[:3] for argv in commands] == [["canary", "--expect", "85/15"]]
    junit = canary_context(commands[0]).params["junit"]
    published = [s for s in steps if s.get("uses", "").startswith("mikepenz/action-junit-report@")]
    assert published and published[0]["with"]["report_paths"] == str(junit)
    assert published[0]["if"] == "always()"  # a FAIL (exit 1) is when the report matters most
    assert doc["permissions"]["checks"] == "write"
    kept = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert str(junit) in kept[0]["with"]["path"].split() and kept[0]["if"] == "always()"


def test_gitlab_runs_the_readme_canary_on_a_merge_request_and_publishes_the_junit():
    job = load(GITLAB)["loadgen-canary"]
    assert any("merge_request_event" in rule["if"] for rule in job["rules"])
    commands = [argv for line in job["script"] for argv in shell_commands(line)]
    assert [argv[:3] for argv in commands] == [["canary", "--expect", "85/15"]]
    junit = canary_context(commands[0]).params["junit"]
    assert job["artifacts"]["reports"]["junit"] == str(junit) and job["artifacts"]["when"] == "always"


# -- loadgen's own command line ------------------------------------------------------------------


def canary_context(argv: list[str]) -> click.Context:
    """``argv`` (after `loadgen`) parsed by loadgen's real commands, and a canary's options
    validated as the CLI validates them before anything starts: a mistake raises."""
    from loadgen.cli import cli

    root = click.Context(cli, info_name="loadgen")
    name, command, rest = cli.resolve_command(root, list(argv))
    assert command is not None, f"no command {name!r}"
    ctx = command.make_context(name, rest, parent=root)
    if name == "canary":
        from loadgen.canary.options import validate
        from loadgen.commands.canary import canary_options

        validate(canary_options(ctx.params))
    return ctx


def argo_args(template: dict[str, Any], text: str) -> str:
    """``{{args.NAME}}`` replaced by the template's default (or a stand-in for a required arg);
    naming an arg the template does not declare fails."""
    declared = {a["name"]: a.get("value", f"stand-in-{a['name']}") for a in template["spec"]["args"]}

    def value(match: re.Match[str]) -> str:
        assert match[1] in declared, f"{{{{args.{match[1]}}}}} is not among the template's args"
        return str(declared[match[1]])

    return re.sub(r"\{\{\s*args\.([\w-]+)\s*\}\}", value, text)


def test_canary_context_refuses_what_the_cli_refuses():
    """The check below can fail: an unknown option, a bad value and a failed validation each raise."""
    with pytest.raises(click.NoSuchOption):
        canary_context(["canary", "--expect", "85/15", "--no-such-option"])
    with pytest.raises(click.BadParameter):
        canary_context(["canary", "--expect", "85/15", "--max-time", "soon"])
    from loadgen.errors import LoadgenError

    with pytest.raises(LoadgenError):
        canary_context(["canary", "--expect", "85/15", "--target", "http://127.0.0.1:3000/hello_a", "--tolerance",
                        "5", "--max-time", "1s", "--warmup", "2s"])


# -- Argo Rollouts -------------------------------------------------------------------------------


def test_argo_job_template_runs_the_image_canary_with_documented_fields():
    template = load(ARGO_JOB)
    assert (template["apiVersion"], template["kind"]) == ("argoproj.io/v1alpha1", "AnalysisTemplate")
    (metric,) = template["spec"]["metrics"]
    assert set(metric) <= ARGO_METRIC_FIELDS
    job = metric["provider"]["job"]
    assert set(metric["provider"]) == {"job"} and set(job) <= ARGO_JOB_FIELDS
    assert job["spec"]["backoffLimit"] == 0  # a FAIL must not be retried into a PASS
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"  # a Job's pod: Never or OnFailure; OnFailure would re-run a FAIL
    (container,) = pod["containers"]
    assert container["image"] == "{{args.loadgen-image}}" and "command" not in container  # the image's entry point
    argv = [argo_args(template, str(a)) for a in container["args"]]
    ctx = canary_context(argv)
    # The Job provider: exit 0 Successful, anything else Failed (it has no Inconclusive). An
    # INCONCLUSIVE canary must not exit 0 there, or an undecided canary would promote.
    assert ctx.params["inconclusive_exit"] not in (None, 0)


def test_argo_web_template_polls_a_run_with_documented_fields():
    template = load(ARGO_WEB)
    assert (template["apiVersion"], template["kind"]) == ("argoproj.io/v1alpha1", "AnalysisTemplate")
    (metric,) = template["spec"]["metrics"]
    assert set(metric) <= ARGO_METRIC_FIELDS
    web = metric["provider"]["web"]
    assert set(metric["provider"]) == {"web"} and set(web) <= ARGO_WEB_FIELDS
    assert web.get("method", "GET") == "GET" and "body" not in web and "jsonBody" not in web
    url = httpx.URL(argo_args(template, web["url"]))
    assert url.path == "/v1/canaries/stand-in-canary-id"
    # Each GET waits for the verdict at most ?wait= seconds: inside the provider's timeout.
    assert float(url.params["wait"]) <= MAX_WAIT_S < web.get("timeoutSeconds", ARGO_WEB_TIMEOUT_S)
    assert web["jsonPath"] == "{$.state}"
    # RUNNING reads are Inconclusive: a canary that never ends must end the analysis Inconclusive
    # (paused), not Successful, so the count must outlast the inconclusive limit.
    assert metric["inconclusiveLimit"] < metric["count"]
    assert [h["key"] for h in web["headers"]] == ["Authorization"]  # a non-loopback serve needs the token
    assert web["headers"][0]["value"] == "Bearer {{args.api-token}}"


def test_argo_web_template_measures_a_real_serve_as_argo_would():
    """The template's own URL path, jsonPath and conditions, against `loadgen serve` in-process and
    a stand-in target at 85/15: PASS is Successful, FAIL Failed, RUNNING Inconclusive."""
    template = load(ARGO_WEB)
    (metric,) = template["spec"]["metrics"]
    web = metric["provider"]["web"]
    success, failure = metric["successCondition"], metric["failureCondition"]
    slow = {**FAST, "rate": 100, "max_time": "60s"}
    with split_target(0.85) as target, serving(ServeSettings()) as base, \
            httpx.Client(base_url=base, timeout=30) as client:
        def measure(run_id: str) -> str:
            url = httpx.URL(web["url"].replace("{{args.loadgen-url}}", base).replace("{{args.canary-id}}", run_id))
            return argo_web_measurement(client, f"{url.path}?{url.query.decode()}", web["jsonPath"], success, failure)

        measured = {}
        for expect in ("85/15", "50/50"):
            run_id = client.post("/v1/canaries", json={"expect": expect, "target": target, **FAST}).json()["id"]
            poll(client, run_id)
            measured[expect] = measure(run_id)
        running = client.post("/v1/canaries", json={"expect": "85/15", "target": target, **slow}).json()["id"]
        url = httpx.URL(web["url"].replace("{{args.loadgen-url}}", base).replace("{{args.canary-id}}", running))
        while_running = argo_web_measurement(client, url.path, web["jsonPath"], success, failure)  # no wait
        client.delete(f"/v1/canaries/{running}")
    assert measured == {"85/15": "Successful", "50/50": "Failed"}
    assert while_running == "Inconclusive"


# -- Flagger -------------------------------------------------------------------------------------


def test_flagger_canary_uses_the_gate_with_documented_fields_and_valid_options():
    from loadgen.serve.body import parse_canary

    canary = load(FLAGGER)
    assert (canary["apiVersion"], canary["kind"]) == ("flagger.app/v1beta1", "Canary")
    analysis = canary["spec"]["analysis"]
    hooks = analysis["webhooks"]
    assert {h["type"] for h in hooks} <= FLAGGER_WEBHOOK_TYPES and {"pre-rollout", "rollout"} <= {h["type"]
                                                                                                 for h in hooks}
    for hook in hooks:
        assert set(hook) <= FLAGGER_WEBHOOK_FIELDS
        assert httpx.URL(hook["url"]).path == "/v1/gate"
        assert duration_s(hook["timeout"]) > ServeSettings().gate_wait  # the gate answers before Flagger gives up
        metadata = hook["metadata"]
        assert all(isinstance(v, str) for v in metadata.values())  # Flagger's metadata: a map of strings
        parse_canary(metadata, strings_only=True)  # the gate's own parser: raises on any bad option
    # Flagger's rule: rollout hooks' timeouts together stay below the analysis interval.
    rollout_s = sum(duration_s(h["timeout"]) for h in hooks if h["type"] == "rollout")
    assert rollout_s < duration_s(analysis["interval"])
