"""A few requests before a run, so an unreachable target is one clear line (exit 4), not a run of errors.

Reachability is a property of several attempts, not of one: a target that drops some of its
connections (a proxy cutting half its answers, a pod restarting behind a service) is reachable,
and the run will count its failures. So the run's request is sent up to :data:`ATTEMPTS` times,
a short pause between them, and no attempt starts later than ``timeout`` after the first (the
check takes at most about twice the per-request timeout, and a silent target no longer than
before); the target is unreachable only when none of them got an HTTP answer.

Sent with the same lean client the run uses: a target the probe can talk to is one the
run can talk to (an HTTP client that is more forgiving would let a run start that can
only fail).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from loadgen.errors import UnreachableError
from loadgen.load.client import Client, RequestError
from loadgen.load.engine import run_blocking

__all__ = ["ATTEMPTS", "check_reachable"]

# A target that drops half its connections at random fails all of 10 attempts once in 1,024
# runs (5 attempts: once in 32, seen in a 10-run sweep). A refused port costs ~0.7 s of pauses.
ATTEMPTS = 10
PAUSES_S = (0.01, 0.02, 0.05, 0.1)  # before the 2nd, 3rd, 4th attempt, then the last one each time


def check_reachable(url: str, headers: dict[str, str], timeout: float, client: Client | None = None,
                    attempts: int = ATTEMPTS) -> int:
    """Send the run's request (``client``, default a GET of ``url``) until one gets an HTTP
    answer -- any status passes, the run counts it -- at most ``attempts`` times, none starting
    later than ``timeout`` after the first. Returns how many attempts it took. Raises
    :class:`UnreachableError` naming what went wrong (connection refused or timed out, a TLS
    handshake that failed, no HTTP/1.1) when none answered."""
    failures: list[RequestError] = []

    async def until_answered() -> int:
        nonlocal client
        client = client or Client(url, headers=headers, timeout=timeout)
        give_up_at = time.monotonic() + timeout
        try:
            for attempt in range(1, attempts + 1):
                try:
                    await client.get()
                    return attempt
                except RequestError as exc:
                    failures.append(exc)
                client.close()  # the next attempt on a fresh connection
                pause = PAUSES_S[min(attempt - 1, len(PAUSES_S) - 1)]
                if attempt == attempts or time.monotonic() + pause > give_up_at:
                    break
                await asyncio.sleep(pause)
            return 0
        finally:
            client.close()

    try:
        answered_at = run_blocking(until_answered)
    except (TimeoutError, OSError) as exc:
        raise UnreachableError(f"target {url} is unreachable ({exc})") from None
    if answered_at:
        return int(answered_at)  # type: ignore[call-overload]
    raise _unreachable(url, failures)


def _unreachable(url: str, failures: list[RequestError]) -> UnreachableError:
    """One line for the failures of every attempt: the most frequent kind's message, and the count."""
    kinds = Counter(f.kind for f in failures)
    kind, _ = kinds.most_common(1)[0]
    exc = next(f for f in reversed(failures) if f.kind == kind)
    tried = f"{len(failures)} attempt{'s' if len(failures) != 1 else ''}"
    if len(kinds) > 1:
        tried += ": " + ", ".join(f"{k} x{n}" for k, n in kinds.most_common())
    if kind == "tls_error" and ("plain HTTP" in exc.detail or "WRONG_VERSION_NUMBER" in exc.detail.upper()):
        return UnreachableError(f"target {url}: TLS handshake failed ({exc.detail}; {tried}); it looks like a "
                                "plain-HTTP server: give an http:// URL")
    if kind == "tls_error":
        return UnreachableError(f"target {url}: TLS handshake failed ({exc.detail}; {tried}); give the CA that signs "
                                "its certificate with --cacert, or --insecure")
    if kind == "dns_error":
        return UnreachableError(f"target {url}: the host name does not resolve ({exc.detail}; {tried})")
    if kind.startswith("connect"):
        return UnreachableError(f"target {url} is unreachable ({kind}; {tried})")
    if kind == "bad_response":
        return UnreachableError(f"target {url} does not answer HTTP/1.1 ({exc.detail}; {tried})")
    return UnreachableError(f"target {url} did not answer ({kind}; {tried})")
