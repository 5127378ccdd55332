"""What the Consul and Nomad API clients share: address, ACL token header, lifetime, liveness,
and one request contract.

The contract, the same for both clients:

- :meth:`HashiCorpApi._request` returns the parsed JSON body, or ``None`` when the object is
  absent (HTTP 404) or the answer has no body.
- :meth:`HashiCorpApi._send` returns the :class:`httpx.Response` itself, for the few calls
  that need a header or a body that is not JSON; a 404 is returned, not raised.
- Both raise :class:`~loadgen.errors.UnreachableError` when the agent cannot be reached and a
  :class:`~loadgen.errors.LoadgenError` (exit 4) when it refuses a request (any other 4xx/5xx).

``transport`` is the seam for unit tests: pass an :class:`httpx.MockTransport` and no agent is
needed (tests/unit/test_mesh_clients.py).
"""

from __future__ import annotations

import os
from typing import Any, Self

import httpx

from loadgen.errors import ExitCode, LoadgenError, UnreachableError
from loadgen.mesh.credentials import env_token, sendable
from loadgen.safe_text import describe_exception, one_line


class HashiCorpApi:
    """An HTTP API client for a HashiCorp agent on ``address`` (``host:port`` or a URL).

    ``token_env`` names the variable the product's own CLI reads for an ACL token, sent in
    ``token_header``, so loadgen works against agents with ACLs the same way the CLI does.
    """

    product = ""  # "Consul", "Nomad": how errors name the agent
    token_env = ""
    token_header = ""

    def __init__(self, address: str, timeout: float, transport: httpx.BaseTransport | None = None,
                 headers: dict[str, str] | None = None, verify: Any = True) -> None:
        """``headers``/``verify``: the product's credentials and TLS; by default the token in
        ``token_env`` and the system's CAs."""
        if "://" not in address:
            address = "http://" + address
        self.address = address.rstrip("/")
        self.timeout = timeout
        if headers is None:
            token = env_token(os.environ, self.token_env) if self.token_env else None
            headers = {self.token_header: token} if token else {}
        self._secrets = [v for v in headers.values() if v]  # never in a message, whatever the error
        for name, value in headers.items():  # settings made in code, not read by the checks of from_env
            if not sendable(value):
                raise LoadgenError(f"the {name} header for {self.product} cannot be sent (a line break, control or "
                                   "non-ASCII character in it; the value is not shown)", ExitCode.USAGE)
        self._http = httpx.Client(base_url=self.address, timeout=timeout, transport=transport,
                                  headers=headers, verify=verify)
        self._extensions: dict[str, Any] = {}  # per request (Consul: the TLS server name to verify)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def reachable(self) -> bool:
        """The agent answers and knows a leader."""
        try:
            return self._http.get("/v1/status/leader", timeout=1.0,
                                  extensions=self._extensions).status_code == 200
        except (httpx.HTTPError, httpx.InvalidURL, UnicodeError):
            return False

    # -- the request contract ----------------------------------------------------------
    def _refusal(self, method: str, path: str, resp: httpx.Response) -> str:
        """The one line for a refused request (Consul names the missing ACL rule)."""
        hint = f" (ACLs? set {self.token_env})" if resp.status_code == 403 and self.token_env else ""
        return f"{self.product} refused {method} {path}: HTTP {resp.status_code}: {self._body(resp)}{hint}"

    def _body(self, resp: httpx.Response) -> str:
        """The agent's answer for a message: one line, control characters out, cut short."""
        return one_line(resp.text, secrets=self._secrets)

    def _unreachable(self, exc: httpx.HTTPError) -> str:
        """The one line for an agent that could not be reached (Consul names a TLS cause),
        described without anything of the request (see loadgen.safe_text)."""
        return f"{self.product} at {self.address} is unreachable ({describe_exception(exc, self._secrets)})"

    def _unsendable(self, exc: Exception) -> str:
        """The one line for a request that could not be built (a header value h11 or httpx
        refused): the agent was never asked, and the value is not shown."""
        return (f"{self.product} at {self.address}: loadgen could not send its request ({type(exc).__name__}: "
                "a header value or the URL is not valid HTTP; the value is not shown)")

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The raw answer to ``method path``; 2xx and 404 are returned, anything else raises."""
        try:
            resp = self._http.request(method, path, extensions=self._extensions, **kwargs)
        # No chained cause: a traceback (LOADGEN_DEBUG) would show the h11 error's text.
        except (httpx.LocalProtocolError, httpx.InvalidURL, UnicodeError) as exc:
            raise LoadgenError(self._unsendable(exc), ExitCode.USAGE) from None
        except httpx.HTTPError as exc:
            raise UnreachableError(self._unreachable(exc)) from None
        if resp.status_code >= 400 and resp.status_code != 404:
            raise LoadgenError(self._refusal(method, path, resp), ExitCode.UNREACHABLE)
        return resp

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON body of the answer to ``method path``; None when absent (404) or empty."""
        resp = self._send(method, path, **kwargs)
        if resp.status_code == 404 or not resp.content:
            return None
        try:
            return resp.json()
        except ValueError as exc:
            raise LoadgenError(f"{self.product} answered {method} {path} with no JSON: {self._body(resp)}",
                               ExitCode.UNREACHABLE) from exc
