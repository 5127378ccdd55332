"""What the runtime-parametrized tests need to do differently per runtime: how to break a part.

Everything else -- bringing stages up, canary, run, status, down -- goes through the same
`loadgen` commands, so the stage, canary and run tests are shared by every runtime.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil

from tests.integration.parts import missing


def _wait_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while _runs(pid):
        assert time.monotonic() < deadline, f"pid {pid} still runs"
        time.sleep(0.05)


def _runs(pid: int) -> bool:
    """The process still runs (a zombie does not). It can be reaped between any two calls: CI saw
    psutil.Process raise NoSuchProcess right after pid_exists said yes."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class ProcessParts:
    """The embedded default: every part is a process loadgen started."""

    name = "process"
    heals_itself = False  # a dead part stays dead until the next `loadgen up`

    def require(self) -> None:
        pass

    def stop_instance(self, loadgen, instance: str) -> None:
        pid = loadgen.state()["processes"][instance]["pid"]
        psutil.Process(pid).terminate()
        _wait_gone(pid)

    def kill_sidecar(self, loadgen, instance: str) -> int:
        """SIGKILL the instance's Envoy sidecar; returns its pid."""
        pid = loadgen.state()["processes"][f"{instance}-sidecar"]["pid"]
        os.killpg(pid, signal.SIGKILL)
        _wait_gone(pid)
        return pid

    def leftovers(self, loadgen) -> list[str]:
        return []


class DockerParts(ProcessParts):
    name = "docker"

    def require(self) -> None:
        from loadgen.errors import LoadgenError
        from loadgen.mesh.images import docker_client

        try:
            self.client = docker_client()
        except LoadgenError as exc:
            missing(exc.message)

    def _box(self, component: str):
        return self.client.containers.get(f"loadgen-{component}")

    def stop_instance(self, loadgen, instance: str) -> None:
        self._box(instance).stop(timeout=5)

    def kill_sidecar(self, loadgen, instance: str) -> int:
        box = self._box(f"{instance}-sidecar")
        pid = int(box.attrs["State"]["Pid"])
        box.kill()
        return pid

    def leftovers(self, loadgen) -> list[str]:
        boxes = self.client.containers.list(all=True, filters={"label": f"loadgen.mesh={loadgen.run_dir}"})
        return [f"container {b.name}" for b in boxes]


class NomadParts(ProcessParts):
    """Nomad runs the parts: instances are groups of the jobs in nomad/, and Nomad restarts dead tasks."""

    name = "nomad"
    heals_itself = True
    def require(self) -> None:
        from loadgen.mesh import toolchain
        from loadgen.mesh.runtime.nomad import networking_problems

        problems = ([] if toolchain.find("nomad").ok else ["nomad is missing (loadgen toolchain install)"])
        problems += networking_problems()
        if problems:
            missing(problems[0])
        self.netns_before = self._netns()

    @staticmethod
    def _netns() -> set[str]:
        path = Path("/var/run/netns")
        return {p.name for p in path.iterdir()} if path.is_dir() else set()

    @staticmethod
    def _group(instance: str) -> tuple[str, str]:
        from loadgen.mesh.runtime.nomad import job_and_group
        from loadgen.mesh.stages import load_stages

        return job_and_group(next(i for i in load_stages().get("splitter").instances if i.id == instance))

    def _alloc(self, instance: str) -> dict:
        from loadgen.mesh.nomad_api import NomadClient

        job, group = self._group(instance)
        with NomadClient() as nomad:
            running = [a for a in nomad.allocations(job) if a["TaskGroup"] == group and a["ClientStatus"] == "running"]
        assert len(running) == 1, running
        return running[0]

    def stop_instance(self, loadgen, instance: str) -> None:
        """Scale the instance's group to 0 through Nomad, and wait until its allocation has stopped."""
        import httpx

        from loadgen.mesh.nomad_api import DEFAULT_NOMAD, NomadClient

        job, group = self._group(instance)
        alloc = self._alloc(instance)
        # A job brought up a moment ago still has its deployment running, and Nomad refuses to
        # scale it until that is over: retry until it is. (Scaling is the test's own need, not
        # loadgen's: it talks to Nomad's API directly.)
        deadline = time.monotonic() + 90
        while True:
            resp = httpx.post(f"{DEFAULT_NOMAD}/v1/job/{job}/scale", timeout=10,
                              json={"Count": 0, "Target": {"Group": group}, "Message": "loadgen test: stop one subset"})
            if resp.status_code == 200:
                break
            assert "active deployment" in resp.text and time.monotonic() < deadline, resp.text
            time.sleep(0.5)
        with NomadClient() as nomad:
            deadline = time.monotonic() + 30
            while nomad.allocation(alloc["ID"])["ClientStatus"] == "running":
                assert time.monotonic() < deadline, "the scaled-down allocation still runs"
                time.sleep(0.2)

    def sidecar_pid(self, instance: str) -> int:
        alloc = self._alloc(instance)["ID"]
        for p in psutil.process_iter(["pid", "cmdline"]):
            cmd = " ".join(p.info["cmdline"] or [])
            if "envoy" in cmd and f"/alloc/{alloc}/connect-proxy-" in cmd:
                return p.info["pid"]
        raise AssertionError(f"no Envoy process for {instance} (allocation {alloc})")

    def kill_sidecar(self, loadgen, instance: str) -> int:
        pid = self.sidecar_pid(instance)
        os.kill(pid, signal.SIGKILL)
        _wait_gone(pid)
        return pid

    def leftovers(self, loadgen) -> list[str]:
        import subprocess

        out = [f"network namespace {n}" for n in self._netns() - self.netns_before]
        if subprocess.run(["ip", "link", "show", "loadgen-nomad"], capture_output=True).returncode == 0:
            out.append("bridge loadgen-nomad")
        for table in ("nat", "filter"):
            rules = subprocess.run(["iptables", "-t", table, "-S"], capture_output=True, text=True).stdout
            out += [f"iptables {table}: {r}" for r in rules.splitlines() if "10.213.77." in r]
        for p in psutil.process_iter(["pid", "cmdline"]):
            if str(loadgen.run_dir) in " ".join(p.info["cmdline"] or []):
                out.append(f"process {p.info['pid']}: {' '.join(p.info['cmdline'])[:80]}")
        return out


PARTS = {"process": ProcessParts, "docker": DockerParts, "nomad": NomadParts}
