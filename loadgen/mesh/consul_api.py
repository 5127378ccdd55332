"""A small, typed client for the parts of Consul's HTTP API the harness uses.

Every call follows :mod:`loadgen.mesh.http_api`'s contract: JSON in, JSON (or None when
absent) out, one-line LoadgenErrors when Consul is unreachable or refuses.
"""

from __future__ import annotations

from typing import Any

import httpx

from loadgen.errors import ExitCode, LoadgenError
from loadgen.mesh.consul_refusal import explain_connect_error, explain_refusal, filtered_refusal
from loadgen.mesh.consul_settings import DEFAULT_CONSUL, ConsulSettings
from loadgen.mesh.http_api import HashiCorpApi

__all__ = ["DEFAULT_CONSUL", "ConsulClient", "ConsulSettings"]


class ConsulClient(HashiCorpApi):
    """Synchronous Consul HTTP API client (agent, health, config entries, Connect CA)."""

    product = "Consul"
    token_env = "CONSUL_HTTP_TOKEN"  # the same variable the consul CLI reads
    token_header = "X-Consul-Token"

    def __init__(self, address: str | None = None, timeout: float = 5.0,
                 transport: httpx.BaseTransport | None = None, settings: ConsulSettings | None = None) -> None:
        """``settings``: address, token and TLS (default: the consul CLI's environment, at
        ``address`` when one is given -- None takes CONSUL_HTTP_ADDR too)."""
        if settings is None:
            settings = ConsulSettings.from_env(address=address)
        elif address is not None and address != settings.address:
            settings = settings.at(address)
        self.settings = settings
        super().__init__(settings.address, timeout, transport, headers=settings.headers(),
                         verify=settings.ssl_context())
        if settings.tls_server_name:
            # httpcore verifies the certificate against the SNI name it sends.
            self._extensions = {"sni_hostname": settings.tls_server_name}

    def _refusal(self, method: str, path: str, resp: httpx.Response) -> str:
        return explain_refusal(method, path, resp.status_code, resp.text, self.settings)

    def _unreachable(self, exc: httpx.HTTPError) -> str:
        return explain_connect_error(str(exc), self.settings) or super()._unreachable(exc)

    def leader(self) -> str:
        return self._request("GET", "/v1/status/leader") or ""

    def agent_self(self) -> dict[str, Any]:
        return self._request("GET", "/v1/agent/self") or {}

    def describe_security(self) -> str:
        """"ACLs on (default deny); TLS, verified against ..." for status and doctor."""
        try:
            cfg = self.agent_self().get("DebugConfig", {})
        except LoadgenError:
            cfg = {}
        acl = cfg.get("ACLResolverSettings") or {}
        if not cfg:
            acls = "ACLs: unknown (the token cannot read the agent's configuration)"
        elif cfg.get("ACLsEnabled") or acl.get("ACLsEnabled"):
            acls = f"ACLs on (default {acl.get('ACLDefaultPolicy', '?')})"
        else:
            acls = "ACLs off"
        return f"{acls}; {self.settings.describe_tls()}"

    # -- services ---------------------------------------------------------------------
    def register_service(self, definition: dict[str, Any]) -> None:
        self._send("PUT", "/v1/agent/service/register", json=definition)

    def deregister_service(self, service_id: str) -> None:
        self._send("PUT", f"/v1/agent/service/deregister/{service_id}")

    def agent_checks(self) -> dict[str, dict[str, Any]]:
        return self._request("GET", "/v1/agent/checks") or {}

    def health_service(self, name: str, filter_expr: str | None = None) -> list[dict[str, Any]]:
        """Service entries (Node, Service, Checks) of ``name``, optionally through a
        filter expression -- the same selector language resolver subsets use."""
        params = {"filter": filter_expr} if filter_expr else None
        return self._read_instances(f"/v1/health/service/{name}", name, params)

    def _read_instances(self, path: str, name: str, params: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """A list of ``name``'s instances. Under ACLs Consul hides what the token may not read
        instead of refusing: an empty list it says was filtered is a refusal, named as one."""
        resp = self._send("GET", path, params=params)
        body = resp.json() if resp.status_code == 200 and resp.content else []
        filtered = resp.headers.get("X-Consul-Results-Filtered-By-ACLs", "").lower() == "true"
        deny = resp.headers.get("X-Consul-Default-ACL-Policy", "").lower() == "deny"  # Consul < 1.15 says no more
        if not body and (filtered or deny):
            raise LoadgenError(filtered_refusal(path, name, self.settings, certain=filtered), ExitCode.UNREACHABLE)
        return body or []

    # -- config entries ----------------------------------------------------------------
    def write_config(self, entry: dict[str, Any]) -> int:
        """PUT a config entry; returns Consul's raft index right after the write."""
        resp = self._send("PUT", "/v1/config", json=entry)
        if resp.text.strip() != "true":
            raise LoadgenError(f"Consul did not apply {entry.get('Kind')}/{entry.get('Name')}: {self._body(resp)}")
        return int(resp.headers.get("X-Consul-Index", "0"))

    def write_config_cas(self, entry: dict[str, Any], modify_index: int) -> bool:
        """PUT a config entry only if its ModifyIndex is still ``modify_index`` (0: only if it does
        not exist); False when someone else changed it first."""
        resp = self._send("PUT", "/v1/config", json=entry, params={"cas": str(modify_index)})
        return resp.text.strip() == "true"

    def delete_config_cas(self, kind: str, name: str, modify_index: int) -> bool:
        """DELETE a config entry only if its ModifyIndex is still ``modify_index``."""
        resp = self._send("DELETE", f"/v1/config/{kind}/{name}", params={"cas": str(modify_index)})
        return resp.text.strip() == "true"

    def get_config(self, kind: str, name: str) -> dict[str, Any] | None:
        return self._request("GET", f"/v1/config/{kind}/{name}")

    def delete_config(self, kind: str, name: str) -> None:
        self._send("DELETE", f"/v1/config/{kind}/{name}")

    def catalog_service(self, name: str) -> list[dict[str, Any]]:
        """Catalog entries of ``name`` (ServiceProxy carries a sidecar's upstreams)."""
        return self._read_instances(f"/v1/catalog/service/{name}", name)

    def discovery_chain(self, name: str) -> dict[str, Any]:
        """The chain Consul compiled for ``name`` (routers, splitters, resolvers -> targets)."""
        return self._request("GET", f"/v1/discovery-chain/{name}") or {}

    # -- Connect -------------------------------------------------------------------------
    def ca_roots(self) -> dict[str, Any]:
        """The Connect CA's roots (/v1/connect/ca/roots): TrustDomain and Roots, one Active."""
        return self._request("GET", "/v1/connect/ca/roots") or {}

    # -- ACLs (up --secure) ------------------------------------------------------------
    def acl_create_policy(self, name: str, rules: str, description: str = "") -> dict[str, Any]:
        return self._request("PUT", "/v1/acl/policy", json={"Name": name, "Rules": rules,
                                                             "Description": description}) or {}

    def acl_policy_by_name(self, name: str) -> dict[str, Any] | None:
        # Listed, not read by name: Consul answers a missing policy with the 403 "ACL not
        # found" of a missing token.
        return next((p for p in self._request("GET", "/v1/acl/policies") or [] if p.get("Name") == name), None)

    def acl_create_token(self, description: str, policies: list[str] | None = None,
                         service_identities: list[str] | None = None) -> dict[str, Any]:
        """A new token (its SecretID is in the answer: callers write it to a file, never print it)."""
        body: dict[str, Any] = {"Description": description}
        if policies:
            body["Policies"] = [{"ID": p} for p in policies]
        if service_identities:
            body["ServiceIdentities"] = [{"ServiceName": s} for s in service_identities]
        return self._request("PUT", "/v1/acl/token", json=body) or {}

    def acl_token_self(self) -> dict[str, Any]:
        """The token in use (its secret included in the answer: never printed)."""
        return self._request("GET", "/v1/acl/token/self") or {}

    def acl_tokens(self) -> list[dict[str, Any]]:
        """Every ACL token's listing (accessor ids and descriptions; secrets are not listed)."""
        return self._request("GET", "/v1/acl/tokens") or []

    def acl_delete_token(self, accessor_id: str) -> None:
        self._send("DELETE", f"/v1/acl/token/{accessor_id}")

    def acl_delete_policy(self, policy_id: str) -> None:
        self._send("DELETE", f"/v1/acl/policy/{policy_id}")
