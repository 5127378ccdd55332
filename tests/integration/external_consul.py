"""A Consul dev agent that a test, not loadgen, starts and stops: the user's own agent, for the
tests of `--consul ADDR` (loadgen must use it and leave it as it found it)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from loadgen.mesh import toolchain


@contextmanager
def consul_agent(tmp_path: Path, ports: dict[str, int], connect: bool = True) -> Iterator[str]:
    """Start the agent on ``ports`` (keep them apart from the dev agent's 8500...), wait for its
    leader, yield its HTTP address (host:port) and stop it afterwards."""
    cfg = tmp_path / "agent.hcl"
    listed = ", ".join(f"{k} = {v}" for k, v in ports.items())
    cfg.write_text(f"ports {{ {listed} }}\nconnect {{ enabled = {'true' if connect else 'false'} }}\n")
    address = f"127.0.0.1:{ports['http']}"
    with (tmp_path / "consul.log").open("wb") as log:
        agent = subprocess.Popen([str(toolchain.require("consul")), "agent", "-dev", "-bind", "127.0.0.1",
                                  "-client", "127.0.0.1", "-config-file", str(cfg)],
                                 stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while True:
                assert agent.poll() is None, (tmp_path / "consul.log").read_text()[-2000:]
                try:
                    if httpx.get(f"http://{address}/v1/status/leader", timeout=1.0).json():
                        break
                except (httpx.HTTPError, ValueError):
                    pass
                assert time.monotonic() < deadline, "the test's Consul agent did not start"
                time.sleep(0.2)
            yield address
        finally:
            agent.terminate()
            agent.wait(timeout=30)
