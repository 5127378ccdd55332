"""Workers as Nomad jobs: register (or update) nomad/loadgen-worker.nomad.hcl, a parameterized
batch job, dispatch it once per worker, watch the dispatched jobs, purge them at the end.

The Nomad is the user's: NOMAD_ADDR, NOMAD_TOKEN and the TLS variables, read as the nomad CLI
reads them (:mod:`loadgen.mesh.nomad_settings`); the agent the nomad runtime starts when none
is named. The token of the run travels as each dispatch's payload (Nomad writes it to the
task's local/token), not in meta or argv. The token Nomad needs holds
nomad/loadgen-worker.policy.hcl (tests/integration/test_nomad_workers_secure.py proves it is
enough on an agent with ACLs and TLS on).

Two task drivers, a template each: ``raw_exec`` (nomad/loadgen-worker.nomad.hcl: this checkout's
virtualenv, for the local dev agent) and ``docker`` (nomad/loadgen-worker-docker.nomad.hcl: the
loadgen image on the host network; LOADGEN_NOMAD_IMAGE names an image the cluster can pull,
else the image is built here, for a Nomad client that shares this machine's Docker engine).

A worker that Nomad cannot place (no capacity, a constraint no node meets) shows in its
dispatch's evaluation (FailedTGAllocs) or as a pending allocation: :meth:`placement_problem`
says which; the coordinator gives up after its start timeout and :meth:`stop` purges whatever
was dispatched, so nothing is left running or queued.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from loadgen.errors import LoadgenError
from loadgen.interrupts import signals_held
from loadgen.mesh.nomad_agent import nomad_dir
from loadgen.mesh.nomad_api import NomadClient
from loadgen.paths import project_root

__all__ = ["DRIVERS", "IMAGE_ENV", "JOB_ID", "NomadLauncher", "coordinator_bind", "local_worker_image"]

JOB_ID = "loadgen-worker"
# Each driver's template and parameterized job (distinct IDs: runs of both kinds at once never
# re-register each other's job between a register and a dispatch).
TEMPLATES = {"raw_exec": ("loadgen-worker.nomad.hcl", JOB_ID),
             "docker": ("loadgen-worker-docker.nomad.hcl", "loadgen-worker-docker")}
DRIVERS = tuple(TEMPLATES)
IMAGE_ENV = "LOADGEN_NOMAD_IMAGE"
WATCH_EVERY_S = 1.0  # how often the allocations are asked about (not every tick of the coordinator)
STOP_WAIT_S = 15.0  # for the workers' allocations to end after their jobs are stopped, before the purge
ENDED = ("complete", "failed", "lost")


class NomadLauncher:
    def __init__(self, client: NomadClient | None = None, job_id: str | None = None,
                 variables: dict[str, str] | None = None, driver: str = "raw_exec",
                 say: Callable[[str], None] = lambda _m: None) -> None:
        if driver not in TEMPLATES:
            raise LoadgenError(f"--nomad-driver {driver}: the workers run with {' or '.join(DRIVERS)}")
        self.template, default_id = TEMPLATES[driver]
        self.driver = driver
        self.job_id = job_id or default_id
        self.say = say
        given = {"python": sys.executable, "project": str(project_root())} if driver == "raw_exec" else {}
        self.variables = {**given, "job_id": self.job_id, **(variables or {})}
        self.client = client or NomadClient()
        self.dispatched: dict[int, str] = {}  # worker index -> dispatched job ID
        self.evals: dict[int, str] = {}
        self._allocs: dict[int, dict[str, Any]] = {}
        self._watched_at = 0.0

    def launch(self, coordinator: str, token: str, workers: int, lease_s: float) -> None:
        if self.driver == "docker" and "image" not in self.variables:
            self.variables["image"] = os.environ.get(IMAGE_ENV) or local_worker_image(self.say)
        spec = self.client.parse((nomad_dir() / self.template).read_text(), self.variables)
        self.client.register(spec)
        for k in range(workers):
            with signals_held():  # dispatched and recorded, or neither: stop() must know what to purge
                answer = self.client.dispatch(self.job_id, {"coordinator": coordinator, "index": str(k),
                                                            "of": str(workers), "lease": f"{lease_s:g}"},
                                              payload=token.encode())
                self.dispatched[k] = str(answer["DispatchedJobID"])
                self.evals[k] = str(answer.get("EvalID") or "")

    def _watch(self) -> dict[int, dict[str, Any]]:
        """The newest allocation of each dispatched job (asked at most every WATCH_EVERY_S)."""
        if time.monotonic() - self._watched_at >= WATCH_EVERY_S:
            self._watched_at = time.monotonic()
            for k, job in self.dispatched.items():
                with contextlib.suppress(LoadgenError):  # Nomad unreachable for a moment: ask again later
                    allocs = self.client.allocations(job)
                    if allocs:
                        self._allocs[k] = max(allocs, key=lambda a: a.get("CreateIndex", 0))
        return self._allocs

    def ended(self) -> dict[int, str]:
        out = {}
        for k, alloc in self._watch().items():
            if alloc.get("ClientStatus") in ENDED:
                out[k] = f"its allocation {alloc['ID'][:8]} is {alloc['ClientStatus']} ({_last_event(alloc)})"
        return out

    def placement_problem(self) -> str | None:
        allocs = self._watch()
        for k, eval_id in self.evals.items():
            if k in allocs or not eval_id:
                continue
            with contextlib.suppress(LoadgenError):
                evaluation = self.client.evaluation(eval_id) or {}
                failed = evaluation.get("FailedTGAllocs") or {}
                for group, metric in failed.items():
                    return f"Nomad could not place worker {k} ({group}): {_placement_text(metric)}"
                if evaluation.get("Status") == "blocked" or evaluation.get("BlockedEval"):
                    return f"worker {k} is queued: no node has room for it"
        pending = [k for k, a in allocs.items() if a.get("ClientStatus") == "pending"]
        if pending:
            first = _last_event(allocs[pending[0]])
            return f"worker(s) {', '.join(map(str, pending))} still pending on their node ({first})"
        missing = [k for k in self.dispatched if k not in allocs]
        if missing:
            return f"no allocation yet for worker(s) {', '.join(map(str, missing))}"
        return None

    def stop(self) -> list[str]:
        """Stop every dispatched job, wait (bounded) for their allocations to end, purge them, and the
        parameterized job too when no other run's dispatch is left under it."""
        warnings: list[str] = []
        with signals_held():
            for job in self.dispatched.values():
                try:
                    self.client.stop(job, purge=False)
                except LoadgenError as exc:
                    warnings.append(f"could not stop Nomad job {job}: {exc.message}")
            deadline = time.monotonic() + STOP_WAIT_S
            running = list(self.dispatched.values())
            while running and time.monotonic() < deadline:
                with contextlib.suppress(LoadgenError):
                    running = [j for j in running if any(a.get("ClientStatus") in ("pending", "running")
                                                         for a in self.client.allocations(j))]
                if running:
                    time.sleep(0.2)
            if running:
                warnings.append(f"{len(running)} worker allocation(s) still running {STOP_WAIT_S:g}s after their "
                                "jobs were stopped; purging them")
            for job in self.dispatched.values():
                try:
                    self.client.stop(job, purge=True)
                except LoadgenError as exc:
                    warnings.append(f"could not purge Nomad job {job}: {exc.message}")
            if self.dispatched:
                try:
                    others = [j for j in self.client.jobs(prefix=f"{self.job_id}/")
                              if j.get("ParentID") == self.job_id and j["ID"] not in self.dispatched.values()]
                    if not others:
                        self.client.stop(self.job_id, purge=True)
                except LoadgenError as exc:  # e.g. a token without list-jobs: say so, it is not silent litter
                    warnings.append(f"the parameterized job {self.job_id} was left registered (it runs nothing): "
                                    f"{exc.message}")
        self.client.close()
        return warnings


def _last_event(alloc: dict[str, Any]) -> str:
    for task, st in sorted((alloc.get("TaskStates") or {}).items()):
        events = st.get("Events") or []
        if events:
            ev = events[-1]
            return f"{task}: {ev.get('Type')}" + (f": {ev['DisplayMessage']}" if ev.get("DisplayMessage") else "")
    return str(alloc.get("ClientDescription") or alloc.get("ClientStatus") or "")


def _placement_text(metric: dict[str, Any]) -> str:
    """Nomad's AllocationMetric in a line: what was exhausted or filtered out."""
    parts = []
    if metric.get("NodesEvaluated") == 0:
        parts.append("no node is eligible (none in these datacenters, or all down or draining)")
    for key in ("DimensionExhausted", "ConstraintFiltered", "ClassExhausted"):
        for what, n in (metric.get(key) or {}).items():
            parts.append(f"{what} ({n} node{'s' if n != 1 else ''})")
    return "; ".join(parts) or "no placement"


def local_worker_image(say: Callable[[str], None]) -> str:
    """The loadgen image built here (found when nothing changed: ``loadgen images build``'s), for a
    Nomad client that shares this machine's Docker engine."""
    from loadgen.mesh.images import build_all

    say(f"the docker driver's workers run the loadgen image built here ({IMAGE_ENV} unset)")
    return next(b.tag for b in build_all(say, loadgen_image=True) if b.name == "loadgen")


def coordinator_bind() -> tuple[str, int]:
    """Where the coordinator listens: LOADGEN_COORDINATOR_BIND (``host`` or ``host:port``), by
    default 127.0.0.1 on a free port (workers on this machine, as on the local dev agent)."""
    import os

    from loadgen.errors import UsageError

    text = (os.environ.get("LOADGEN_COORDINATOR_BIND") or "127.0.0.1").strip()
    host, sep, port = text.rpartition(":") if text.count(":") == 1 else (text, "", "")
    if not sep:
        host, port = text, "0"
    if not host or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"LOADGEN_COORDINATOR_BIND={text!r} is not host or host:port")
    return host, int(port)
