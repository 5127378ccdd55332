"""One request before a run, so an unreachable target is one clear line (exit 4), not a run of errors.

Sent with the same lean client the run uses: a target the probe can talk to is one the
run can talk to (an HTTP client that is more forgiving would let a run start that can
only fail).
"""

from __future__ import annotations

from loadgen.errors import UnreachableError
from loadgen.load.client import Client, RequestError
from loadgen.load.engine import run_blocking

__all__ = ["check_reachable"]


def check_reachable(url: str, headers: dict[str, str], timeout: float, client: Client | None = None) -> None:
    """Send the run's request once (``client``, default a GET of ``url``); raise
    :class:`UnreachableError` when the target cannot be reached, its TLS handshake fails, or it
    does not answer HTTP/1.1. Any HTTP answer, even an error status, passes: the run counts it."""

    async def once() -> None:
        nonlocal client
        client = client or Client(url, headers=headers, timeout=timeout)
        try:
            await client.get()
        finally:
            client.close()

    try:
        run_blocking(once)
    except RequestError as exc:
        if exc.kind == "tls_error":
            raise UnreachableError(f"target {url}: TLS handshake failed ({exc.detail}); give the CA that signs "
                                   "its certificate with --cacert, or --insecure") from None
        if exc.kind.startswith("connect"):
            raise UnreachableError(f"target {url} is unreachable ({exc.kind})") from None
        if exc.kind == "bad_response":
            raise UnreachableError(f"target {url} does not answer HTTP/1.1 ({exc.detail})") from None
        raise UnreachableError(f"target {url} did not answer ({exc.kind})") from None
    except (TimeoutError, OSError) as exc:
        raise UnreachableError(f"target {url} is unreachable ({exc})") from None
