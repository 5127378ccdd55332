"""How to reach a Consul agent: address, ACL token and TLS, read the way the ``consul`` CLI reads them.

The CLI's environment is honoured with the CLI's precedence (a ``--consul-*`` flag beats its
variable; a token file beats a token, as ``consul`` does):

=========================  ==========================  =====================================
variable                   flag                        meaning
=========================  ==========================  =====================================
CONSUL_HTTP_ADDR           --consul                    ``[http|https://]host:port``
CONSUL_HTTP_SSL            -                           ``true``: https for a bare host:port
CONSUL_HTTP_TOKEN          -                           ACL token (never a flag: argv is public)
CONSUL_HTTP_TOKEN_FILE     --consul-token-file         file holding the token; wins over it
CONSUL_CACERT              --consul-cacert             CA bundle that signs the agent's cert
CONSUL_CAPATH              -                           directory of CA certificates
CONSUL_CLIENT_CERT/KEY     -                           client certificate (verify_incoming)
CONSUL_HTTP_SSL_VERIFY     -                           ``false``: do not verify (warned)
CONSUL_TLS_SERVER_NAME     -                           name to verify the agent's cert against
CONSUL_NAMESPACE           -                           sent as X-Consul-Namespace (Enterprise)
CONSUL_PARTITION           -                           sent as X-Consul-Partition (Enterprise)
=========================  ==========================  =====================================

Namespace and partition are only sent when set; Consul's open-source edition refuses them with
its own one-line reason, which loadgen shows. The token is kept out of ``repr`` and every
message: only where it came from (:attr:`ConsulSettings.token_source`) is ever said.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import urlparse

from loadgen.errors import LoadgenError
from loadgen.mesh.credentials import env_token, file_token, header_token
from loadgen.mesh.tls_client import ClientTls
from loadgen.url_userinfo import refuse_userinfo

DEFAULT_CONSUL = "http://127.0.0.1:8500"
_FALSE = {"0", "false", "f", "no", "off"}
_TRUE = {"1", "true", "t", "yes", "on"}


def _flag(env: Mapping[str, str], name: str) -> bool | None:
    value = env.get(name, "").strip().lower()
    if not value:
        return None
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise LoadgenError(f"{name}={env[name]!r} is not a boolean (use true or false)")


def normalise_address(address: str, https: bool = False, source: str = "--consul") -> str:
    """``host:port`` -> ``http://host:port`` (``https://`` when ``https``); a URL is kept.
    ``source`` (the flag or variable it came from) is what a refusal names."""
    address = address.strip()
    if not address:
        raise LoadgenError(f"{source} is empty: give [http|https://]host:port, or unset it for {DEFAULT_CONSUL}")
    refuse_userinfo(address, source, "a token goes in CONSUL_HTTP_TOKEN or CONSUL_HTTP_TOKEN_FILE")
    if address.startswith("unix://"):
        raise LoadgenError(f"Consul address {address}: unix sockets are not supported; give host:port")
    if "://" not in address:
        address = ("https://" if https else "http://") + address
    parsed = urlparse(address)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise LoadgenError(f"Consul address {address!r} is not [http|https://]host:port")
    return address.rstrip("/")


@dataclass(frozen=True)
class ConsulSettings:
    """Everything needed to talk to one Consul agent. Build it with :meth:`from_env`."""

    address: str = DEFAULT_CONSUL
    token: str | None = field(default=None, repr=False)
    token_source: str | None = None  # "CONSUL_HTTP_TOKEN", "token file /run/x" -- said instead of the token
    cacert: str | None = None
    capath: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    verify: bool = True
    tls_server_name: str | None = None
    namespace: str | None = None
    partition: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, address: str | None = None,
                 token_file: str | None = None, cacert: str | None = None) -> ConsulSettings:
        """The settings the ``consul`` CLI would use in ``env`` (default: this process's),
        with the flags given here taking precedence over their variables."""
        env = os.environ if env is None else env
        https = bool(_flag(env, "CONSUL_HTTP_SSL"))
        given, given_by = _address(env, address)
        addr = normalise_address(given, https, given_by)
        token, source = _token(env, token_file)
        verify = _flag(env, "CONSUL_HTTP_SSL_VERIFY")
        settings = cls(
            address=addr, token=token, token_source=source,
            cacert=cacert or env.get("CONSUL_CACERT") or None, capath=env.get("CONSUL_CAPATH") or None,
            client_cert=env.get("CONSUL_CLIENT_CERT") or None, client_key=env.get("CONSUL_CLIENT_KEY") or None,
            verify=verify is not False, tls_server_name=env.get("CONSUL_TLS_SERVER_NAME") or None,
            # Sent as headers too: checked as the token is (a name, so stripped and not secret).
            namespace=header_token(env.get("CONSUL_NAMESPACE") or "", "CONSUL_NAMESPACE", "a namespace"),
            partition=header_token(env.get("CONSUL_PARTITION") or "", "CONSUL_PARTITION", "a partition"),
        )
        settings.check_files()
        return settings

    def at(self, address: str) -> ConsulSettings:
        """The same credentials for another address (a bare host:port keeps this scheme)."""
        return replace(self, address=normalise_address(address, self.https))

    @property
    def https(self) -> bool:
        return urlparse(self.address).scheme == "https"

    @property
    def tls(self) -> ClientTls:
        return ClientTls("Consul", "CONSUL_", self.https, self.verify, "CONSUL_HTTP_SSL_VERIFY=false",
                         self.cacert, self.capath, self.client_cert, self.client_key, self.tls_server_name)

    @property
    def tls_files(self) -> dict[str, str]:
        """The TLS files given, by the variable that names each."""
        return self.tls.files

    def check_files(self) -> None:
        """Every file named exists (one line naming the variable and the path otherwise)."""
        self.tls.check_files()

    def headers(self) -> dict[str, str]:
        out = {"X-Consul-Token": self.token} if self.token else {}
        if self.namespace:
            out["X-Consul-Namespace"] = self.namespace
        if self.partition:
            out["X-Consul-Partition"] = self.partition
        return out

    def ssl_context(self) -> ssl.SSLContext | bool:
        """What httpx's ``verify`` gets (see ClientTls.ssl_context)."""
        return self.tls.ssl_context()

    def describe_tls(self) -> str:
        """For status and doctor: whether the agent's certificate is verified, and against what."""
        return self.tls.describe()


def _address(env: Mapping[str, str], address: str | None) -> tuple[str, str]:
    """The address to use and where it came from: the flag, else CONSUL_HTTP_ADDR, else the
    default. A variable that is set but empty is an error, not the default: it is a mistake
    that would otherwise send the command to a local agent nobody asked for."""
    if address is not None:
        return address, "--consul"
    if "CONSUL_HTTP_ADDR" in env:
        return env["CONSUL_HTTP_ADDR"], "CONSUL_HTTP_ADDR"
    return DEFAULT_CONSUL, "the default Consul address"


def _token(env: Mapping[str, str], token_file: str | None) -> tuple[str | None, str | None]:
    """The token and where it came from. As ``consul``: a token file (flag, then variable)
    wins over CONSUL_HTTP_TOKEN; an unreadable or empty file is an error, not a fallback.
    Whitespace around a token is stripped; a token that cannot be a header is refused."""
    path, source = (token_file, "--consul-token-file") if token_file else \
        (env.get("CONSUL_HTTP_TOKEN_FILE") or None, "CONSUL_HTTP_TOKEN_FILE")
    if path:
        return file_token(path, source), f"token file {path}"
    token = env_token(env, "CONSUL_HTTP_TOKEN")
    return token, ("CONSUL_HTTP_TOKEN" if token else None)
