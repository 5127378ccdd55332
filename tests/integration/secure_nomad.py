"""A second Nomad agent, with ACLs and TLS on, for `--nomad-workers`' secure path.

Single node (server + client, raw_exec) on 127.0.0.1:4656-4658, beside the ports of the local
agent the nomad runtime runs (4646-4648). Its certificates are made on the spot by the pinned
nomad's own `nomad tls ca create` / `nomad tls cert create` (a CA, the server's certificate
naming server.global.nomad, localhost and 127.0.0.1, and a CLI client certificate); HTTPS and
RPC use TLS and the agent verifies every HTTPS client's certificate; raw_exec is on, and the
docker driver (when an engine answers) keeps its images. ACLs are bootstrapped
through the API; tokens are made from policy files through the API as well. Nothing here
prints a token.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from loadgen.mesh.nomad_api import NomadClient
from loadgen.mesh.nomad_settings import NomadSettings

PORTS = (4656, 4657, 4658)
ADDRESS = f"https://127.0.0.1:{PORTS[0]}"
READY_TIMEOUT_S = 60.0


def _agent_hcl(root: Path) -> str:
    return f"""
datacenter = "dc1"
name = "loadgen-nomad-secure"
bind_addr = "127.0.0.1"
data_dir = "{root}/data"
disable_update_check = true
advertise {{
  http = "127.0.0.1"
  rpc  = "127.0.0.1"
  serf = "127.0.0.1"
}}
ports {{
  http = {PORTS[0]}
  rpc  = {PORTS[1]}
  serf = {PORTS[2]}
}}
server {{
  enabled          = true
  bootstrap_expect = 1
}}
client {{
  enabled           = true
  network_interface = "lo"
  options = {{
    "fingerprint.denylist" = "env_aws,env_gce,env_azure,env_digitalocean"
  }}
}}
# Not joined to the mesh's Consul: the workers need no service registration.
consul {{
  auto_advertise   = false
  server_auto_join = false
  client_auto_join = false
}}
acl {{
  enabled = true
  # So that a test can hold an expired token without waiting a minute (the default floor).
  token_min_expiration_ttl = "1s"
}}
tls {{
  http                   = true
  rpc                    = true
  ca_file                = "{root}/nomad-agent-ca.pem"
  cert_file              = "{root}/global-server-nomad.pem"
  key_file               = "{root}/global-server-nomad-key.pem"
  verify_server_hostname = true
  verify_https_client    = true
}}
plugin "raw_exec" {{
  config {{
    enabled = true
  }}
}}
# --nomad-driver docker: the loadgen image is local only, so Nomad must not garbage-collect it.
plugin "docker" {{
  config {{
    gc {{
      image = false
    }}
  }}
}}
"""


@dataclass
class SecureNomad:
    root: Path
    proc: subprocess.Popen[bytes]
    management: str = field(default="", repr=False)

    def env(self, token: str | None) -> dict[str, str]:
        """The nomad CLI's environment for this agent (NOMAD_TOKEN only when ``token``)."""
        out = {"NOMAD_ADDR": ADDRESS, "NOMAD_CACERT": str(self.root / "nomad-agent-ca.pem"),
               "NOMAD_CLIENT_CERT": str(self.root / "global-cli-nomad.pem"),
               "NOMAD_CLIENT_KEY": str(self.root / "global-cli-nomad-key.pem")}
        if token:
            out["NOMAD_TOKEN"] = token
        return out

    def client(self, token: str | None = None) -> NomadClient:
        """A client with ``token`` (default: the management token)."""
        return NomadClient(settings=NomadSettings.from_env(self.env(token or self.management)))

    def token(self, policy_file: Path, ttl: str | None = None) -> str:
        """A client token holding only the policy in ``policy_file`` (with an expiry ``ttl``)."""
        name = policy_file.name.removesuffix(".policy.hcl")
        body: dict[str, Any] = {"Name": name, "Type": "client", "Policies": [name]}
        if ttl:
            body["ExpirationTTL"] = ttl
        with self.client() as nomad:
            nomad._request("POST", f"/v1/acl/policy/{name}", json={"Name": name, "Rules": policy_file.read_text()})
            return str(nomad._request("POST", "/v1/acl/token", json=body)["SecretID"])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        # raw_exec tasks outlive their agent: anything still running in its data dir goes too.
        for p in psutil.process_iter(["cwd"]):
            with contextlib.suppress(psutil.Error):
                if (p.info["cwd"] or "").startswith(str(self.root) + "/"):
                    p.kill()
        _remove_containers(self.root / "data" / "alloc")
        with open("/proc/mounts") as fh:  # each task's secrets dir is a tmpfs
            mounts = [line.split()[1] for line in fh if line.split()[1].startswith(str(self.root) + "/")]
        for mount in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


def _remove_containers(alloc_dir: Path) -> None:
    """The docker driver removes a task's container when it exits; one an agent stopped mid-way
    left is removed here, so that no later test finds a Nomad container it did not start."""
    allocs = {p.name for p in alloc_dir.iterdir()} if alloc_dir.is_dir() else set()
    if not allocs:
        return
    from loadgen.errors import LoadgenError
    from loadgen.mesh.images import docker_client

    with contextlib.suppress(LoadgenError):
        client = docker_client()
        for box in client.containers.list(all=True, filters={"label": "com.hashicorp.nomad.alloc_id"}):
            if box.labels.get("com.hashicorp.nomad.alloc_id") in allocs:
                box.remove(force=True)


def start_secure_nomad(nomad_bin: Path) -> SecureNomad:
    """Certificates, the agent, its client node ready with raw_exec, ACLs bootstrapped."""
    # A short directory: the client makes unix sockets under each allocation's directory.
    root = Path(tempfile.mkdtemp(prefix="lgns-", dir="/tmp"))
    tls = [("tls", "ca", "create", "-days", "1"), ("tls", "cert", "create", "-server", "-days", "1"),
           ("tls", "cert", "create", "-cli", "-days", "1")]
    for args in tls:
        subprocess.run([str(nomad_bin), *args], cwd=root, check=True, capture_output=True)
    (root / "agent.hcl").write_text(_agent_hcl(root))
    log = (root / "agent.log").open("wb")
    proc = subprocess.Popen([str(nomad_bin), "agent", "-config", str(root / "agent.hcl")], cwd=root, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    agent = SecureNomad(root, proc)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        with NomadClient(settings=NomadSettings.from_env(agent.env(None))) as anonymous:
            while not anonymous.reachable():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the secure Nomad agent did not come up: {_tail(root / 'agent.log')}")
                time.sleep(0.2)
            agent.management = str(anonymous._request("POST", "/v1/acl/bootstrap")["SecretID"])
        with agent.client() as nomad:
            while not _raw_exec_ready(nomad):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the secure Nomad agent's client is not ready: {_tail(root / 'agent.log')}")
                time.sleep(0.2)
    except BaseException:
        agent.stop()
        raise
    return agent


def _raw_exec_ready(nomad: NomadClient) -> bool:
    return "raw_exec" in healthy_drivers(nomad)


def healthy_drivers(nomad: NomadClient) -> set[str]:
    """The task drivers the agent's (ready) client node has healthy."""
    nodes = nomad.nodes()
    node = (nomad.node(nodes[0]["ID"]) or {}) if nodes else {}
    if node.get("Status") != "ready":
        return set()
    return {name for name, d in (node.get("Drivers") or {}).items() if d.get("Healthy")}


def _tail(log: Path) -> str:
    return " | ".join(log.read_text(errors="replace").splitlines()[-5:])


def jobs_left(agent: SecureNomad, prefix: str) -> list[str]:
    with agent.client() as nomad:
        return [j["ID"] for j in nomad.jobs(prefix=prefix)]


def token_rejected(agent: SecureNomad, token: str) -> bool:
    """Nomad no longer accepts ``token``: it has expired. (Asked with a parse, as the launcher's first
    call: Nomad 1.6 still shows an expired token at /v1/acl/token/self.)"""
    with agent.client() as nomad:
        resp = nomad._http.post("/v1/jobs/parse", headers={"X-Nomad-Token": token}, json={"JobHCL": ""})
    return "token expired" in resp.text.lower()  # HTTP 500, "failed to resolve ACL token: ACL token expired"
