"""How to reach a Nomad agent: address, ACL token and TLS, read the way the ``nomad`` CLI reads them.

The CLI's environment (``api.DefaultConfig`` of Nomad 1.6) with its precedence: an address
given by loadgen (the agent the nomad runtime starts) beats NOMAD_ADDR, a variable beats the
default:

=========================  =====================================================
variable                   meaning
=========================  =====================================================
NOMAD_ADDR                 ``[http|https://]host:port`` (default http://127.0.0.1:4646)
NOMAD_TOKEN                ACL token, sent as X-Nomad-Token (never a flag: argv is public)
NOMAD_CACERT               CA bundle that signs the agent's certificate
NOMAD_CAPATH               directory of CA certificates
NOMAD_CLIENT_CERT/KEY      client certificate (agents with ``verify_https_client``)
NOMAD_SKIP_VERIFY          ``true``: do not verify the agent's certificate
NOMAD_TLS_SERVER_NAME      name to verify the agent's certificate against
NOMAD_REGION               sent as ``?region=`` (only when set)
NOMAD_NAMESPACE            sent as ``?namespace=`` (only when set)
=========================  =====================================================

Where the CLI quietly ignores a NOMAD_SKIP_VERIFY it cannot parse, loadgen refuses it in one
line: a check the user thought was off (or on) is worse than an error. The token is kept out
of ``repr`` and every message; only where it came from (:attr:`NomadSettings.token_source`)
is said.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import urlparse

from loadgen.errors import LoadgenError
from loadgen.mesh.credentials import env_token
from loadgen.mesh.tls_client import ClientTls
from loadgen.url_userinfo import refuse_userinfo

DEFAULT_NOMAD = "http://127.0.0.1:4646"
_FALSE = {"0", "false", "f", "no", "off"}
_TRUE = {"1", "true", "t", "yes", "on"}


def normalise_address(address: str, source: str = "the Nomad address") -> str:
    """``host:port`` -> ``http://host:port`` (the nomad CLI's default scheme); a URL is kept.
    ``source`` (where it came from) is what a refusal names."""
    address = address.strip()
    if not address:
        raise LoadgenError(f"{source} is empty: give [http|https://]host:port, or unset it for {DEFAULT_NOMAD}")
    refuse_userinfo(address, source, "a token goes in NOMAD_TOKEN")
    if address.startswith("unix://"):
        raise LoadgenError(f"Nomad address {address}: unix sockets are not supported; give host:port")
    if "://" not in address:
        address = "http://" + address
    parsed = urlparse(address)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise LoadgenError(f"Nomad address {address!r} is not [http|https://]host:port")
    return address.rstrip("/")


def _flag(env: Mapping[str, str], name: str) -> bool | None:
    value = env.get(name, "").strip().lower()
    if not value:
        return None
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise LoadgenError(f"{name}={env[name]!r} is not a boolean (use true or false)")


@dataclass(frozen=True)
class NomadSettings:
    """Everything needed to talk to one Nomad agent. Build it with :meth:`from_env`."""

    address: str = DEFAULT_NOMAD
    token: str | None = field(default=None, repr=False)
    token_source: str | None = None  # "NOMAD_TOKEN" -- said instead of the token
    cacert: str | None = None
    capath: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    verify: bool = True
    tls_server_name: str | None = None
    region: str | None = None
    namespace: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, address: str | None = None) -> NomadSettings:
        """The settings the ``nomad`` CLI would use in ``env`` (default: this process's); an
        ``address`` given here beats NOMAD_ADDR, as the CLI's ``-address`` does."""
        env = os.environ if env is None else env
        token = env_token(env, "NOMAD_TOKEN")  # stripped as the consul CLI does; unsendable: refused
        skip = _flag(env, "NOMAD_SKIP_VERIFY")
        # A NOMAD_ADDR that is set but empty is an error, not the default (nor is it read when
        # an address is given).
        given = (address, "the Nomad address") if address is not None else \
            (env["NOMAD_ADDR"], "NOMAD_ADDR") if "NOMAD_ADDR" in env else (DEFAULT_NOMAD, "the default Nomad address")
        settings = cls(
            address=normalise_address(*given),
            token=token, token_source="NOMAD_TOKEN" if token else None,
            cacert=env.get("NOMAD_CACERT") or None, capath=env.get("NOMAD_CAPATH") or None,
            client_cert=env.get("NOMAD_CLIENT_CERT") or None, client_key=env.get("NOMAD_CLIENT_KEY") or None,
            verify=skip is not True, tls_server_name=env.get("NOMAD_TLS_SERVER_NAME") or None,
            region=env.get("NOMAD_REGION") or None, namespace=env.get("NOMAD_NAMESPACE") or None,
        )
        settings.check_files()
        return settings

    def at(self, address: str) -> NomadSettings:
        """The same credentials for another address."""
        return replace(self, address=normalise_address(address))

    @property
    def https(self) -> bool:
        return urlparse(self.address).scheme == "https"

    @property
    def tls(self) -> ClientTls:
        return ClientTls("Nomad", "NOMAD_", self.https, self.verify, "NOMAD_SKIP_VERIFY=true",
                         self.cacert, self.capath, self.client_cert, self.client_key, self.tls_server_name)

    @property
    def tls_files(self) -> dict[str, str]:
        """The TLS files given, by the variable that names each."""
        return self.tls.files

    def check_files(self) -> None:
        """Every file named exists (one line naming the variable and the path otherwise)."""
        self.tls.check_files()

    def headers(self) -> dict[str, str]:
        return {"X-Nomad-Token": self.token} if self.token else {}

    def params(self) -> dict[str, str]:
        """Query parameters every request carries (the CLI sends region and namespace so)."""
        out = {}
        if self.region:
            out["region"] = self.region
        if self.namespace:
            out["namespace"] = self.namespace
        return out

    def ssl_context(self) -> ssl.SSLContext | bool:
        """What httpx's ``verify`` gets (see ClientTls.ssl_context)."""
        return self.tls.ssl_context()

    def describe_tls(self) -> str:
        """For status and doctor: whether the agent's certificate is verified, and against what."""
        return self.tls.describe()
