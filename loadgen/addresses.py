"""Addresses a user types (a Consul agent, an Envoy admin), checked as text before anything is sent:
each is one line (UsageError, exit 2) when it cannot be one. (A service name: mesh/service_name.py.)"""

from __future__ import annotations

from urllib.parse import urlsplit

from loadgen.errors import LoadgenError, UsageError
from loadgen.mesh.consul_settings import normalise_address
from loadgen.shown import shown

__all__ = ["check_admin_address", "check_consul_address"]


def check_consul_address(address: str, option: str = "--consul") -> str:
    """``[http|https://]host:port`` with a port in 1-65535; returns it as given."""
    if not address.strip():
        raise UsageError(f"{option} is empty: give the agent as host:port, like 127.0.0.1:8500")
    try:
        normalised = normalise_address(address, source=option)
        port = urlsplit(normalised).port
    except ValueError as exc:
        raise UsageError(f"{option} {shown(address)} is not [http|https://]host:port ({exc})") from None
    except LoadgenError as exc:  # its message names the option already
        raise UsageError(exc.message) from None
    if port == 0:
        raise UsageError(f"{option} {shown(address)}: port 0 is not a port an agent listens on")
    return address


def check_admin_address(address: str, option: str = "--envoy-admin") -> str:
    """An Envoy admin as ``host:port`` (or ``http://host:port``, as EnvoyAdmin takes it; a port in
    1-65535); returns it stripped of surrounding spaces."""
    text = address.strip()
    host, sep, port = text.removeprefix("http://").rstrip("/").rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or "/" in host or \
            any(c.isspace() for c in text):
        raise UsageError(f"{option} {shown(address)} is not HOST:PORT (like 127.0.0.1:19000)")
    return text
