"""Starting, finding and stopping the local processes of the mesh.

Each process runs in its own session (so it outlives the ``loadgen`` command that
started it and can be stopped as a group from any shell) and is identified by pid
*and* start time, so a recycled pid is never mistaken for ours.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

# psutil's create_time is boot time (/proc/stat btime, whole seconds, derived from the wall clock
# on every read) plus the process's start in jiffies: it can move by a whole second between two
# reads. With a 10 ms tolerance a live sidecar was now and then taken for one that had exited
# ("the Envoy sidecar of service-a exited", with an empty log). A recycled pid started within
# 1.5 s of the one recorded is not a practical case (pids are handed out in sequence).
START_SLACK_S = 1.5

START_MARKER = "=== loadgen started"


@dataclass
class ProcRecord:
    name: str
    pid: int
    create_time: float
    argv: list[str]
    log: str
    port: int | None = None
    container: str | None = None  # docker runtime: the container's id (pid is its init process)

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ProcRecord:
        return cls(**data)  # type: ignore[arg-type]


def spawn(
    name: str, argv: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None,
    port: int | None = None,
) -> ProcRecord:
    log.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, **(env or {})}
    with log.open("ab") as out:
        # Logs are appended across restarts; the marker lets `tail` show this run only.
        out.write(f"{START_MARKER} {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=full_env, cwd=str(cwd) if cwd else None, start_new_session=True,
        )
    create_time = psutil.Process(proc.pid).create_time()
    return ProcRecord(name=name, pid=proc.pid, create_time=create_time, argv=argv, log=str(log), port=port)


def alive(rec: ProcRecord) -> bool:
    try:
        p = psutil.Process(rec.pid)
        return abs(p.create_time() - rec.create_time) < START_SLACK_S and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def stop(rec: ProcRecord, timeout: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left after ``timeout``."""
    if not alive(rec):
        return
    try:
        pgid = os.getpgid(rec.pid)
    except ProcessLookupError:
        return
    # Only signal the group if the process leads it (we started it with its own session).
    kill = (lambda s: os.killpg(pgid, s)) if pgid == rec.pid else (lambda s: os.kill(rec.pid, s))
    with contextlib.suppress(ProcessLookupError):
        kill(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(rec):
            _reap(rec.pid)
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        kill(signal.SIGKILL)
    for _ in range(100):
        if not alive(rec):
            break
        time.sleep(0.05)
    _reap(rec.pid)


def _reap(pid: int) -> None:
    # When the process is our own child (same command started and stops it) collect it.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def tail(path: str | Path, lines: int = 15) -> str:
    try:
        data = Path(path).read_bytes()[-16384:]
    except OSError:
        return ""
    text = data.decode(errors="replace")
    if START_MARKER in text:
        text = text[text.rindex(START_MARKER):]
    # Envoy logs a long deprecation warning for each field Consul still sets; it hides the cause.
    kept = [ln for ln in text.splitlines() if "Deprecated field" not in ln]
    return "\n".join(kept[-lines:])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As the servers themselves do: connections of an earlier run lingering in
        # TIME_WAIT must not count as "in use", only a live socket bound to the port.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE or exc.errno == errno.EACCES
    return False


def port_owner_pid(port: int) -> int | None:
    """The pid listening on ``port`` on this machine, when the OS tells us."""
    with contextlib.suppress(psutil.Error):
        for conn in psutil.net_connections(kind="inet"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                return conn.pid
    return None


def port_owner(port: int) -> str | None:
    """'pid N (name)' of the process listening on ``port``, when the OS tells us."""
    pid = port_owner_pid(port)
    if pid is None:
        return None
    with contextlib.suppress(psutil.Error):
        return f"pid {pid} ({psutil.Process(pid).name()})"
    return f"pid {pid}"


def family(records: list[ProcRecord]) -> set[int]:
    """Pids of the live processes among ``records`` and all their descendants."""
    pids: set[int] = set()
    for rec in records:
        if not alive(rec):
            continue
        pids.add(rec.pid)
        with contextlib.suppress(psutil.Error):
            pids.update(child.pid for child in psutil.Process(rec.pid).children(recursive=True))
    return pids
