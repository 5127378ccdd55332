"""Reading an Envoy sidecar's admin API: the proof that a config change reached the data plane.

The parsing functions take the ``/config_dump`` JSON and are pure, so they are unit-tested
on recorded dumps; only :func:`config_dump`, :func:`counter` (one ``/stats`` counter) and
:func:`ready` (``/ready``) do I/O, each one GET of the admin API.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx


def config_dump(admin_port: int, host: str = "127.0.0.1", timeout: float = 3.0) -> dict[str, Any]:
    resp = httpx.get(f"http://{host}:{admin_port}/config_dump", timeout=timeout)
    resp.raise_for_status()
    return resp.json()


def counter(address: str, name: str, timeout: float = 2.0) -> int | None:
    """One counter of the Envoy at admin ``address`` (host:port); None when it cannot be read or
    Envoy has no such counter."""
    try:
        text = httpx.get(f"http://{address}/stats", params={"filter": f"^{name}$"}, timeout=timeout).text
    except httpx.HTTPError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(": ")
        if key == name and value.strip().isdigit():
            return int(value)
    return None


def ready(admin_port: int, host: str = "127.0.0.1") -> bool:
    """Envoy's own readiness: LIVE once its initial xDS fetch completed."""
    try:
        return httpx.get(f"http://{host}:{admin_port}/ready", timeout=1.0).text.strip() == "LIVE"
    except httpx.HTTPError:
        return False


def _section(dump: dict[str, Any], type_name: str) -> dict[str, Any]:
    # Compare the full name: "ScopedRoutesConfigDump" also ends in "RoutesConfigDump".
    for cfg in dump.get("configs", []):
        if str(cfg.get("@type", "")).rsplit(".", 1)[-1] == type_name:
            return cfg
    return {}


def route_configs(dump: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The route configs Envoy actually serves: inlined in, or named by, an active listener.

    Envoy keeps an RDS route config in its dump for a while after the listener that used it
    is gone (e.g. after service-a's upstream changed), so unreferenced ones are ignored.
    """
    in_use: set[str] = set()
    for listener in listeners(dump):
        for hcm in _http_connection_managers(listener):
            if "route_config" in hcm:
                yield hcm["route_config"]
            name = (hcm.get("rds") or {}).get("route_config_name")
            if name:
                in_use.add(name)
    section = _section(dump, "RoutesConfigDump")
    for item in section.get("dynamic_route_configs", []):
        rc = item.get("route_config") or {}
        if rc.get("name") in in_use:
            yield rc


def listeners(dump: dict[str, Any]) -> Iterator[dict[str, Any]]:
    section = _section(dump, "ListenersConfigDump")
    for item in section.get("dynamic_listeners", []):
        state = item.get("active_state")  # warming and draining listeners do not serve
        if state and "listener" in state:
            yield state["listener"]


def _http_connection_managers(listener: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for chain in listener.get("filter_chains", []):
        for flt in chain.get("filters", []):
            typed = flt.get("typed_config", {})
            if str(typed.get("@type", "")).endswith("HttpConnectionManager"):
                yield typed


@dataclass(frozen=True)
class Route:
    """One route of a route config, flattened."""

    route_config: str
    prefix: str | None
    path: str | None
    cluster: str | None
    weighted: tuple[tuple[str, int], ...]

    @property
    def destinations(self) -> tuple[str, ...]:
        """Every cluster the route can send to."""
        return (self.cluster,) if self.cluster else tuple(name for name, _ in self.weighted)


def routes(dump: dict[str, Any]) -> list[Route]:
    out = []
    for rc in route_configs(dump):
        for vh in rc.get("virtual_hosts", []):
            for r in vh.get("routes", []):
                action = r.get("route", {})
                weighted = tuple(
                    (c["name"], int(c.get("weight", 0)))
                    for c in action.get("weighted_clusters", {}).get("clusters", [])
                )
                out.append(
                    Route(
                        route_config=rc.get("name", ""),
                        prefix=r.get("match", {}).get("prefix"),
                        path=r.get("match", {}).get("path"),
                        cluster=action.get("cluster"),
                        weighted=weighted,
                    )
                )
    return out


def cluster_service(cluster_name: str) -> tuple[str | None, str]:
    """Split a Consul cluster name into (subset, service).

    ``v1.service-b.default.dc1.internal.<uuid>.consul`` -> ("v1", "service-b");
    ``service-b.default.dc1.internal.<uuid>.consul`` -> (None, "service-b").
    """
    head = cluster_name.split(".default.", 1)[0] if ".default." in cluster_name else cluster_name
    if "." in head:
        subset, service = head.split(".", 1)
        return subset, service
    return None, head


def weighted_split(dump: dict[str, Any], service: str) -> dict[str, int] | None:
    """The weighted-cluster split toward ``service`` as {subset: weight}, or None if absent.
    A cluster listed more than once (a nested splitter, flattened) counts with all its weights."""
    for route in routes(dump):
        if route.weighted and all(cluster_service(name)[1] == service for name, _ in route.weighted):
            out: dict[str, int] = {}
            for name, weight in route.weighted:
                subset = str(cluster_service(name)[0])
                out[subset] = out.get(subset, 0) + weight
            return out
    return None


def public_listener(dump: dict[str, Any]) -> dict[str, Any] | None:
    for listener in listeners(dump):
        if str(listener.get("name", "")).startswith("public_listener"):
            return listener
    return None


def _rbac_rules(node: Any) -> Iterator[dict[str, Any]]:
    """Every RBAC filter's ``rules`` under ``node`` (network and HTTP filters alike)."""
    if isinstance(node, dict):
        config = node.get("typed_config") or {}
        # A filter without rules admits everything; empty rules are ALLOW with no policy: nobody.
        if "rbac" in str(node.get("name", "")).lower() and isinstance(config, dict) and "rules" in config:
            yield config["rules"] if isinstance(config["rules"], dict) else {}
        for value in node.values():
            yield from _rbac_rules(value)
    elif isinstance(node, list):
        for item in node:
            yield from _rbac_rules(item)


def rbac_allows(dump: dict[str, Any], source_service: str) -> bool:
    """Whether the inbound listener lets ``source_service`` in, as Envoy's RBAC filters decide
    for a whole service: an ALLOW filter admits only the principals its policies name (Consul's
    default-deny), a DENY filter refuses them (default allow). No RBAC filter admits everyone.
    An L7 permission that admits only some requests counts as admitting the service."""
    listener = public_listener(dump)
    if listener is None:
        return False
    needle = f"/svc/{source_service}"
    for rules in _rbac_rules(listener):
        named = any(needle in json.dumps(policy) for policy in (rules.get("policies") or {}).values())
        action = str(rules.get("action", "ALLOW")).upper()
        if (action == "ALLOW") != named:
            return False
    return True
