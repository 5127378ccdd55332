"""The Nomad agent loadgen runs, beside :mod:`loadgen.mesh.consul_agent`: its life (start,
readiness, what a lost run left behind) apart from the jobs run on it.

A single-node agent (nomad/conf/agent.hcl: server + client, bound to 127.0.0.1) started for a
run directory, with a data dir of its own (:func:`nomad_state_dir`). Two users share it and its
client (:func:`agent_client`): the nomad runtime, which runs the mesh's services as jobs on it,
and ``--nomad-workers`` (loadgen/distributed/nomad_jobs.py), which dispatches load workers to
whatever Nomad the environment names -- this agent when nothing else is named.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil

from loadgen.errors import EnvironmentProblem, LoadgenError, UnreachableError
from loadgen.interrupts import signals_held
from loadgen.mesh import bridge, procs, toolchain
from loadgen.mesh.consul_api import ConsulClient
from loadgen.mesh.nomad_api import DEFAULT_NOMAD, NomadClient
from loadgen.mesh.secure import SecureFiles, issue_nomad_token, write_nomad_config
from loadgen.mesh.state import MeshState, RunDir
from loadgen.paths import project_root

__all__ = ["CNI_PLUGINS", "NOMAD_PORTS", "NOMAD_STATE_ROOT", "NomadAgent", "agent_client", "networking_problems",
           "nomad_dir", "nomad_state_dir"]

NOMAD_PORTS = (4646, 4647, 4648)
NOMAD_STATE_ROOT = Path("/run/loadgen-nomad")
CNI_PLUGINS = ("bridge", "host-local", "loopback", "portmap", "firewall")
READY_TIMEOUT_S = 60.0

Progress = Callable[[str], None]


def nomad_dir() -> Path:
    return project_root() / "nomad"


def agent_client(timeout: float = 10.0) -> NomadClient:
    """A client of the agent loadgen runs (127.0.0.1:4646, whatever NOMAD_ADDR says: the
    runtime's agent is its own, never the user's)."""
    return NomadClient(DEFAULT_NOMAD, timeout=timeout)


def nomad_state_dir(run_path: Path) -> Path:
    """Nomad's data_dir for a run directory: short, because each allocation gets unix sockets
    (alloc/tmp/consul_grpc.sock) and Linux limits their paths to 107 bytes -- a run directory
    under a long home or pytest's tmp would not fit."""
    digest = hashlib.sha256(str(run_path.resolve()).encode()).hexdigest()[:10]
    return NOMAD_STATE_ROOT / digest


def networking_problems() -> list[str]:
    """What keeps Nomad's bridge networking (and so Connect) from working here, each with its fix."""
    problems = []
    if os.geteuid() != 0:
        problems.append(
            "the nomad runtime needs root: Connect needs Nomad's bridge networking, whose CNI plugins create "
            "network namespaces, veth pairs and iptables rules (run as root, or use --runtime process)"
        )
    cni = Path("/usr/lib/cni")
    missing = [p for p in CNI_PLUGINS if not (cni / p).exists()]
    if missing:
        problems.append(f"CNI plugins missing from {cni}: {', '.join(missing)} "
                        "(apt-get install containernetworking-plugins)")
    for tool, package in (("iptables", "iptables"), ("ip", "iproute2")):
        if shutil.which(tool) is None:
            problems.append(f"`{tool}` is missing (apt-get install {package})")
    return problems


class NomadAgent:
    """The agent of one run directory: started (or reused) by :meth:`ensure`, its leftovers
    cleaned by :meth:`reap_orphans`, :meth:`known_allocs` and :meth:`clean_data_dir`."""

    def __init__(self, run: RunDir, driver: str = "raw_exec") -> None:
        self.run = run
        self.driver = driver  # the task driver the client must have healthy before the agent is ready
        self.agent_hcl = nomad_dir() / "conf" / "agent.hcl"
        self.bridge = bridge.read_spec(self.agent_hcl)
        self.data_dir = run.path / "nomad"
        self.state_dir = nomad_state_dir(run.path)

    @contextlib.contextmanager
    def ensure(self, state: MeshState, consul: ConsulClient, grpc: str, consul_bin: Path, say: Progress,
               plugin_config: dict[str, Any] | None = None) -> Iterator[NomadClient]:
        """A client of the agent: the one this run started, still running, or one started now
        (recorded in ``state``). ``plugin_config``: the agent's ``plugin`` block (task drivers)."""
        client = agent_client()
        try:
            rec = state.processes.get("nomad")
            if rec and procs.alive(rec) and client.reachable():
                say(f"reusing the Nomad agent (pid {rec.pid})")
            else:
                if client.reachable():
                    raise EnvironmentProblem(f"a Nomad agent that loadgen did not start answers at {client.address}; "
                                             "stop it first (the nomad runtime runs its own, bound to 127.0.0.1)")
                self.start(state, consul, grpc, consul_bin, client, say, plugin_config)
            yield client
        finally:
            client.close()

    def start(self, state: MeshState, consul: ConsulClient, grpc: str, consul_bin: Path, client: NomadClient,
              say: Progress, plugin_config: dict[str, Any] | None = None) -> None:
        # A fresh data dir: an old one would bring back jobs and allocations of a lost run.
        self.reap_orphans(say)
        lost = self.known_allocs()
        bridge.remove_leftover_rules(self.bridge, lost)
        bridge.remove_namespaces(lost)
        self.clean_data_dir()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # Nomad runs `consul connect envoy -bootstrap` itself, so consul must be on its PATH.
        bin_dir = self.data_dir / "bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        (bin_dir / "consul").symlink_to(Path(str(consul_bin)).resolve())
        local = self.data_dir / "local.json"
        config: dict[str, Any] = {"data_dir": str(self.state_dir)}
        extra: list[str] = []
        if state.secure:
            # HTTPS and gRPC TLS with the mesh's CA and a Consul token of Nomad's own, in a 0600
            # file of secure/ (never in local.json, which is not private). Nomad's ACLs stay off.
            files = SecureFiles(self.run.path)
            issue_nomad_token(files, consul)
            extra = ["-config", str(write_nomad_config(files, grpc))]
            say(f"Nomad talks to Consul over TLS with a token of its own ({files.nomad_config}); "
                "Nomad's own ACLs are off")
        else:
            config["consul"] = {"address": consul.address.split("://", 1)[-1], "grpc_address": grpc}
        if plugin_config:
            config["plugin"] = plugin_config
        local.write_text(json.dumps(config))
        argv = [str(toolchain.require("nomad")), "agent", "-config", str(self.agent_hcl), "-config", str(local), *extra]
        say("starting the Nomad agent (server + client)")
        with signals_held():  # started and recorded, or neither: `down` must know what to stop
            rec = procs.spawn("nomad", argv, self.run.log("nomad"),
                              {"PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"}, cwd=self.data_dir,
                              port=NOMAD_PORTS[0])
            state.processes["nomad"] = rec
            self.run.save(state)
        deadline = time.monotonic() + READY_TIMEOUT_S
        problem = "no answer"
        while time.monotonic() < deadline:
            if not procs.alive(rec):
                raise UnreachableError("the Nomad agent exited during start-up", procs.tail(rec.log))
            with contextlib.suppress(LoadgenError):
                problem = self.node_problem(client)
                if problem is None:
                    say(f"Nomad agent up (pid {rec.pid}); its client is ready with {self.driver} and bridge networking")
                    return
            time.sleep(0.3)
        raise UnreachableError(f"the Nomad agent is not ready after {READY_TIMEOUT_S:.0f}s: {problem}",
                               procs.tail(rec.log))

    def node_problem(self, client: NomadClient) -> str | None:
        """Why the agent's client node cannot run the jobs yet (None when it can)."""
        if not client.leader():
            return "no leader elected"
        nodes = client.nodes()
        if not nodes:
            return "its client has not registered"
        node = client.node(nodes[0]["ID"]) or {}
        if node.get("Status") != "ready":
            return f"its client node is {node.get('Status')}"
        driver = (node.get("Drivers") or {}).get(self.driver) or {}
        if not driver.get("Healthy"):
            return f"the {self.driver} driver is not healthy ({driver.get('HealthDescription') or 'not detected'})"
        if not any(n.get("Mode") == "bridge" for n in (node.get("NodeResources") or {}).get("Networks") or []):
            return "bridge networking is not available (bridge kernel module?)"
        if "mesh" not in (node.get("HostNetworks") or {}):
            return f"host network 'mesh' (bridge {self.bridge.name}) was not fingerprinted"
        return None

    def reap_orphans(self, say: Progress) -> None:
        """Tasks outlive a Nomad agent that died; stop any still running from our data dir."""
        root = str(self.state_dir) + "/"
        for p in psutil.process_iter(["pid", "name", "cwd", "cmdline"]):
            with contextlib.suppress(psutil.Error):
                # Tasks run in their task directory; Nomad's executors and loggers name it in
                # their arguments. Anything else (a user's `tail -f` on a log) is left alone.
                in_task_dir = (p.info["cwd"] or "").startswith(root)
                helper = (p.info["name"] or "").startswith(("nomad", "envoy", "python")) and any(
                    root in a for a in p.info["cmdline"] or [])
                if in_task_dir or helper:
                    p.kill()
                    say(f"stopped leftover task process {p.info['pid']} ({p.info['name']})")

    def known_allocs(self) -> list[str]:
        """Every allocation our agent ran (its data dir keeps a directory per allocation)."""
        alloc_dir = self.state_dir / "alloc"
        return [p.name for p in alloc_dir.iterdir()] if alloc_dir.is_dir() else []

    def clean_data_dir(self) -> None:
        for path in (self.state_dir, self.data_dir):
            if not path.exists():
                continue
            # Nomad mounts each task's secrets dir (tmpfs); unmount what an unclean stop left.
            with open("/proc/mounts") as fh:
                mounts = [line.split()[1] for line in fh if line.split()[1].startswith(str(path) + "/")]
            for mount in sorted(mounts, key=len, reverse=True):
                subprocess.run(["umount", "-l", mount], capture_output=True)
            shutil.rmtree(path, ignore_errors=True)
