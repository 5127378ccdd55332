"""The controllers' HTTP exchanges with `loadgen serve`, made as each controller makes them:
Flagger's webhook POST and its reading of the status code, Argo Rollouts' Web provider GET with
its jsonPath and success/failure conditions (and examples/argo-rollouts/analysis-web.yaml's own
metric, its args filled in). Shared by the unit tests (the server in-process, a stand-in target)
and tests/integration/test_serve.py (the `loadgen serve` process on the reference mesh)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
from ruamel.yaml import YAML

__all__ = ["ARGO_WEB_TEMPLATE", "argo_web_measurement", "argo_web_template_measurement", "flagger_payload",
           "flagger_reads", "flagger_webhook", "jsonpath"]

ARGO_WEB_TEMPLATE = Path(__file__).resolve().parents[2] / "examples" / "argo-rollouts" / "analysis-web.yaml"
FLAGGER_DEFAULT_TIMEOUT_S = 10.0  # a webhook without `timeout`


def flagger_payload(metadata: dict[str, str], phase: str = "pre-rollout") -> dict:
    """Flagger's webhook body (CanaryWebhookPayload: name, namespace, phase, checksum, metadata; the
    metadata a map of strings), https://docs.flagger.app/usage/webhooks."""
    return {"name": "service-b", "namespace": "test", "phase": phase, "checksum": "6d9f7b6c",
            "metadata": metadata}


def flagger_reads(status: int) -> str:
    """Flagger: a 2xx answer lets the analysis go on, anything else is a failed check."""
    return "go on" if 200 <= status < 300 else "failed check"


def flagger_webhook(client: httpx.Client, url: str, payload: dict, timeout_s: float = FLAGGER_DEFAULT_TIMEOUT_S,
                    headers: dict[str, str] | None = None) -> httpx.Response:
    """A webhook call as Flagger's callWebhook makes it (Go's http.DefaultClient): a POST of the payload
    as JSON with ``Content-Type: application/json``, within the webhook's ``timeout`` (10 s when unset),
    and no other header of its own but Go's. ``headers``: what a proxy in front of the server adds
    (Flagger's webhook fields set none). The client's default headers are not sent."""
    request = httpx.Request(
        "POST", client.base_url.join(url), json=payload,
        headers={"User-Agent": "Go-http-client/1.1", "Accept-Encoding": "gzip", "Content-Type": "application/json",
                 **(headers or {})},
        extensions={"timeout": httpx.Timeout(timeout_s).as_dict()})
    return client.send(request)


def jsonpath(document: dict, path: str) -> object:
    """The JSONPath Argo Rollouts' Web provider templates use here: ``{$.a.b}`` (dotted members)."""
    assert path.startswith("{$.") and path.endswith("}")
    value: object = document
    for member in path[3:-1].split("."):
        assert isinstance(value, dict)
        value = value[member]
    return value


def argo_web_measurement(client: httpx.Client, url: str, json_path: str, success: str, failure: str,
                         headers: dict[str, str] | None = None, timeout_s: float = 10.0) -> str:
    """One measurement as Argo Rollouts' Web provider takes it (GET, jsonPath, then the conditions
    with the value as ``result``), https://argo-rollouts.readthedocs.io/en/stable/analysis/web/:
    Successful when successCondition holds, Failed when failureCondition holds, else Inconclusive.
    ``headers``: the provider's ``headers``, and no others; ``timeout_s``: its timeoutSeconds (default 10)."""
    request = httpx.Request("GET", client.base_url.join(url), headers=headers or {},
                            extensions={"timeout": httpx.Timeout(timeout_s).as_dict()})
    resp = client.send(request)  # the request as built: none of the client's default headers
    if not 200 <= resp.status_code < 300:
        return "Error"
    result = jsonpath(resp.json(), json_path)
    if eval(success, {}, {"result": result}):  # the conditions are the tests' own or the example's literals
        return "Successful"
    if eval(failure, {}, {"result": result}):
        return "Failed"
    return "Inconclusive"


def _fill_args(text: str, args: dict[str, str]) -> str:
    """``{{args.NAME}}`` replaced by ``args[NAME]``; an arg not given fails."""
    def value(match: re.Match[str]) -> str:
        assert match[1] in args, f"{{{{args.{match[1]}}}}} is not given"
        return args[match[1]]

    return re.sub(r"\{\{\s*args\.([\w-]+)\s*\}\}", value, text)


def argo_web_template_measurement(client: httpx.Client, args: dict[str, str],
                                  template: Path = ARGO_WEB_TEMPLATE) -> str:
    """One measurement of the example AnalysisTemplate's metric with ``args`` filled in (``loadgen-url``,
    ``canary-id``, ``api-token``): its URL, headers, timeoutSeconds, jsonPath and conditions."""
    spec: Any = YAML(typ="safe", pure=True).load(template.read_text())
    (metric,) = spec["spec"]["metrics"]
    web = metric["provider"]["web"]
    headers = {h["key"]: _fill_args(h["value"], args) for h in web.get("headers", [])}
    return argo_web_measurement(client, _fill_args(web["url"], args), web["jsonPath"], metric["successCondition"],
                                metric["failureCondition"], headers=headers,
                                timeout_s=float(web.get("timeoutSeconds", 10)))
