"""The TLS side of a CLI-style client environment, shared by the consul and nomad settings.

Both CLIs name a CA file or directory, a client certificate and key, whether to verify, and a
server name; only the variables' prefix differs (CONSUL_ / NOMAD_). :class:`ClientTls` checks
the files, builds what httpx's ``verify`` gets, and says in one line how the agent is reached.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from loadgen.errors import LoadgenError

__all__ = ["ClientTls"]


@dataclass(frozen=True)
class ClientTls:
    product: str  # "Consul" or "Nomad", for messages
    prefix: str  # "CONSUL_" or "NOMAD_": the variables' names
    https: bool
    verify: bool
    unverified_by: str  # the variable that turned verification off, e.g. CONSUL_HTTP_SSL_VERIFY=false
    cacert: str | None = None
    capath: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    server_name: str | None = None

    @property
    def files(self) -> dict[str, str]:
        """The TLS files given, by the variable that names each."""
        p = self.prefix
        named = {f"{p}CACERT": self.cacert, f"{p}CAPATH": self.capath, f"{p}CLIENT_CERT": self.client_cert,
                 f"{p}CLIENT_KEY": self.client_key}
        return {k: v for k, v in named.items() if v}

    def check_files(self) -> None:
        """Every file named exists (one line naming the variable and the path otherwise)."""
        for name, path in self.files.items():
            is_dir = name == f"{self.prefix}CAPATH"
            if not (Path(path).is_dir() if is_dir else Path(path).is_file()):
                raise LoadgenError(f"{name} {path}: no such {'directory' if is_dir else 'file'}")
        if bool(self.client_cert) != bool(self.client_key):
            raise LoadgenError(f"{self.prefix}CLIENT_CERT and {self.prefix}CLIENT_KEY go together: give both or "
                               "neither")

    def ssl_context(self) -> ssl.SSLContext | bool:
        """What httpx's ``verify`` gets: True (system CAs), False, or a context with the CA and
        client certificate given. Plain http ignores them, as the CLIs do."""
        if not self.https:
            # Never used on plain http, but httpx builds ``True`` eagerly by loading the system
            # CA bundle (~20 ms of every command's start). An empty context still verifies, so
            # were it ever used (a redirect to https is not followed) it would refuse, not trust.
            return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if not self.verify:
            return False
        if not (self.cacert or self.capath or self.client_cert):
            return True
        try:
            ctx = ssl.create_default_context(cafile=self.cacert, capath=self.capath)
            if self.client_cert and self.client_key:
                ctx.load_cert_chain(self.client_cert, self.client_key)
        except (ssl.SSLError, OSError) as exc:
            files = ", ".join(f"{k} {v}" for k, v in self.files.items())
            raise LoadgenError(f"the TLS files for {self.product} cannot be used ({files}): {exc}") from exc
        return ctx

    def describe(self) -> str:
        """For status and doctor: whether the agent's certificate is verified, and against what."""
        if not self.https:
            return "plain HTTP (no TLS)"
        if not self.verify:
            return f"TLS, NOT verified ({self.unverified_by})"
        against = self.cacert or self.capath or "the system's CAs"
        name = f", name {self.server_name}" if self.server_name else ""
        return f"TLS, verified against {against}{name}"
