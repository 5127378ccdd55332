"""One line a person can act on when Consul refuses a request or its TLS fails: the ACL rule
that is missing and what loadgen wanted it for, the file or the name TLS did not accept.

Pure: the message is built from the request, Consul's answer and the settings used; no token
ever appears in it (only where the token came from).
"""

from __future__ import annotations

import re

from loadgen.mesh.consul_settings import ConsulSettings
from loadgen.mesh.tls_refusal import AgentTls, explain_tls_failure
from loadgen.safe_text import one_line

# Consul >= 1.12: Permission denied: token with AccessorID '...' lacks permission 'service:read' on "service-b"
_LACKS = re.compile(r"lacks permission '(?P<rule>[\w:-]+)'(?: on \"(?P<on>[^\"]*)\")?")
ANONYMOUS = "00000000-0000-0000-0000-000000000002"

# What loadgen wanted, by call: (method or "*", path pattern) -> words.
_PURPOSES: list[tuple[str, re.Pattern[str], str]] = [
    ("GET", re.compile(r"^/v1/config/(?P<kind>[\w-]+)/(?P<name>[^/?]+)"), "read its {kind}"),
    ("DELETE", re.compile(r"^/v1/config/(?P<kind>[\w-]+)/(?P<name>[^/?]+)"), "delete its {kind}"),
    ("PUT", re.compile(r"^/v1/config"), "write a config entry"),
    ("*", re.compile(r"^/v1/discovery-chain/(?P<name>[^/?]+)"), "read its discovery chain"),
    ("*", re.compile(r"^/v1/(health|catalog)/service/(?P<name>[^/?]+)"), "read its instances"),
    ("*", re.compile(r"^/v1/agent/service/register"), "register a service"),
    ("*", re.compile(r"^/v1/agent/service/deregister"), "deregister a service"),
    ("*", re.compile(r"^/v1/agent/self"), "read the agent's configuration"),
    ("*", re.compile(r"^/v1/agent/checks"), "read the agent's health checks"),
    ("*", re.compile(r"^/v1/connect/ca/roots"), "read the Connect CA's roots"),
    ("*", re.compile(r"^/v1/connect/intentions"), "manage intentions"),
    ("*", re.compile(r"^/v1/acl/"), "manage ACL tokens and policies"),
]


def purpose(method: str, path: str) -> str | None:
    """Why loadgen made this call, in words ("read its service-splitter")."""
    for m, pattern, words in _PURPOSES:
        if m in ("*", method.upper()) and (match := pattern.match(path)):
            return words.format(**match.groupdict())
    return None


def _whose(settings: ConsulSettings) -> str:
    return f"the token from {settings.token_source}" if settings.token_source else \
        "no token was sent (Consul used its anonymous token); set CONSUL_HTTP_TOKEN or CONSUL_HTTP_TOKEN_FILE, and it"


def explain_refusal(method: str, path: str, status: int, body: str, settings: ConsulSettings) -> str:
    """The one line for an answer >= 400 (not 404)."""
    body = body.strip()
    head = f"Consul refused {method} {path}"
    if status == 400 and "HTTP request to an HTTPS server" in body:
        https = settings.address.replace("http://", "https://", 1)
        return (f"Consul at {settings.address} serves HTTPS only: use {https} (CONSUL_HTTP_ADDR or --consul) "
                "and its CA (CONSUL_CACERT)")
    if status == 403 and "ACL not found" in body:
        if not settings.token_source:
            return f"{head}: ACL not found"
        return f"{head}: Consul does not know the token from {settings.token_source} (wrong, deleted or expired)"
    if status == 403:
        why = purpose(method, path)
        match = _LACKS.search(body)
        if match:
            rule, on = match["rule"], match["on"]
            needs = f"{rule} on {on}" if on else rule
            anonymous = ANONYMOUS in body or not settings.token_source
            whose = _whose(settings) if anonymous else f"the token from {settings.token_source}"
            return f"{head}: {whose} needs {needs}" + (f" to {why}" if why else "")
        return f"{head}: permission denied for {_whose(settings)}" + (f" (to {why})" if why else "")
    # Consul's own words, but as one bounded line: a proxy's HTML page or a body with control
    # characters (terminal escapes) is not echoed raw.
    return f"{head}: HTTP {status}: {one_line(body, secrets=[settings.token])}"


def filtered_refusal(path: str, service: str, settings: ConsulSettings, certain: bool = True) -> str:
    """Consul answered an empty list: filtered by ACLs (X-Consul-Results-Filtered-By-ACLs), or,
    when it only says its default policy is deny, perhaps filtered."""
    if certain:
        return (f"Consul hid {service}'s instances from GET {path}: {_whose(settings)} needs service:read on "
                f"{service} and node:read")
    return (f"Consul shows no instance of {service} (GET {path}); with ACLs default deny it hides what a token "
            f"may not read: {_whose(settings)} needs service:read on {service} and node:read, or {service} is "
            "not registered")


def explain_connect_error(error: str, settings: ConsulSettings) -> str | None:
    """A TLS failure named by its cause (None when ``error`` is not about TLS)."""
    return explain_tls_failure(error, AgentTls(
        "Consul", "CONSUL", settings.address, settings.tls_server_name, settings.cacert or settings.capath,
        ", or the agent's HTTPS port", "a Consul server's is server.<datacenter>.<domain>", "verify_incoming"))
