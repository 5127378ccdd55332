"""What the Consul and Nomad API clients share: address, ACL token header, lifetime, liveness."""

from __future__ import annotations

import os
from typing import Self

import httpx


class HashiCorpApi:
    """An HTTP API client for a HashiCorp agent on ``address`` (``host:port`` or a URL).

    ``token_env`` names the variable the product's own CLI reads for an ACL token, sent in
    ``token_header``, so loadgen works against agents with ACLs the same way the CLI does.
    """

    token_env = ""
    token_header = ""

    def __init__(self, address: str, timeout: float) -> None:
        if "://" not in address:
            address = "http://" + address
        self.address = address.rstrip("/")
        token = os.environ.get(self.token_env) if self.token_env else None
        self._http = httpx.Client(base_url=self.address, timeout=timeout,
                                  headers={self.token_header: token} if token else {})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def reachable(self) -> bool:
        """The agent answers and knows a leader."""
        try:
            return self._http.get("/v1/status/leader", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False
