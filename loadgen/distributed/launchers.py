"""Who starts the workers: :class:`LocalLauncher` runs them as processes of this machine (the
unit tests, and the protocol without Nomad); :class:`loadgen.distributed.nomad_jobs.NomadLauncher`
dispatches them as Nomad jobs. Both answer the same three questions."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import IO, Protocol

from loadgen.distributed.protocol import TOKEN_ENV

__all__ = ["Launcher", "LocalLauncher", "worker_argv"]


class Launcher(Protocol):
    def launch(self, coordinator: str, token: str, workers: int, lease_s: float) -> None:
        """Start ``workers`` workers reporting to ``coordinator``."""

    def ended(self) -> dict[int, str]:
        """Workers that have ended (or can never start), by index, with why."""

    def placement_problem(self) -> str | None:
        """Why workers have not started yet, when the launcher knows (no capacity, ...)."""

    def stop(self) -> list[str]:
        """Stop every worker and remove what was started; the warnings of what could not be."""


def worker_argv(coordinator: str, index: int, workers: int, lease_s: float) -> list[str]:
    return ["worker", "--coordinator", coordinator, "--index", str(index), "--of", str(workers),
            "--lease", f"{lease_s:g}"]


class LocalLauncher:
    """Workers as child processes (``python -m loadgen.cli worker``), the token in their environment."""

    def __init__(self, log_dir: Path | None = None) -> None:
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []

    def launch(self, coordinator: str, token: str, workers: int, lease_s: float) -> None:
        env = {**os.environ, TOKEN_ENV: token}
        for k in range(workers):
            out: IO[bytes] | int = subprocess.DEVNULL
            if self.log_dir is not None:
                log = (self.log_dir / f"worker{k}.log").open("wb")
                self._logs.append(log)
                out = log
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "loadgen.cli", *worker_argv(coordinator, k, workers, lease_s)],
                env=env, stdout=out, stderr=out, start_new_session=True))  # Ctrl-C is the coordinator's to pass on

    def ended(self) -> dict[int, str]:
        return {k: f"its process exited with code {p.returncode}" for k, p in enumerate(self.procs)
                if p.poll() is not None}

    def placement_problem(self) -> str | None:
        return None

    def kill(self, index: int) -> None:
        """Kill one worker outright (SIGKILL: it cannot report), as a lost machine would be."""
        self.procs[index].kill()
        self.procs[index].wait()

    def stop(self) -> list[str]:
        warnings = []
        for p in self.procs:
            with contextlib.suppress(ProcessLookupError):
                if p.poll() is None:
                    p.terminate()
        for k, p in enumerate(self.procs):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                warnings.append(f"worker {k} did not stop within 10s of SIGTERM and was killed")
        for log in self._logs:
            log.close()
        return warnings
