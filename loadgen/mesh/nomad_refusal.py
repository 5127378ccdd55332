"""One line a person can act on when Nomad refuses a request or its TLS fails: a token Nomad does
not know (or that expired), the capability a call needs, the TLS file or certificate missing.

Pure: the message is built from the request, Nomad's answer and the settings used; no token ever
appears in it (only where the token came from, NOMAD_TOKEN).
"""

from __future__ import annotations

import re

from loadgen.mesh.nomad_settings import NomadSettings
from loadgen.mesh.tls_refusal import AgentTls, explain_tls_failure
from loadgen.safe_text import one_line

__all__ = ["POLICY_FILE", "capability", "explain_connect_error", "explain_refusal"]

# What --nomad-workers' token needs, as a policy a user applies with `nomad acl policy apply`.
POLICY_FILE = "nomad/loadgen-worker.policy.hcl"

# The namespace capability each call loadgen makes needs, by (method or "*", path pattern).
_CAPABILITIES: list[tuple[str, re.Pattern[str], str]] = [
    ("*", re.compile(r"^/v1/job/[^/]+/dispatch$"), "dispatch-job"),
    ("DELETE", re.compile(r"^/v1/job/"), "submit-job"),
    ("POST", re.compile(r"^/v1/jobs(/parse)?$"), "submit-job"),
    ("GET", re.compile(r"^/v1/jobs$"), "list-jobs"),
    ("GET", re.compile(r"^/v1/(job|evaluation|allocation)/"), "read-job"),
]


def capability(method: str, path: str) -> str | None:
    """The namespace capability Nomad checks for ``method path`` (None: not a job call)."""
    for m, pattern, name in _CAPABILITIES:
        if m in ("*", method.upper()) and pattern.match(path):
            return name
    return None


def explain_refusal(method: str, path: str, status: int, body: str, settings: NomadSettings) -> str:
    """The one line for an answer >= 400 (not 404)."""
    body = body.strip()
    head = f"Nomad refused {method} {path}"
    if status == 400 and "HTTP request to an HTTPS server" in body:
        https = settings.address.replace("http://", "https://", 1)
        return f"Nomad at {settings.address} serves HTTPS only: use {https} (NOMAD_ADDR) and its CA (NOMAD_CACERT)"
    low = body.lower()
    # Nomad 1.6 answers an unknown token with 403 and an expired one with 500 ("failed to
    # resolve ACL token: ACL token expired"): the words decide, not the status.
    if settings.token_source and "acl token not found" in low:
        return f"{head}: Nomad does not know the token from {settings.token_source} (wrong or deleted)"
    if settings.token_source and "acl token expired" in low:
        return f"{head}: the token from {settings.token_source} has expired"
    if status == 403:
        if not settings.token_source:
            return (f"{head}: permission denied, and no token was sent: set NOMAD_TOKEN (a token with the "
                    f"policy in {POLICY_FILE})")
        needs = capability(method, path)
        namespace = settings.namespace or "default"
        what = f"needs {needs} in namespace {namespace}" if needs else "lacks a permission this call needs"
        # Nomad's list endpoints answer an unknown or expired token with this same 403.
        return (f"{head}: permission denied: the token from {settings.token_source} {what} (see {POLICY_FILE}), "
                "or Nomad no longer knows it")
    # Nomad's own words, as one bounded line (no control characters, no token).
    return f"{head}: HTTP {status}: {one_line(body, secrets=[settings.token])}"


def explain_connect_error(error: str, settings: NomadSettings) -> str | None:
    """A TLS failure named by its cause (None when ``error`` is not about TLS)."""
    return explain_tls_failure(error, AgentTls(
        "Nomad", "NOMAD", settings.address, settings.tls_server_name, settings.cacert or settings.capath,
        " (NOMAD_ADDR)", "a Nomad server's is server.<region>.nomad", "verify_https_client"))
