"""summary.json as one typed form: written by ``loadgen run``, read by ``loadgen report`` and
the terminal table.

Python names follow the file's keys (``p99.9`` is ``p99_9``); each type's ``to_json`` is the
only place a key is spelled for writing and ``from_json`` the only place for reading, so a
renamed field is a change in this file that the type checker follows everywhere else.

The file's layout (keys, values, their order) is a contract other tools read; see
run_files.py for what each part means. ``from_json`` accepts files of older runs (a part they
lack is None or empty) and refuses anything else with :class:`MalformedSummary`, whose message
names the field in one line (``requests.sent is "many", not a whole number >= 0``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from loadgen.load.health import GeneratorHealth, WorkerLoad

__all__ = [
    "PERCENTILE_LABELS",
    "Latency",
    "MalformedSummary",
    "Measures",
    "Requests",
    "SpectrumPoint",
    "SplitShare",
    "StageInfo",
    "StageSummary",
]

# The percentiles a reader shows, as the file names them.
PERCENTILE_LABELS = ("p50", "p90", "p99", "p99.9", "max")


class MalformedSummary(ValueError):
    """A field of a summary that is not what the contract says; the message names the field."""


# -- checking one field ------------------------------------------------------------------------

_KINDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "text": ("a string", lambda v: isinstance(v, str)),
    "number": ("a finite number", lambda v: isinstance(v, int | float) and not isinstance(v, bool)
               and math.isfinite(v)),
    "count": ("a whole number >= 0", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0),
    "flag": ("true or false", lambda v: isinstance(v, bool)),
    "object": ("an object", lambda v: isinstance(v, dict)),
    "list": ("a list", lambda v: isinstance(v, list)),
}


def _check(value: Any, where: str, kind: str, required: bool = False) -> Any:
    """value if it is of `kind`; None when null or absent (unless required)."""
    if value is None:
        if required:
            raise MalformedSummary(f"{where} is missing")
        return None
    name, test = _KINDS[kind]
    if not test(value):
        shown = json.dumps(value)
        raise MalformedSummary(f"{where} is {shown[:40] + '...' if len(shown) > 40 else shown}, not {name}")
    return value


def _field(obj: Mapping[str, Any], key: str, where: str, kind: str, required: bool = False) -> Any:
    return _check(obj.get(key), f"{where}{key}", kind, required)


def _without_none(pairs: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    return {k: v for k, v in pairs if v is not None}


# -- the parts ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Latency:
    """One histogram's summary in ms; only ``count`` (0) when nothing was measured."""

    count: int | None = None
    min: float | None = None
    mean: float | None = None
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    p99_9: float | None = None
    max: float | None = None

    def by_label(self) -> dict[str, float | None]:
        """The shown percentiles under the file's names (PERCENTILE_LABELS)."""
        return {"p50": self.p50, "p90": self.p90, "p99": self.p99, "p99.9": self.p99_9, "max": self.max}

    def to_json(self) -> dict[str, Any]:
        return _without_none((("count", self.count), ("min", self.min), ("mean", self.mean), ("p50", self.p50),
                              ("p90", self.p90), ("p99", self.p99), ("p99.9", self.p99_9), ("max", self.max)))

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str) -> Latency:
        def num(key: str) -> float | None:
            return _field(data, key, where, "number")  # type: ignore[no-any-return]

        return cls(count=_field(data, "count", where, "count"), min=num("min"), mean=num("mean"), p50=num("p50"),
                   p90=num("p90"), p99=num("p99"), p99_9=num("p99.9"), max=num("max"))


@dataclass(frozen=True)
class Measures:
    """Corrected latency (from the intended start) and service time (from the send)."""

    corrected: Latency | None = None
    service: Latency | None = None

    def to_json(self) -> dict[str, Any]:
        return _without_none((("corrected", self.corrected.to_json() if self.corrected else None),
                              ("service", self.service.to_json() if self.service else None)))

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str) -> Measures:
        def measure(key: str) -> Latency | None:
            obj = _field(data, key, where, "object")
            return None if obj is None else Latency.from_json(obj, f"{where}{key}.")

        return cls(corrected=measure("corrected"), service=measure("service"))


@dataclass(frozen=True)
class Requests:
    sent: int
    ok: int
    errors: int
    dropped: int | None = None  # due by the deadline, never sent (open loop); in no other figure

    def to_json(self) -> dict[str, Any]:
        return _without_none((("sent", self.sent), ("ok", self.ok), ("errors", self.errors),
                              ("dropped", self.dropped)))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Requests:
        return cls(*(_field(data, key, "requests.", "count", required=True) for key in ("sent", "ok", "errors")),
                   dropped=_field(data, "dropped", "requests.", "count"))


@dataclass(frozen=True)
class SplitShare:
    count: int | None = None
    share: float | None = None  # of the answers with an APP_ID

    def to_json(self) -> dict[str, Any]:
        return _without_none((("count", self.count), ("share", self.share)))


@dataclass(frozen=True)
class SpectrumPoint:
    percentile: float
    corrected_ms: float
    service_ms: float | None

    def to_json(self) -> list[float | None]:
        return [self.percentile, self.corrected_ms, self.service_ms]

    @classmethod
    def from_json(cls, point: Any, where: str) -> SpectrumPoint:
        if not isinstance(point, list) or len(point) != 3:
            raise MalformedSummary(f"{where} is not [percentile, corrected_ms, service_ms]")
        p, corrected, service = point
        _check(p, f"{where}[0]", "number", required=True)
        _check(corrected, f"{where}[1]", "number", required=True)
        _check(service, f"{where}[2]", "number")
        if not 0 <= p <= 100:
            raise MalformedSummary(f"{where}[0] is {p}, not a percentile between 0 and 100")
        return cls(p, corrected, service)


@dataclass(frozen=True)
class StageInfo:
    """What was loaded, how, and how it ended (top-level keys of summary.json)."""

    runtime: str | None = None  # process, docker, nomad, or external (--target)
    recording_failed: list[str] | None = None  # why --record stopped early, if it did
    stage: str | None = None
    target: str | None = None
    mode: str | None = None  # open, closed
    concurrency: int | None = None
    schedule: str | None = None
    rate_asked: float | None = None
    duration_s: float | None = None
    rate_achieved: float | None = None
    started_at: str | None = None
    interrupted: bool | None = None
    stopped_by: str | None = None  # max_time, max_requests, interrupted
    timeout_s: float | None = None
    interrupted_by: str | None = None  # SIGINT, SIGTERM
    new_connection: bool | None = None

    def to_json(self) -> dict[str, Any]:
        # Every key, null included: the file has always spelled out an unset concurrency or signal.
        return {"runtime": self.runtime, "recording_failed": self.recording_failed, "stage": self.stage,
                "target": self.target, "mode": self.mode, "concurrency": self.concurrency,
                "schedule": self.schedule, "rate_asked": self.rate_asked, "duration_s": self.duration_s,
                "rate_achieved": self.rate_achieved, "started_at": self.started_at,
                "interrupted": self.interrupted, "stopped_by": self.stopped_by, "timeout_s": self.timeout_s,
                "interrupted_by": self.interrupted_by, "new_connection": self.new_connection}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StageInfo:
        failed = _field(data, "recording_failed", "", "list")
        for i, why in enumerate(failed or []):
            _check(why, f"recording_failed[{i}]", "text", required=True)
        text = {k: _field(data, k, "", "text") for k in ("runtime", "stage", "target", "mode", "schedule",
                                                          "started_at", "stopped_by", "interrupted_by")}
        number = {k: _field(data, k, "", "number") for k in ("rate_asked", "rate_achieved", "duration_s",
                                                              "timeout_s")}
        return cls(**text, **number, recording_failed=failed, concurrency=_field(data, "concurrency", "", "count"),
                   interrupted=_field(data, "interrupted", "", "flag"),
                   new_connection=_field(data, "new_connection", "", "flag"))


def _generator_from_json(data: Mapping[str, Any]) -> GeneratorHealth:
    where = "generator."
    problems = _field(data, "problems", where, "list") or []
    for i, problem in enumerate(problems):
        _check(problem, f"generator.problems[{i}]", "text", required=True)
    per_worker = _field(data, "per_worker", where, "list")
    loads = None
    if per_worker is not None:
        loads = []
        for i, w in enumerate(per_worker):
            at = f"generator.per_worker[{i}]"
            _check(w, at, "object", required=True)
            loads.append(WorkerLoad(
                *(_field(w, k, f"{at}.", "count", required=True) for k in ("sent", "late", "dropped")),
                *(_field(w, k, f"{at}.", "number", required=True) for k in ("cpu_share", "elapsed"))))
    return GeneratorHealth(
        valid=_field(data, "valid", where, "flag"), problems=problems, late=_field(data, "late", where, "count"),
        late_share=_field(data, "late_share", where, "number"),
        max_late_ms=_field(data, "max_late_ms", where, "number"), dropped=_field(data, "dropped", where, "count"),
        dropped_share=_field(data, "dropped_share", where, "number"),
        cpu_share=_field(data, "cpu_share", where, "number"), workers=_field(data, "workers", where, "count"),
        per_worker=loads)


# -- the whole file ----------------------------------------------------------------------------

@dataclass(frozen=True)
class StageSummary:
    info: StageInfo
    requests: Requests
    latency_ms: Measures  # of every request; corrected is always there
    errors: dict[str, int] = field(default_factory=dict)  # count per kind, most frequent first
    split: dict[str, SplitShare] = field(default_factory=dict)  # per APP_ID
    by_app_id: dict[str, Measures] = field(default_factory=dict)
    by_status: dict[str, Measures] = field(default_factory=dict)  # per status class: 2xx, 5xx, transport_error
    spectrum: list[SpectrumPoint] = field(default_factory=list)
    generator: GeneratorHealth | None = None

    @property
    def stage(self) -> str:
        return self.info.stage or "?"

    def to_json(self) -> dict[str, Any]:
        out = self.info.to_json()
        out |= {
            "requests": self.requests.to_json(),
            "errors": dict(self.errors),
            "split": {a: s.to_json() for a, s in self.split.items()},
            "latency_ms": self.latency_ms.to_json(),
            "by_app_id": {a: m.to_json() for a, m in self.by_app_id.items()},
            "by_status": {k: m.to_json() for k, m in self.by_status.items()},
            "spectrum": [p.to_json() for p in self.spectrum],
        }
        if self.generator is not None:
            out["generator"] = self.generator.to_json()
        return out

    @classmethod
    def from_json(cls, data: Any) -> StageSummary:
        """A checked summary, or MalformedSummary naming the first field that is not as documented."""
        if not isinstance(data, dict):
            raise MalformedSummary(f"the top level is a JSON {type(data).__name__}, not an object")
        info = StageInfo.from_json(data)
        requests = Requests.from_json(_field(data, "requests", "", "object", required=True))
        errors = _field(data, "errors", "", "object") or {}
        for kind, n in errors.items():
            _check(n, f"errors.{kind}", "count", required=True)
        split = {}
        for app_id, entry in (_field(data, "split", "", "object") or {}).items():
            _check(entry, f"split.{app_id}", "object", required=True)
            split[app_id] = SplitShare(_field(entry, "count", f"split.{app_id}.", "count"),
                                       _field(entry, "share", f"split.{app_id}.", "number"))
        latency_data = _field(data, "latency_ms", "", "object", required=True)
        latency = Measures.from_json(latency_data, "latency_ms.")
        _field(latency_data, "corrected", "latency_ms.", "object", required=True)
        groups: dict[str, dict[str, Measures]] = {}
        for key in ("by_app_id", "by_status"):
            groups[key] = {}
            for name, entry in (_field(data, key, "", "object") or {}).items():
                _check(entry, f"{key}.{name}", "object", required=True)
                groups[key][name] = Measures.from_json(entry, f"{key}.{name}.")
        spectrum = [SpectrumPoint.from_json(point, f"spectrum[{i}]")
                    for i, point in enumerate(_field(data, "spectrum", "", "list") or [])]
        generator = _field(data, "generator", "", "object")
        return cls(info=info, requests=requests, latency_ms=latency, errors=dict(errors), split=split,
                   by_app_id=groups["by_app_id"], by_status=groups["by_status"], spectrum=spectrum,
                   generator=None if generator is None else _generator_from_json(generator))
