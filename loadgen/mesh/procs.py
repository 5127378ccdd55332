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
# on every read) plus the process's start in jiffies: it moves whenever the wall clock is stepped
# (a VM resumed, an NTP step), by a whole second even without one. A live sidecar was now and then
# taken for one that had exited ("the Envoy sidecar of service-a exited", with an empty log: the
# `up` that thought so stopped it before it wrote a line). So a process is known by its start in
# clock ticks since boot (/proc/<pid>/stat), which no clock step moves; create_time, with this
# slack, only where /proc is not there or a record has no ticks (written by an older loadgen).
START_SLACK_S = 1.5
_HAS_PROC = Path("/proc/self/stat").exists()
# The processes this one started: for them the kernel's own answer (waitpid) says whether they
# ended, and how.
_CHILDREN: dict[int, tuple[subprocess.Popen, int | None]] = {}  # pid -> (process, its start ticks)

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
    start_ticks: int | None = None  # its start in clock ticks since boot (see START_SLACK_S)

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
    ticks = start_ticks(proc.pid)
    _CHILDREN[proc.pid] = (proc, ticks)
    return ProcRecord(name=name, pid=proc.pid, create_time=psutil.Process(proc.pid).create_time(), argv=argv,
                      log=str(log), port=port, start_ticks=ticks)


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start in clock ticks since boot) from /proc/<pid>/stat; None when it is gone."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2:].split()  # after the command name, which may hold spaces
    return fields[0].decode(), int(fields[19])  # fields 3 and 22 of proc(5)


def start_ticks(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot (None without /proc)."""
    stat = _proc_stat(pid) if _HAS_PROC else None
    return stat[1] if stat else None


def is_running(pid: int, create_time: float, ticks: int | None) -> bool:
    """``pid`` is still the process recorded with this start (not a recycled pid) and has not
    exited (a zombie has)."""
    if ticks is not None and _HAS_PROC:
        stat = _proc_stat(pid)
        return stat is not None and stat[1] == ticks and stat[0] != "Z"
    try:
        p = psutil.Process(pid)
        return abs(p.create_time() - create_time) < START_SLACK_S and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def same_start(a: tuple[float, int | None], b: tuple[float, int | None]) -> bool:
    """Two records of one pid's start, (create_time, ticks), name the same process."""
    if a[1] is not None and b[1] is not None:
        return a[1] == b[1]
    return abs(a[0] - b[0]) < START_SLACK_S


def _child(rec: ProcRecord) -> subprocess.Popen | None:
    """The process of ``rec`` if this one started it (its pid cannot be reused before we reap it)."""
    child, ticks = _CHILDREN.get(rec.pid, (None, None))
    return child if child is not None and rec.start_ticks == ticks else None


def alive(rec: ProcRecord) -> bool:
    child = _child(rec)
    if child is not None:
        return child.poll() is None
    return is_running(rec.pid, rec.create_time, rec.start_ticks)


def how_it_ended(rec: ProcRecord) -> str:
    """"exit code 1", "killed by SIGKILL", for a process this one started; "" otherwise."""
    child = _child(rec)
    code = None if child is None else child.poll()
    if code is None:
        return ""
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


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
            _reap(rec)
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        kill(signal.SIGKILL)
    for _ in range(100):
        if not alive(rec):
            break
        time.sleep(0.05)
    _reap(rec)


def _reap(rec: ProcRecord) -> None:
    # When the process is our own child (same command started and stops it) collect it.
    child = _child(rec)
    if child is not None:
        child.poll()  # through Popen, so it keeps the exit status (how_it_ended)
        return
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(rec.pid, os.WNOHANG)


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
