"""One shift per service at a time on this machine: a lock file held while a shift runs.

The lock is keyed by the Consul address and the service, in loadgen's run directory, and held
with ``flock`` so a shift that dies (even by SIGKILL) frees it. Two machines shifting the same
service are caught by the splitter's CAS instead (the second write fails).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
from collections.abc import Iterator

from loadgen.errors import ExitCode, LoadgenError
from loadgen.paths import run_dir

__all__ = ["shift_lock"]

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


@contextlib.contextmanager
def shift_lock(consul_address: str, service: str) -> Iterator[None]:
    key = hashlib.sha256(f"{consul_address}|{service}".encode(errors="surrogatepass")).hexdigest()[:16]
    folder = run_dir() / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    # The name's own characters only where they are safe in a file name (the key tells names apart).
    path = folder / f"shift-{_SAFE.sub('_', service)[:40]}-{key}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            raise LoadgenError(f"another loadgen shift of {service} at {consul_address} is running (pid {holder}); "
                               "wait for it to finish", ExitCode.ENVIRONMENT) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)
