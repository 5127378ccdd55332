"""How to tell a stage is *actually* live: what its sidecars' Envoy must show and what
GET /hello_a must answer. The Envoy expectations are derived from the stage's config
entries (not hand-written per stage), so a new entry file is checked automatically.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from loadgen.mesh import envoy_admin
from loadgen.mesh.stages import Stage
from loadgen.safe_text import describe_exception

Dump = dict[str, Any]


@dataclass(frozen=True)
class EnvoyExpectation:
    """A predicate over the config dumps of some sidecars (``any`` or ``all`` of them must hold)."""

    description: str
    instances: tuple[str, ...]
    predicate: Callable[[Dump], bool]
    quantifier: str = "all"  # "all" sidecars or "any" of them

    def holds(self, dumps: dict[str, Dump]) -> bool:
        results = [self.predicate(dumps[i]) for i in self.instances if i in dumps]
        if len(results) != len(self.instances):
            return False
        return all(results) if self.quantifier == "all" else any(results)


def _router_has(prefix: str, service: str) -> Callable[[Dump], bool]:
    def check(dump: Dump) -> bool:
        # The destination is one cluster, or weighted clusters (subsets) once a splitter is in force.
        return any(
            r.prefix == prefix and r.destinations and {envoy_admin.cluster_service(c)[1] for c in r.destinations}
            == {service}
            for r in envoy_admin.routes(dump)
        )

    return check


def _split_is(service: str, weights: dict[str, int]) -> Callable[[Dump], bool]:
    # Consul scales splitter weights (percent, two decimals) to Envoy's total of 10000.
    expected = {subset: round(w * 100) for subset, w in weights.items()}
    return lambda dump: envoy_admin.weighted_split(dump, service) == expected


def effective_splits(stage: Stage) -> dict[str, dict[str, float]]:
    """Per top-level splitter, the split Envoy gets: {subset: percent}, nested splitters
    multiplied in as Consul compiles them. Splitters only reached through another one are
    absent (Envoy has no route of their own), as are splits across several services."""
    splitters = {e.name: e.body for e in stage.config_entries if e.kind == "service-splitter"}
    nested = {str(s["Service"]) for body in splitters.values() for s in body.get("Splits", [])
              if s.get("Service") and not s.get("ServiceSubset") and s["Service"] in splitters}
    def walk(service: str, share: float, depth: int, acc: dict[tuple[str, str], float]) -> None:
        for split in splitters[service].get("Splits", []):
            weight = share * float(split["Weight"]) / 100
            to, subset = str(split.get("Service") or service), str(split.get("ServiceSubset", ""))
            if not subset and to != service and to in splitters and depth < 8:
                walk(to, weight, depth + 1, acc)
            else:
                acc[(to, subset)] = acc.get((to, subset), 0.0) + weight

    out: dict[str, dict[str, float]] = {}
    for name in splitters.keys() - nested:
        acc: dict[tuple[str, str], float] = {}
        walk(name, 1.0, 0, acc)
        if {to for to, _ in acc} == {name}:
            out[name] = {subset: round(w * 100, 2) for (_, subset), w in acc.items()}
    return out


def envoy_expectations(stage: Stage, previous: Stage | None = None) -> list[EnvoyExpectation]:
    """What the sidecars must show for ``stage``; with ``previous``, also what must be gone."""
    all_ids = tuple(i.id for i in stage.instances)
    out: list[EnvoyExpectation] = []
    for entry in stage.config_entries:
        body = entry.body
        if entry.kind == "service-router":
            for route in body.get("Routes", []):
                prefix = ((route.get("Match") or {}).get("HTTP") or {}).get("PathPrefix")
                dest = (route.get("Destination") or {}).get("Service", entry.name)
                if prefix and not any(e.description.startswith(f"a sidecar routes {prefix} to {dest} ")
                                      for e in out):
                    out.append(
                        EnvoyExpectation(
                            f"a sidecar routes {prefix} to {dest} ({entry.path.name})",
                            all_ids, _router_has(prefix, dest), "any",
                        )
                    )
        elif entry.kind == "service-splitter":
            weights = effective_splits(stage).get(entry.name)
            if weights is None:
                continue  # a nested splitter: Consul flattens it into the one that points at it
            out.append(
                EnvoyExpectation(
                    f"a sidecar splits {entry.name} {weights} ({entry.path.name})",
                    all_ids, _split_is(entry.name, weights), "any",
                )
            )
        elif entry.kind == "service-intentions":
            dest_ids = tuple(i.id for i in stage.instances if i.service == entry.name)
            for src in body.get("Sources", []):
                # An L7 source (Permissions, no Action) admits the service for some requests.
                allow = str(src.get("Action", "allow")).lower() == "allow"
                out.append(
                    EnvoyExpectation(
                        f"every {entry.name} sidecar's RBAC {'admits' if allow else 'refuses'} {src['Name']} "
                        f"({entry.path.name})",
                        dest_ids, lambda d, s=src["Name"], a=allow: envoy_admin.rbac_allows(d, s) == a, "all",
                    )
                )
    if previous is not None:
        for entry in previous.config_entries:
            if stage.entry(entry.kind, entry.name) is not None:
                continue
            if entry.kind == "service-intentions":
                dest_ids = tuple(i.id for i in stage.instances if i.service == entry.name)
                for src in entry.body.get("Sources", []):
                    out.append(
                        EnvoyExpectation(
                            f"every {entry.name} sidecar's RBAC admits {src['Name']} again (no intention left)",
                            dest_ids, lambda d, s=src["Name"]: envoy_admin.rbac_allows(d, s), "all",
                        )
                    )
            elif entry.kind == "service-splitter":
                out.append(
                    EnvoyExpectation(
                        f"no sidecar splits {entry.name} any more",
                        all_ids, lambda d, n=entry.name: envoy_admin.weighted_split(d, n) is None, "all",
                    )
                )
    return out


def _tls_sources(dump: Dump) -> list[Any]:
    """The active listeners and clusters: what Envoy serves and connects with right now
    (warming and draining ones, and the bootstrap's static clusters, are left out)."""
    sources: list[Any] = list(envoy_admin.listeners(dump))
    for cfg in dump.get("configs", []):
        if str(cfg.get("@type", "")).rsplit(".", 1)[-1] == "ClustersConfigDump":
            sources += [item.get("cluster") for item in cfg.get("dynamic_active_clusters", [])]
    return sources


def trusted_ca_bundles(dump: Dump) -> list[str]:
    """Every CA bundle (PEM) the active listeners and clusters verify their mTLS peers with."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ca = node.get("trusted_ca")
            if isinstance(ca, dict) and isinstance(ca.get("inline_string"), str):
                found.append(ca["inline_string"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(_tls_sources(dump))
    return found


def _pem_body(pem: str) -> str:
    return "".join(pem.split())


def trusts_root(dump: Dump, root_pem: str) -> bool:
    """Every mTLS context of the sidecar trusts ``root_pem`` (Consul's active CA root).

    After Consul restarts (a dev agent makes a new CA each start), a sidecar keeps serving
    its old certificates until its xDS stream has reconnected: its routes and splits look
    right, yet a peer that already got the new CA rejects it (502). This is what tells the
    two apart. A sidecar without any mTLS context has not got its config yet: not in sync.
    """
    bundles = trusted_ca_bundles(dump)
    root = _pem_body(root_pem)
    return bool(bundles) and bool(root) and all(root in _pem_body(b) for b in bundles)


def ca_expectation(instances: tuple[str, ...], root_pem: str, trust_domain: str) -> EnvoyExpectation:
    """Every sidecar of ``instances`` trusts Consul's active CA root (see :func:`trusts_root`)."""
    return EnvoyExpectation(
        f"every sidecar trusts Consul's active CA root (trust domain {trust_domain}): its xDS stream "
        "has not re-synced with this Consul agent",
        instances, lambda d: trusts_root(d, root_pem), "all",
    )


def active_root(roots: dict[str, Any]) -> tuple[str, str] | None:
    """(PEM, trust domain) of the active root in Consul's /v1/connect/ca/roots answer."""
    for root in roots.get("Roots") or []:
        if root.get("Active") and root.get("RootCert"):
            return str(root["RootCert"]), str(roots.get("TrustDomain") or "")
    return None


@dataclass
class HelloObservation:
    status: int | None
    app_id: str | None
    body: Any
    error: str | None = None

    def describe(self) -> str:
        if self.error:
            return self.error
        return f"HTTP {self.status}: {str(self.body)[:160]}"


def get_hello_a(url: str, timeout: float = 5.0, client: httpx.Client | None = None) -> HelloObservation:
    try:
        # A shared client saves building an SSL context per request (~tens of ms), which a
        # burst of them would spend; "Connection: close" still makes each one a new connection.
        get = client.get if client is not None else httpx.get
        resp = get(url, timeout=timeout, headers={"Connection": "close"})
    except httpx.HTTPError as exc:
        return HelloObservation(None, None, None, describe_exception(exc))
    try:
        body = resp.json()
    except ValueError:
        body = resp.text
    app_id = resp.headers.get("X-App-Id") or (body.get("app_id") if isinstance(body, dict) else None)
    return HelloObservation(resp.status_code, str(app_id) if app_id is not None else None, body)


def hello_a_matches(obs: HelloObservation, expect: str) -> bool:
    if expect == "ok":
        return obs.status == 200 and obs.app_id is not None
    if expect == "denied":
        return obs.status in (502, 503) and isinstance(obs.body, dict) and "error" in obs.body
    raise ValueError(f"unknown expectation {expect!r}")


def seen_app_ids(answers: Counter[str]) -> set[str]:
    """The APP_IDs among ``wait_hello_a``'s counted answers."""
    return {k.removeprefix("APP_ID ") for k in answers if k.startswith("APP_ID ")}


def wait_hello_a(
    url: str, expect: str, app_ids: tuple[str, ...], timeout: float, consecutive: int = 5
) -> tuple[bool, HelloObservation | None, Counter[str]]:
    """Poll until ``consecutive`` answers in a row match and, among that unbroken run, every
    APP_ID in ``app_ids`` answered.

    An APP_ID seen before a failure does not count: a mesh that answers from v1, then fails,
    then answers from v2 has not shown it serves both. Bounded by ``timeout`` seconds; returns
    (live, last observation, what the answers were: "APP_ID 1" for each matching answer, else
    its status or error, counted).
    """
    deadline = time.monotonic() + timeout
    with httpx.Client() as client:
        return _poll_hello_a(client, url, expect, app_ids, deadline, consecutive)


def _poll_hello_a(client: httpx.Client, url: str, expect: str, app_ids: tuple[str, ...], deadline: float,
                  consecutive: int) -> tuple[bool, HelloObservation | None, Counter[str]]:
    streak, answers, last = 0, Counter[str](), None
    in_streak: set[str] = set()
    while time.monotonic() < deadline:
        last = get_hello_a(url, client=client)
        if hello_a_matches(last, expect):
            streak += 1
            answers[f"APP_ID {last.app_id}" if last.app_id is not None else f"HTTP {last.status}"] += 1
            if last.app_id is not None:
                in_streak.add(last.app_id)
            if streak >= consecutive and set(app_ids) <= in_streak:
                return True, last, answers
            # Not every APP_ID seen yet: keep sampling (a splitter is random), gently.
            time.sleep(0.02)
            continue
        answers[last.error.split(":")[0] if last.error else f"HTTP {last.status}"] += 1
        streak = 0
        in_streak.clear()
        time.sleep(0.1)
    return False, last, answers
