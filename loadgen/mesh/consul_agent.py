"""The Consul agent every runtime uses: the dev agent loadgen starts (a process in every
runtime), or one the user runs (``--consul``), and the Connect settings Envoy needs of it."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

from loadgen.errors import LoadgenError, UnreachableError
from loadgen.interrupts import signals_held
from loadgen.mesh import procs
from loadgen.mesh.consul_api import DEFAULT_CONSUL, ConsulClient
from loadgen.mesh.secure import SECURE_ADDRESS, SECURE_PORTS, SecureFiles
from loadgen.mesh.state import MeshState, RunDir
from loadgen.paths import consul_dir

# Ports the dev agent of consul/agent.hcl binds (checked before it is started).
CONSUL_DEV_PORTS = (8500, 8502, 8600, 8300, 8301, 8302)


def default_consul_answers() -> bool:
    with ConsulClient(DEFAULT_CONSUL, timeout=1.0) as c:
        return c.reachable()


def dev_agent_ports(state: MeshState, explicit: str | None) -> list[tuple[int, str]]:
    """The ports a dev agent would bind, when `up` is about to start one (none otherwise)."""
    running = state.consul_managed and "consul" in state.processes and procs.alive(state.processes["consul"])
    if explicit is None and not running and (state.secure or not default_consul_answers()):
        return [(p, "the Consul dev agent") for p in (SECURE_PORTS if state.secure else CONSUL_DEV_PORTS)]
    return []


def ensure_consul(run: RunDir, state: MeshState, explicit: str | None, consul_bin: Path,
                  say: Callable[[str], None]) -> ConsulClient:
    """A client of the agent to use: ``explicit``, the dev agent already running, any agent
    answering at the default address, or a dev agent started now (recorded in ``state``)."""
    if explicit is not None:
        client = ConsulClient(explicit)
        if not client.reachable():
            client.close()
            raise UnreachableError(f"Consul at {client.address} is unreachable (is the agent running?)")
        state.consul_address = client.address
        run.save(state)
        say(f"using Consul at {client.address}")
        return client
    files = SecureFiles(run.path) if state.secure else None

    def ours(address: str) -> ConsulClient:
        # The secure agent is talked to with the management token and its own CA.
        return ConsulClient(settings=files.settings("management")) if files else ConsulClient(address)

    rec = state.processes.get("consul")
    if rec and procs.alive(rec):
        client = ours(state.consul_address or DEFAULT_CONSUL)
        if client.reachable():
            say(f"reusing the Consul dev agent (pid {rec.pid})")
            return client
        client.close()
    if files is None:  # a secure mesh never borrows an agent it did not set up
        client = ConsulClient(DEFAULT_CONSUL)
        if client.reachable():
            state.consul_address = client.address
            run.save(state)
            say(f"reusing the Consul agent already answering at {client.address}")
            return client
        client.close()
    argv = [str(consul_bin), "agent", "-dev", "-config-file", str(consul_dir() / "agent.hcl")]
    if files is not None:
        argv += ["-config-file", str(files.prepare(consul_bin))]
        say(f"ACLs default-deny and TLS: CA, certificate and tokens in {files.dir} (owner-only)")
    client = ours(SECURE_ADDRESS if files else DEFAULT_CONSUL)
    say("starting the Consul dev agent")
    with signals_held():
        rec = procs.spawn(
            "consul", argv,
            # In the run directory: a dev agent reads ./services as persisted services, and the
            # project root's services/ holds the apps' Python.
            run.log("consul"), cwd=run.path, port=8501 if files else 8500,
        )
        state.processes["consul"] = rec
        state.consul_managed = True
        state.consul_address = client.address
        run.save(state)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not procs.alive(rec):
            raise UnreachableError("the Consul dev agent exited during start-up", procs.tail(rec.log))
        try:
            # A secure agent creates its management token just after electing itself.
            if client.leader() and (files is None or client.acl_token_self()):
                say(f"Consul dev agent up (pid {rec.pid})")
                return client
        except LoadgenError:
            pass
        time.sleep(0.2)
    raise UnreachableError("the Consul dev agent did not elect a leader (and accept loadgen's management token) "
                           "within 30s", procs.tail(rec.log))


def check_connect(consul: ConsulClient) -> str:
    """The agent must have Connect and its gRPC (xDS) port on; returns the gRPC address."""
    cfg = consul.agent_self().get("DebugConfig", {})
    if cfg.get("ConnectEnabled") is False:
        raise UnreachableError(
            f"Consul at {consul.address} has Connect disabled; enable it (connect {{ enabled = true }})"
        )
    port = cfg.get("GRPCPort") or 0
    tls_port = cfg.get("GRPCTLSPort") or 0
    host = urlparse(consul.address).hostname or "127.0.0.1"
    if port <= 0 and tls_port > 0:
        return f"https://{host}:{tls_port}"  # gRPC with TLS only (up --secure): Envoy verifies it
    if port <= 0:
        raise UnreachableError(
            f"Consul at {consul.address} has no gRPC port, which Envoy needs for xDS (ports {{ grpc = 8502 }})"
        )
    return f"{host}:{port}"
