"""One line for a TLS failure talking to an agent (Consul or Nomad), named by its cause and the
variable that mends it. Pure: built from the error text and the agent's settings, never a token.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AgentTls", "explain_tls_failure"]


@dataclass(frozen=True)
class AgentTls:
    """How one agent's CLI names its TLS settings, and what they hold."""

    product: str  # "Consul", "Nomad"
    env: str  # the variables' prefix: "CONSUL", "NOMAD"
    address: str
    server_name: str | None  # <ENV>_TLS_SERVER_NAME
    ca: str | None  # <ENV>_CACERT (or CAPATH)
    plain_advice: str  # after "use http://…": where else to go
    server_name_example: str  # "a Consul server's is server.<datacenter>.<domain>"
    client_verification: str  # the agent's option that asks for client certificates


def explain_tls_failure(error: str, agent: AgentTls) -> str | None:
    """None when ``error`` is not about TLS."""
    low = error.lower()
    host = agent.server_name or agent.address.split("://", 1)[-1].rsplit(":", 1)[0]
    if "wrong version number" in low or "record layer failure" in low or "http_request" in low:
        plain = agent.address.replace("https://", "http://", 1)
        return f"{agent.product} at {agent.address} does not speak TLS on that port: use {plain}{agent.plain_advice}"
    if "mismatch" in low or "doesn't match" in low or "not valid for" in low:
        return (f"{agent.product}'s TLS certificate at {agent.address} does not name {host!r}: set "
                f"{agent.env}_TLS_SERVER_NAME to a name it holds ({agent.server_name_example})")
    if "certificate verify failed" in low or "unable to get local issuer" in low or "self-signed" in low \
            or "self signed" in low:
        if agent.ca:
            return (f"{agent.product}'s TLS certificate at {agent.address} is not signed by the CA in {agent.ca} "
                    f"({agent.env}_CACERT)")
        return (f"{agent.product}'s TLS certificate at {agent.address} is not signed by a CA this system trusts: "
                f"give the agent's CA with {agent.env}_CACERT")
    if "certificate required" in low or "handshake failure" in low or "bad certificate" in low:
        return (f"{agent.product} at {agent.address} wants a client certificate ({agent.client_verification}): "
                f"set {agent.env}_CLIENT_CERT and {agent.env}_CLIENT_KEY")
    return None
