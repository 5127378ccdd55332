"""What ``loadgen intentions --permissions`` found, worked out from what was seen: pure.

Request classes, how one answer is classed (reached service-b, refused by Envoy's RBAC, or an
error), one timed phase per class and the whole report's ``--json``. No clock and no network:
observations, the write's instant and each sidecar's instant in, results out
(tests/unit/test_permissions_report.py drives it directly).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loadgen.load.sample import Sample
from loadgen.probes.intention_phase import when_all_sidecars_showed
from loadgen.probes.intention_report import Distribution
from loadgen.probes.watch import Observation
from loadgen.report.junit import TestCase, TestSuite, render

# Envoy's RBAC filter refuses a request with exactly this local reply (403, text/plain). A 403
# with any other body is not Envoy's RBAC (e.g. an application's own 403), so it is an error.
ENVOY_RBAC_BODY = b"RBAC: access denied"

REACHED, DENIED, ERROR = "reached", "denied", "error"


@dataclass(frozen=True)
class RequestClass:
    """One kind of request the permissions should allow or deny, sent at service-a's upstream."""

    name: str
    method: str
    path: str
    expect: str  # "allowed" or "denied" while the permissions are in force
    headers: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "method": self.method, "path": self.path, "headers": dict(self.headers),
                "expect": self.expect}


# The classes consul/intentions/service-b-permissions.hcl is written for. service-a's router
# (l7-router stage) sends every /hello_b... path to service-b, so a class that gets through
# answers from service-b: 200 with an APP_ID for GET /hello_b, 405 for POST, 404 for /hello_b/admin.
DEFAULT_CLASSES = (
    RequestClass("get-hello-b", "GET", "/hello_b", "allowed"),
    RequestClass("post-hello-b", "POST", "/hello_b", "denied"),
    RequestClass("get-hello-b-admin", "GET", "/hello_b/admin", "denied"),
    RequestClass("get-hello-b-x-debug", "GET", "/hello_b", "denied", (("x-debug", "1"),)),
)


def answer_kind(s: Sample) -> str:
    """REACHED (service-b answered), DENIED (Envoy's RBAC 403) or ERROR (no answer, a 5xx, another 403).

    Every answer below 500 other than the RBAC reply is service-b's own: on this route Envoy
    itself answers only the RBAC 403 or a 5xx (no healthy upstream, a reset), so a 404 or 405
    means the request was let through to service-b (a path or method it does not serve).
    """
    if s.status is None or s.status >= 500:
        return ERROR
    if s.status == 403:
        return DENIED if s.bytes == len(ENVOY_RBAC_BODY) else ERROR
    return REACHED


@dataclass
class ClassPhase:
    """One request class over one phase; instants in ms after Consul committed the write.

    A denied-class request that reaches service-b after every sidecar showed the permissions is a
    **leak**: Envoy serves a connection opened before the change with the old rules until it closes
    it (a filter-chain drain; ``drain_closes`` of the phase is its evidence). A leak is a
    **violation** when it came more than the grace after the sidecars showed the rules, or the
    class never went steadily denied (the permissions did not bite), or always under ``strict``.
    """

    expect: str  # the class's outcome once the phase's change is in force: REACHED or DENIED
    requests: int
    reached: int
    denied: int
    errors: int
    first_ms: float | None  # first request with the phase's outcome (None: never, or no change)
    all_ms: float | None  # from when every request had it
    leaks: int = 0  # a denied class reached service-b after every sidecar showed the permissions
    leak_window_ms: float | None = None  # how long after that the last leak was sent
    violations: int = 0  # the leaks that count against the permissions (see the class docstring)
    violation_window_ms: float | None = None  # how long after the sidecars showed the last of them was sent
    never_bit: bool = False  # a denied class that was not steadily denied by the end of the phase
    wrongly_denied: int = 0  # an allowed class refused by RBAC (it is allowed before and after)

    def to_json(self) -> dict[str, Any]:
        return {"expect": self.expect, "requests": self.requests, "reached": self.reached, "denied": self.denied,
                "errors": self.errors, "first_ms": self.first_ms, "all_ms": self.all_ms,
                "leaks": self.leaks, "leak_window_ms": self.leak_window_ms,
                "violations": self.violations, "violation_window_ms": self.violation_window_ms,
                "never_bit": self.never_bit, "wrongly_denied": self.wrongly_denied}


@dataclass
class PermissionPhase:
    """``restrict`` (the permissions written) or ``lift`` (the entry found before put back)."""

    action: str
    write_index: int
    envoy_ms: dict[str, float | None]  # per sidecar: when its RBAC showed the change
    classes: dict[str, ClassPhase]
    drain_closes: int | None = None  # connections service-b's sidecars closed while draining (None: unread)

    @property
    def all_sidecars_ms(self) -> float | None:
        return when_all_sidecars_showed(self.envoy_ms)

    @property
    def violations(self) -> int:
        return sum(c.violations for c in self.classes.values())

    @property
    def wrongly_denied(self) -> int:
        return sum(c.wrongly_denied for c in self.classes.values())

    @property
    def leaks(self) -> int:
        return sum(c.leaks for c in self.classes.values())

    @property
    def never_bit(self) -> list[str]:
        return [name for name, c in self.classes.items() if c.never_bit]

    def to_json(self) -> dict[str, Any]:
        return {"write_index": self.write_index, "envoy_ms": self.envoy_ms,
                "envoy_all_sidecars_ms": self.all_sidecars_ms, "drain_closes": self.drain_closes,
                "classes": {name: c.to_json() for name, c in self.classes.items()}}


def _ms(t: float | None, t0: float) -> float | None:
    return None if t is None else round((t - t0) * 1000, 2)


def _switch(mine: list[Observation], wanted: str) -> tuple[float | None, float | None]:
    """(first request with ``wanted``, first of the unbroken run of ``wanted`` that ends the phase)."""
    hits = [o.sent for o in mine if answer_kind(o.sample) == wanted]
    if not hits or answer_kind(mine[-1].sample) != wanted:
        return (hits[0] if hits else None), None
    misses = [o.sent for o in mine if answer_kind(o.sample) != wanted]
    return hits[0], next(t for t in hits if not misses or t > misses[-1])


def analyse_class(cls: RequestClass, action: str, t0: float, mine: list[Observation],
                  shown_at: float | None, grace_s: float = 0.0) -> ClassPhase:
    """One class's phase. ``shown_at``: the perf_counter instant every sidecar showed the change;
    ``grace_s``: how long after it a leak is still taken for a draining connection (0: strict)."""
    mine = sorted(mine, key=lambda o: o.sent)
    kinds = [answer_kind(o.sample) for o in mine]
    changes = cls.expect == "denied"  # an allowed class reaches service-b before, during and after
    wanted = DENIED if changes and action == "restrict" else REACHED
    first, all_from = _switch(mine, wanted) if changes else (None, None)
    result = ClassPhase(expect=wanted, requests=len(mine), reached=kinds.count(REACHED), denied=kinds.count(DENIED),
                        errors=kinds.count(ERROR), first_ms=_ms(first, t0), all_ms=_ms(all_from, t0))
    if not changes:
        result.wrongly_denied = result.denied
    elif action == "restrict":
        result.never_bit = all_from is None
        if shown_at is not None:
            leaked = [o.sent for o, k in zip(mine, kinds, strict=True) if k == REACHED and o.sent > shown_at]
            result.leaks = len(leaked)
            result.leak_window_ms = _ms(max(leaked), shown_at) if leaked else None
            # The permissions did not bite: every leak counts, however early.
            counted = leaked if result.never_bit else [t for t in leaked if t - shown_at > grace_s]
            result.violations = len(counted)
            result.violation_window_ms = _ms(max(counted), shown_at) if counted else None
    return result


def analyse_permission_phase(action: str, t0: float, index: int, obs: list[Observation],
                             envoy: dict[str, float], sidecars: list[str],
                             classes: tuple[RequestClass, ...], grace_s: float = 0.0,
                             drain_closes: int | None = None) -> PermissionPhase:
    """The phase's per-class results, in ms after ``t0`` (when Consul committed the write)."""
    shown_at = max(envoy.values()) if envoy and len(envoy) == len(sidecars) else None
    per_class = {c.name: analyse_class(c, action, t0, [o for o in obs if o.stream == c.name], shown_at, grace_s)
                 for c in classes}
    return PermissionPhase(action=action, write_index=index, envoy_ms={k: _ms(envoy.get(k), t0) for k in sidecars},
                           classes=per_class, drain_closes=drain_closes)


@dataclass
class PermissionCycle:
    restrict: PermissionPhase
    lift: PermissionPhase | None  # None: the repeats stopped after a restrict that did not bite

    def to_json(self) -> dict[str, Any]:
        return {"restrict": self.restrict.to_json(), "lift": self.lift.to_json() if self.lift else None}


@dataclass
class PermissionsReport:
    """Everything one ``loadgen intentions --permissions`` measured."""

    entry: str  # the permissions file written
    rate_per_class: float
    classes: tuple[RequestClass, ...]
    found: str  # what service-b's service-intentions was before: "none" or "an entry" (put back after)
    grace_s: float = 0.0  # leaks within this long after the sidecars showed the rules are not violations
    cycles: list[PermissionCycle] = field(default_factory=list)
    stopped: str | None = None  # why the repeats stopped early (a class the permissions never denied)

    @property
    def violations(self) -> int:
        return sum(c.restrict.violations for c in self.cycles)  # a lift lets every class through

    @property
    def wrongly_denied(self) -> int:
        return sum(c.restrict.wrongly_denied + (c.lift.wrongly_denied if c.lift else 0) for c in self.cycles)

    @property
    def leaks(self) -> int:
        return sum(c.restrict.leaks for c in self.cycles)

    def distributions(self, action: str) -> dict[str, dict[str, Distribution]]:
        """Per denied class: first and all over the repeats' ``action`` phases."""
        out = {}
        for c in self.classes:
            if c.expect == "denied":
                phases = [getattr(cycle, action).classes[c.name] for cycle in self.cycles
                          if getattr(cycle, action) is not None]
                out[c.name] = {"first": Distribution.of([p.first_ms for p in phases]),
                               "all": Distribution.of([p.all_ms for p in phases])}
        return out

    def junit(self) -> str:
        """One testcase per repeat and request class: failed on a violation (a denied class that
        reached service-b too late, or never went steadily denied) or an allowed class refused."""
        suite = "loadgen intentions --permissions"
        cases = []
        for i, cycle in enumerate(self.cycles, start=1):
            for c in self.classes:
                phase = cycle.restrict.classes[c.name]
                lift = cycle.lift.classes[c.name] if cycle.lift else None
                refused = phase.wrongly_denied + (lift.wrongly_denied if lift else 0)
                text = (f"{c.method} {c.path}, should be {c.expect}: {phase.reached} reached, {phase.denied} "
                        f"denied, {phase.leaks} leaked, {phase.violations} violation(s); first/all "
                        f"{phase.first_ms}/{phase.all_ms} ms after the write")
                name = f"repeat {i} {c.name}"
                if phase.violations:  # what the exit code counts, as it counts it
                    why = "the class was never steadily denied" if phase.never_bit else "later than the grace"
                    cases.append(TestCase(name, suite, failure=f"{phase.violations} request(s) reached service-b: "
                                          f"{why}", failure_type="Violation", failure_text=text))
                elif refused:
                    cases.append(TestCase(name, suite, failure=f"{refused} allowed request(s) refused",
                                          failure_type="WronglyDenied", failure_text=text))
                else:
                    cases.append(TestCase(name, suite, system_out=text))
        return render(TestSuite(suite, cases, properties={"entry": self.entry, "found": self.found,
                                                          "grace_ms": f"{self.grace_s * 1000:g}"}))

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": "permissions", "entry": self.entry, "found": self.found,
            "resolution_ms": round(1000 / self.rate_per_class, 2),
            "classes": [c.to_json() for c in self.classes],
            "repeats": [c.to_json() for c in self.cycles],
            "distributions_ms": {action: {name: {k: d.to_json() for k, d in figures.items()}
                                          for name, figures in self.distributions(action).items()}
                                 for action in ("restrict", "lift")},
            "grace_ms": round(self.grace_s * 1000, 1), "leaks": self.leaks,
            "violations": self.violations, "wrongly_denied": self.wrongly_denied, "stopped": self.stopped,
        }
