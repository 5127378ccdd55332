"""A small, typed client for the parts of Consul's HTTP API the harness uses."""

from __future__ import annotations

from typing import Any

import httpx

from loadgen.errors import ExitCode, LoadgenError, UnreachableError
from loadgen.mesh.http_api import HashiCorpApi

DEFAULT_CONSUL = "http://127.0.0.1:8500"


class ConsulClient(HashiCorpApi):
    """Synchronous Consul HTTP API client (agent, catalog, config entries)."""

    token_env = "CONSUL_HTTP_TOKEN"  # the same variable the consul CLI reads
    token_header = "X-Consul-Token"

    def __init__(self, address: str = DEFAULT_CONSUL, timeout: float = 5.0) -> None:
        super().__init__(address, timeout)

    # -- plumbing -----------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            resp = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise UnreachableError(f"Consul at {self.address} is unreachable ({type(exc).__name__}: {exc})") from exc
        if resp.status_code >= 400 and resp.status_code != 404:
            hint = " (ACLs? set CONSUL_HTTP_TOKEN)" if resp.status_code == 403 else ""
            raise LoadgenError(
                f"Consul refused {method} {path}: HTTP {resp.status_code}: {resp.text.strip()[:300]}{hint}",
                ExitCode.UNREACHABLE,
            )
        return resp

    def leader(self) -> str:
        return self._request("GET", "/v1/status/leader").json()

    def agent_self(self) -> dict[str, Any]:
        return self._request("GET", "/v1/agent/self").json()

    # -- services ---------------------------------------------------------------------
    def register_service(self, definition: dict[str, Any]) -> None:
        self._request("PUT", "/v1/agent/service/register", json=definition)

    def deregister_service(self, service_id: str) -> None:
        self._request("PUT", f"/v1/agent/service/deregister/{service_id}")

    def agent_services(self) -> dict[str, dict[str, Any]]:
        return self._request("GET", "/v1/agent/services").json()

    def agent_checks(self) -> dict[str, dict[str, Any]]:
        return self._request("GET", "/v1/agent/checks").json()

    def catalog_service(self, name: str) -> list[dict[str, Any]]:
        resp = self._request("GET", f"/v1/catalog/service/{name}")
        return resp.json() if resp.status_code == 200 else []

    def health_service(self, name: str, filter_expr: str | None = None) -> list[dict[str, Any]]:
        """Service entries (Node, Service, Checks) of ``name``, optionally through a
        filter expression -- the same selector language resolver subsets use."""
        params = {"filter": filter_expr} if filter_expr else None
        resp = self._request("GET", f"/v1/health/service/{name}", params=params)
        return resp.json() if resp.status_code == 200 else []

    # -- config entries ----------------------------------------------------------------
    def write_config(self, entry: dict[str, Any]) -> int:
        """PUT a config entry; returns Consul's raft index right after the write."""
        resp = self._request("PUT", "/v1/config", json=entry)
        if resp.text.strip() != "true":
            raise LoadgenError(f"Consul did not apply {entry.get('Kind')}/{entry.get('Name')}: {resp.text.strip()}")
        return int(resp.headers.get("X-Consul-Index", "0"))

    def get_config(self, kind: str, name: str) -> dict[str, Any] | None:
        resp = self._request("GET", f"/v1/config/{kind}/{name}")
        return resp.json() if resp.status_code == 200 else None

    def list_config(self, kind: str) -> list[dict[str, Any]]:
        resp = self._request("GET", f"/v1/config/{kind}")
        if resp.status_code != 200:
            return []
        return resp.json() or []

    def delete_config(self, kind: str, name: str) -> None:
        self._request("DELETE", f"/v1/config/{kind}/{name}")

    def discovery_chain(self, service: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/discovery-chain/{service}").json()
