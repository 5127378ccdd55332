"""Where ``loadgen serve`` may listen, and with what.

Loopback (127.0.0.0/8, ::1, localhost) by default: only this machine can start canaries, and a
token is optional (used when ``LOADGEN_API_TOKEN`` is set). Any other address sends traffic on
behalf of whoever reaches it, so it needs both a token (``LOADGEN_API_TOKEN``, compared in
constant time) and TLS (``--tls-cert``/``--tls-key``), or the server refuses to start (exit 2).
The token is never printed: messages name the variable.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import ssl
from dataclasses import dataclass, field

from loadgen.errors import UsageError
from loadgen.shown import shown

__all__ = ["TOKEN_ENV", "Listen", "check_bearer", "parse_listen", "server_tls"]

TOKEN_ENV = "LOADGEN_API_TOKEN"
MIN_TOKEN_CHARS = 16  # a guessable token is no protection for an address others reach


@dataclass(frozen=True)
class Listen:
    host: str
    port: int
    token: str | None = field(default=None, repr=False)
    tls: ssl.SSLContext | None = field(default=None, repr=False)

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8089`` for IPv6; port 0 picks a free one)."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"--listen {shown(text)} is not HOST:PORT, like 127.0.0.1:8089")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise UsageError(f"--listen {shown(text)}: give an IP address (or localhost), so what is bound is "
                             "what you see") from None
    return host, int(port)


def server_tls(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise UsageError("--tls-cert and --tls-key go together: give both")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"--tls-cert/--tls-key: cannot load the certificate and key "
                         f"({getattr(exc, 'strerror', None) or exc.__class__.__name__})") from None
    return context


def listen_settings(listen: str, cert: str | None, key: str | None, env: dict[str, str] | None = None) -> Listen:
    """The checked listening settings, or UsageError: a non-loopback address without a token or TLS."""
    env = dict(os.environ) if env is None else env
    host, port = parse_listen(listen)
    token = env.get(TOKEN_ENV)
    if token is not None:
        token = token.strip()
        if not token:
            raise UsageError(f"{TOKEN_ENV} is set but empty: set a token, or unset it")
        if not token.isascii() or not token.isprintable() or " " in token:
            raise UsageError(f"{TOKEN_ENV} must be printable ASCII without spaces (it is sent as a Bearer header)")
    tls = server_tls(cert, key)
    if not is_loopback(host):
        missing = [what for what, ok in ((f"a token ({TOKEN_ENV})", token), ("TLS (--tls-cert, --tls-key)", tls))
                   if not ok]
        if missing:
            raise UsageError(f"--listen {host}:{port} is reachable from other machines: that needs "
                             f"{' and '.join(missing)}; or listen on 127.0.0.1")
        if token is not None and len(token) < MIN_TOKEN_CHARS:
            raise UsageError(f"{TOKEN_ENV} is shorter than {MIN_TOKEN_CHARS} characters: too easy to guess for an "
                             "address others reach (e.g. `openssl rand -hex 32`)")
    return Listen(host, port, token, tls)


def check_bearer(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``token`` (constant-time comparison)."""
    if not header:
        return False
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"), token.encode())
