"""``loadgen up --secure``: the local Consul agent with ACLs (default deny) and TLS only, and the
tokens each part of the mesh uses.

Everything lives in the run directory's ``secure/`` (mode 0700; every token file 0600):

- ``consul-agent-ca.pem`` and the server certificate, made by Consul's own ``consul tls ca
  create`` / ``consul tls cert create -server`` (SANs: server.dc1.consul, localhost, 127.0.0.1);
- ``agent-secure.hcl``: ACLs on, ``default_policy = "deny"``, HTTPS on 8501 and gRPC with TLS on
  8503, plain HTTP and plain gRPC off (port -1); the initial management token is generated per
  mesh and is also the agent's own token (a dev agent; a production agent gets a node identity);
- ``tokens/management`` (config entries, registrations: loadgen's writes), ``tokens/read``
  (canary, status, watchers: :data:`READ_RULES`), ``tokens/<service>`` (each sidecar: a service
  identity, least privilege), and ``acl.json`` (the accessor ids ``down`` deletes);
- on the nomad runtime, ``tokens/nomad`` (the Nomad agent's Consul token: :data:`NOMAD_RULES`)
  and ``nomad-consul.json``, the agent's ``consul`` block (HTTPS 8501 and gRPC TLS 8503 with the
  CA, that token), given to ``nomad agent`` as one more ``-config``. Nomad's own ACLs stay off.

Nothing here prints or logs a token: files are named, never their content.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from loadgen.errors import ExitCode, LoadgenError
from loadgen.mesh.consul_settings import DEFAULT_CONSUL, ConsulSettings
from loadgen.mesh.stages import Stage, load_config_entry
from loadgen.paths import consul_dir

if TYPE_CHECKING:  # the client (httpx) is the caller's: reading the settings needs no client
    from loadgen.mesh.consul_api import ConsulClient

SECURE_ADDRESS = "https://127.0.0.1:8501"
SECURE_PORTS = (8501, 8503, 8600, 8300, 8301, 8302)
READ_POLICY = "loadgen-read"
# What loadgen's read-only commands need: the chain and config entries of any service
# (service:read), intentions (intentions:read), instances (node:read) and the agent's
# checks and configuration (agent:read).
READ_RULES = """\
service_prefix "" {
  policy     = "read"
  intentions = "read"
}
node_prefix "" {
  policy = "read"
}
agent_prefix "" {
  policy = "read"
}
"""

NOMAD_POLICY = "loadgen-nomad"
# What the Nomad 1.6 agent (server + client in one) needs of Consul, from the "ACL requirements"
# comments of Nomad v1.6.3's sources (command/agent/consul/service_client.go, nomad/consul.go,
# client/consul/consul.go): agent:read (agent/self: the Consul fingerprint, its gRPC TLS port and
# Envoy versions; syncing its services and checks), node:read (catalog datacenters),
# service:write (the jobs' services, their sidecars and checks, and Nomad's own), and acl:write
# (the server derives a service-identity token for each Connect sidecar, revokes it when the
# allocation stops, and reads a job submitter's token). operator:write is only for ingress and
# terminating gateways' config entries, which the mesh has none of. acl:write lets this token
# make any token: it lives 0600 in secure/ and dies with the mesh.
NOMAD_RULES = """\
agent_prefix "" {
  policy = "read"
}
node_prefix "" {
  policy = "read"
}
service_prefix "" {
  policy = "write"
}
acl = "write"
"""


def _private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (created so, never widened)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


class SecureFiles:
    """The ``secure/`` directory of one run directory."""

    def __init__(self, run_path: Path) -> None:
        self.dir = run_path / "secure"
        self.ca = self.dir / "consul-agent-ca.pem"
        self.ca_key = self.dir / "consul-agent-ca-key.pem"
        self.cert = self.dir / "dc1-server-consul-0.pem"
        self.key = self.dir / "dc1-server-consul-0-key.pem"
        self.config = self.dir / "agent-secure.hcl"
        self.tokens = self.dir / "tokens"
        self.acl_record = self.dir / "acl.json"
        self.nomad_config = self.dir / "nomad-consul.json"

    def token_file(self, role: str) -> Path:
        return self.tokens / role

    def prepare(self, consul_bin: Path) -> Path:
        """CA, server certificate, management token and the agent's config file (made once per
        mesh; an existing set is reused). Returns the config file to add to the agent's."""
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.tokens.mkdir(mode=0o700, exist_ok=True)
        if not self.ca.exists():
            self._consul(consul_bin, "tls", "ca", "create", "-days", "30")
        if not self.cert.exists():
            self._consul(consul_bin, "tls", "cert", "create", "-server", "-dc", "dc1", "-days", "30",
                         "-additional-ipaddress", "127.0.0.1")
        os.chmod(self.ca_key, 0o600)
        os.chmod(self.key, 0o600)
        management = self.token_file("management")
        if not management.exists():
            _private(management, str(uuid.uuid4()))
        token = management.read_text().strip()
        _private(self.config, f"""\
# Written by `loadgen up --secure`; holds the management token: owner-only.
acl {{
  enabled                  = true
  default_policy           = "deny"
  down_policy              = "extend-cache"
  enable_token_persistence = false
  tokens {{
    initial_management = "{token}"
    agent              = "{token}"
  }}
}}
ports {{
  http     = -1
  https    = 8501
  grpc     = -1
  grpc_tls = 8503
}}
tls {{
  defaults {{
    ca_file         = "{self.ca}"
    cert_file       = "{self.cert}"
    key_file        = "{self.key}"
    verify_incoming = false
    verify_outgoing = true
  }}
  internal_rpc {{
    verify_server_hostname = true
  }}
}}
""")
        return self.config

    def _consul(self, consul_bin: Path, *args: str) -> None:
        proc = subprocess.run([str(consul_bin), *args], cwd=self.dir, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise LoadgenError(f"consul {' '.join(args[:3])} failed: {(proc.stderr or proc.stdout).strip()[:300]}",
                               ExitCode.ENVIRONMENT)

    def settings(self, role: str = "management") -> ConsulSettings:
        """How loadgen talks to the secure agent as ``role`` (management, read, or a service)."""
        path = self.token_file(role)
        token = path.read_text().strip() if path.exists() else None
        return ConsulSettings(address=SECURE_ADDRESS, token=token, token_source=f"token file {path}" if token else None,
                              cacert=str(self.ca))

    def save_acl(self, record: dict[str, list[str]]) -> None:
        _private(self.acl_record, json.dumps(record))

    def load_acl(self) -> dict[str, list[str]]:
        try:
            return json.loads(self.acl_record.read_text())
        except (OSError, ValueError):
            return {"tokens": [], "policies": []}


def issue_tokens(files: SecureFiles, consul: ConsulClient, services: list[str]) -> None:
    """The read token and one service-identity token per service (made with the management
    token; their accessor ids recorded for ``down``)."""
    record = files.load_acl()
    if not files.token_file("read").exists():
        policy = consul.acl_policy_by_name(READ_POLICY) or consul.acl_create_policy(
            READ_POLICY, READ_RULES, "loadgen: what its read-only commands need")
        if policy["ID"] not in record["policies"]:
            record["policies"].append(policy["ID"])
        token = consul.acl_create_token("loadgen read-only (canary, status, watchers)", policies=[policy["ID"]])
        record["tokens"].append(token["AccessorID"])
        _private(files.token_file("read"), token["SecretID"])
    for service in services:
        if files.token_file(service).exists():
            continue
        token = consul.acl_create_token(f"loadgen sidecar of {service}", service_identities=[service])
        record["tokens"].append(token["AccessorID"])
        _private(files.token_file(service), token["SecretID"])
    files.save_acl(record)


def issue_nomad_token(files: SecureFiles, consul: ConsulClient) -> None:
    """The Nomad agent's Consul token (policy :data:`NOMAD_POLICY`), made once per mesh with the
    management token and recorded for ``down``."""
    if files.token_file("nomad").exists():
        return
    record = files.load_acl()
    policy = consul.acl_policy_by_name(NOMAD_POLICY) or consul.acl_create_policy(
        NOMAD_POLICY, NOMAD_RULES, "loadgen: the Nomad agent of the nomad runtime (Connect service identities)")
    if policy["ID"] not in record["policies"]:
        record["policies"].append(policy["ID"])
    token = consul.acl_create_token("loadgen Nomad agent (registrations, sidecar service identities)",
                                    policies=[policy["ID"]])
    record["tokens"].append(token["AccessorID"])
    _private(files.token_file("nomad"), token["SecretID"])
    files.save_acl(record)


def write_nomad_config(files: SecureFiles, grpc: str) -> Path:
    """The Nomad agent's ``consul`` block for the secure agent (0600: it holds Nomad's token);
    ``grpc`` is the agent's gRPC TLS address (``https://127.0.0.1:8503``).

    - ``ssl``/``ca_file``: HTTPS to 127.0.0.1:8501, verified against the mesh's CA; Nomad passes
      them on to ``consul connect envoy`` (``-ca-file``, CONSUL_HTTP_SSL) for each sidecar;
    - ``grpc_address``/``grpc_ca_file``: the gRPC TLS port, where each allocation's Consul socket
      proxy leads; with the CA given, ``consul connect envoy`` speaks TLS through that socket;
    - ``token``: a Consul token makes Nomad derive a service-identity token per sidecar;
    - ``allow_unauthenticated = false``: a job is accepted only with a Consul token that may
      write its services (loadgen submits each job with its service's own token), so reaching
      Nomad's API is not enough to get service identities;
    - ``share_ssl = false``: there are no Connect native tasks to hand the TLS settings to.
    """
    config = {"consul": {
        "address": SECURE_ADDRESS.split("://", 1)[1],
        "ssl": True,
        "verify_ssl": True,
        "ca_file": str(files.ca),
        "grpc_address": grpc.split("://", 1)[-1],
        "grpc_ca_file": str(files.ca),
        "token": files.token_file("nomad").read_text().strip(),
        "allow_unauthenticated": False,
        "share_ssl": False,
    }}
    _private(files.nomad_config, json.dumps(config, indent=2))
    return files.nomad_config


NOMAD_SI_PREFIX = "_nomad_si "  # how Nomad 1.6 describes the service-identity tokens it derives


def nomad_si_tokens(consul: ConsulClient) -> list[str]:
    """Accessor ids of the service-identity tokens Nomad derived for Connect sidecars and has
    not revoked yet (it revokes each when its allocation stops)."""
    tokens = consul.acl_tokens()
    return [t["AccessorID"] for t in tokens if str(t.get("Description", "")).startswith(NOMAD_SI_PREFIX)]


def mesh_settings(run_path: Path, secure: bool, address: str | None, role: str = "management") -> ConsulSettings:
    """How to reach the mesh's Consul: the secure agent's files, or the environment's at
    ``address`` (the plain dev agent, or the agent given with --consul)."""
    if secure:
        return SecureFiles(run_path).settings(role)
    return ConsulSettings.from_env(address=address or DEFAULT_CONSUL)


ALLOW_ENTRY = "intentions/allow-service-a-to-service-b.hcl"


def secure_stage(stage: Stage) -> Stage:
    """The stage as a secure mesh runs it: under default-deny, service-a -> service-b needs an
    allow intention, unless the stage writes its own (the intentions stage's deny). Its
    writes, removals and liveness all follow from the entries returned."""
    if stage.entry("service-intentions", "service-b") is not None:
        return stage
    allow = load_config_entry(consul_dir() / ALLOW_ENTRY)
    return dataclasses.replace(stage, config_entries=(allow, *stage.config_entries))


def forget_secure(run_path: Path, say: Callable[[str], None]) -> None:
    """After `down`: the CA, certificates and token files go (the agent that knew them is gone)."""
    files = SecureFiles(run_path)
    if files.dir.exists():
        shutil.rmtree(files.dir, ignore_errors=True)
        say(f"removed the CA, certificates and tokens ({files.dir})")
