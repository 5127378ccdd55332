"""Addresses a user types (a Consul agent, an Envoy admin, a Consul service name), checked as text
before anything is sent: each is one line (UsageError, exit 2) when it cannot be one."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from loadgen.errors import LoadgenError, UsageError
from loadgen.mesh.consul_settings import normalise_address
from loadgen.shown import shown

__all__ = ["check_admin_address", "check_consul_address", "check_service_name"]

# Consul's own rule for a DNS-compatible service name, with '.' and '_' as the catalog accepts them:
# a name is also part of file names (the shift's lock) and URLs, so nothing else is let through.
_SERVICE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,126}[A-Za-z0-9])?$")


def check_consul_address(address: str, option: str = "--consul") -> str:
    """``[http|https://]host:port`` with a port in 1-65535; returns it as given."""
    if not address.strip():
        raise UsageError(f"{option} is empty: give the agent as host:port, like 127.0.0.1:8500")
    try:
        normalised = normalise_address(address)
        port = urlsplit(normalised).port
    except ValueError as exc:
        raise UsageError(f"{option} {shown(address)} is not [http|https://]host:port ({exc})") from None
    except LoadgenError as exc:
        raise UsageError(f"{option}: {exc.message}") from None
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


def check_service_name(name: str, option: str = "--service") -> str:
    """A Consul service name: letters, digits, '-', '_' and '.', starting and ending with a letter or
    digit, at most 128 characters."""
    if not _SERVICE.match(name):
        raise UsageError(f"{option} {shown(name)} is not a service name: letters, digits, '-', '_' and '.' "
                         "(starting and ending with a letter or digit), like service-b")
    return name
