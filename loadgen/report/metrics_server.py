"""`--metrics-listen HOST:PORT`: a run's /metrics page on a daemon thread, for the run's life.

The address is checked as text before anything starts (one line, exit 2): HOST:PORT, an IPv6
address in brackets, a port in 0-65535 (0: any free port, said on stderr). It must be a loopback
address unless the run allows others (``--metrics-allow-remote``): the page tells whoever can
reach it which services the run loads and how they answer. A port already taken is one line
too, exit 5 (errors.py: "a port is already taken"), before the first request.

The server is the client library's own (``start_http_server``: a threading WSGI server on a
daemon thread). It is not stopped when the command's run ends: a scrape right after the
verdict still reads the final state, until the process exits.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import threading
from dataclasses import dataclass
from typing import Any

from loadgen.errors import EnvironmentProblem, UsageError
from loadgen.report.run_metrics import RunMetrics
from loadgen.shown import shown

__all__ = ["ListenAddress", "MetricsServer", "close_all", "parse_listen", "serve_metrics", "serving"]

_SERVING: list[MetricsServer] = []  # every server this process opened and did not close
_SERVING_LOCK = threading.Lock()


@dataclass(frozen=True)
class ListenAddress:
    host: str  # an IP address or a host name, as given (IPv6 without brackets)
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_listen(text: str, allow_remote: bool = False, option: str = "--metrics-listen") -> ListenAddress:
    """``HOST:PORT`` checked before the run: a loopback host unless ``allow_remote``. UsageError otherwise."""
    value = text.strip()
    host, sep, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise UsageError(f"{option} {shown(text)}: write an IPv6 address in brackets, like [::1]:9464")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535 or any(c.isspace() for c in value):
        raise UsageError(f"{option} {shown(text)} is not HOST:PORT (like 127.0.0.1:9464)")
    address = ListenAddress(host, int(port))
    if not allow_remote and not _loopback(host):
        raise UsageError(f"{option} {shown(text)} is not a loopback address: the page shows what the run loads to "
                         "whoever reaches it; give --metrics-allow-remote to serve it there anyway")
    return address


def _loopback(host: str) -> bool:
    """Every address the host stands for is a loopback one (a name is resolved: 'localhost' is)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False  # not resolvable here: serving on it would fail anyway, and it is not known to be loopback
    return bool(infos) and all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


class MetricsServer:
    """A /metrics page for ``metrics`` on ``address``, served from a daemon thread."""

    def __init__(self, metrics: RunMetrics, address: ListenAddress, option: str = "--metrics-listen") -> None:
        from prometheus_client import start_http_server  # only when a run asks for the page

        from loadgen.report.prometheus import metrics_registry

        self.metrics = metrics
        self.registry = metrics_registry(metrics)
        try:
            self._httpd, self._thread = start_http_server(address.port, address.host, self.registry)
        except OSError as exc:
            raise _listen_error(exc, address, option) from None
        self.host = address.host
        self.port: int = self._httpd.server_port
        with _SERVING_LOCK:
            _SERVING.append(self)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        with _SERVING_LOCK:
            if self not in _SERVING:
                return
            _SERVING.remove(self)
        self._httpd.shutdown()
        self._httpd.server_close()


def _listen_error(exc: OSError, address: ListenAddress, option: str) -> Exception:
    reason = exc.strerror or str(exc)
    if exc.errno == errno.EADDRINUSE:
        return EnvironmentProblem(f"{option} {address}: the port is already in use ({reason}); give another port, "
                                  "or 0 for any free one")
    if exc.errno == errno.EACCES:
        return EnvironmentProblem(f"{option} {address}: not allowed to listen there ({reason}); use a port above 1023")
    if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
        return UsageError(f"{option} {address}: not an address of this machine ({reason})")
    return EnvironmentProblem(f"{option} {address}: cannot listen ({reason})")


def serve_metrics(metrics: RunMetrics, address: ListenAddress | None, say: Any = None,
                  option: str = "--metrics-listen") -> MetricsServer | None:
    """Start the page when an address was given (None: no page, nothing imported); ``say`` gets
    its URL (the port 0 picked is only known now)."""
    if address is None:
        return None
    server = MetricsServer(metrics, address, option)
    if say is not None:
        say(f"metrics: {server.url} (Prometheus text format, until loadgen exits)")
    return server


def serving() -> list[MetricsServer]:
    """The servers this process has open (for a caller in the same process, e.g. a test)."""
    with _SERVING_LOCK:
        return list(_SERVING)


def close_all() -> None:
    for server in serving():
        server.close()
