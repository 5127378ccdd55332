"""A small, typed client for the parts of Nomad's HTTP API the nomad runtime uses.

Every call follows :mod:`loadgen.mesh.http_api`'s contract: JSON in, JSON (or None when
absent) out, one-line LoadgenErrors when Nomad is unreachable or refuses. Address, token and
TLS are the nomad CLI's environment (:mod:`loadgen.mesh.nomad_settings`).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx

from loadgen.mesh.http_api import HashiCorpApi
from loadgen.mesh.nomad_refusal import explain_connect_error, explain_refusal
from loadgen.mesh.nomad_settings import DEFAULT_NOMAD, NomadSettings

__all__ = ["DEFAULT_NOMAD", "NomadClient", "NomadSettings"]


class NomadClient(HashiCorpApi):
    """Synchronous Nomad HTTP API client: agent, node, jobs (and dispatches), allocations."""

    product = "Nomad"
    token_env = "NOMAD_TOKEN"  # the same variable the nomad CLI reads
    token_header = "X-Nomad-Token"

    def __init__(self, address: str | None = None, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None, settings: NomadSettings | None = None) -> None:
        """``settings``: address, token and TLS (default: the nomad CLI's environment; an
        ``address`` given here beats NOMAD_ADDR, as the CLI's -address does)."""
        if settings is None:
            settings = NomadSettings.from_env(address=address)
        elif address is not None:
            settings = settings.at(address)
        self.settings = settings
        super().__init__(settings.address, timeout, transport, headers=settings.headers(),
                         verify=settings.ssl_context())
        if settings.params():
            self._http.params = settings.params()
        if settings.tls_server_name:
            # httpcore verifies the certificate against the SNI name it sends.
            self._extensions = {"sni_hostname": settings.tls_server_name}

    def _refusal(self, method: str, path: str, resp: httpx.Response) -> str:
        return explain_refusal(method, path, resp.status_code, resp.text, self.settings)

    def _unreachable(self, exc: httpx.HTTPError) -> str:
        return explain_connect_error(str(exc), self.settings) or super()._unreachable(exc)

    def leader(self) -> str:
        return self._request("GET", "/v1/status/leader") or ""

    def nodes(self) -> list[dict[str, Any]]:
        return self._request("GET", "/v1/nodes") or []

    def node(self, node_id: str) -> dict[str, Any] | None:
        return self._request("GET", f"/v1/node/{node_id}")

    # -- jobs ---------------------------------------------------------------------
    def parse(self, hcl: str, variables: dict[str, str]) -> dict[str, Any]:
        """HCL2 job text -> the API's job JSON, with ``variables`` set (Nomad parses, not us)."""
        var_text = "\n".join(f"{name} = {json.dumps(value)}" for name, value in variables.items())
        return self._request("POST", "/v1/jobs/parse",
                             json={"JobHCL": hcl, "Variables": var_text, "Canonicalize": True})

    def register(self, job: dict[str, Any]) -> dict[str, Any]:
        return self._request("POST", "/v1/jobs", json={"Job": job})

    def job(self, job_id: str) -> dict[str, Any] | None:
        return self._request("GET", f"/v1/job/{job_id}")

    def jobs(self, prefix: str = "") -> list[dict[str, Any]]:
        return self._request("GET", "/v1/jobs", params={"prefix": prefix} if prefix else None) or []

    def allocations(self, job_id: str) -> list[dict[str, Any]]:
        return self._request("GET", f"/v1/job/{job_id}/allocations") or []

    def allocation(self, alloc_id: str) -> dict[str, Any] | None:
        return self._request("GET", f"/v1/allocation/{alloc_id}")

    def dispatch(self, job_id: str, meta: dict[str, str], payload: bytes | None = None) -> dict[str, Any]:
        """Dispatch a parameterized job: its DispatchedJobID and EvalID."""
        body: dict[str, Any] = {"Meta": meta}
        if payload is not None:
            body["Payload"] = base64.b64encode(payload).decode("ascii")
        return self._request("POST", f"/v1/job/{job_id}/dispatch", json=body)

    def evaluation(self, eval_id: str) -> dict[str, Any] | None:
        return self._request("GET", f"/v1/evaluation/{eval_id}")

    def stop(self, job_id: str, purge: bool = True) -> None:
        self._request("DELETE", f"/v1/job/{job_id}", params={"purge": "true" if purge else "false"})

    def gc(self) -> None:
        self._request("PUT", "/v1/system/gc")
