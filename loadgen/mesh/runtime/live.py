"""When a stage is live, on every runtime: every sidecar's Envoy shows the stage's config and
trusts Consul's active CA root, then GET /hello_a answers as the stage expects, many times in
a row, from every APP_ID it expects (what each check means is in loadgen/mesh/liveness.py)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import httpx

from loadgen.errors import LoadgenError, UnreachableError
from loadgen.mesh import envoy_admin
from loadgen.mesh.consul_api import ConsulClient
from loadgen.mesh.liveness import (
    EnvoyExpectation,
    active_root,
    ca_expectation,
    envoy_expectations,
    seen_app_ids,
    wait_hello_a,
)
from loadgen.mesh.runtime.base import SERVICE_A_URL, Progress
from loadgen.mesh.stages import Stage

# Answers in a row that make a stage live (with every expected APP_ID among them): ~1 s of
# sequential requests, so a sidecar still swapping its certificates shows up as a failure.
LIVE_BURST = 30


def wait_live(stage: Stage, previous: Stage | None, consul: ConsulClient, timeout: float, say: Progress,
              check_alive: Callable[[], None], sidecar_log: Callable[[str], str | None]) -> None:
    """Wait until ``stage`` is live, else raise UnreachableError saying what is missing.

    ``check_alive`` raises when a part of the mesh has exited (waiting longer is pointless);
    ``sidecar_log(instance id)`` is the end of that instance's sidecar log, when the runtime
    has one, shown for the instances that never answered.
    """
    deadline = time.monotonic() + timeout
    expectations = envoy_expectations(stage, previous)
    say(f"waiting for the sidecars' Envoy to show {len(expectations)} config change(s) and trust "
        "Consul's CA")
    all_ids = tuple(i.id for i in stage.instances)
    while True:
        # Every expectation must hold in the same snapshot, not each at some moment. The CA
        # one is read afresh each time: after Consul restarted, the sidecars still show the
        # old (right-looking) config until their xDS streams re-sync, then swap certificates.
        ca = _ca_expectation(consul, all_ids)
        dumps = {}
        for inst in stage.instances:
            with contextlib.suppress(httpx.HTTPError):
                dumps[inst.id] = envoy_admin.config_dump(inst.envoy_admin_port)
        failing = [e for e in [*expectations, ca] if not e.holds(dumps)]
        if not failing:
            break
        check_alive()
        if time.monotonic() > deadline:
            raise UnreachableError(
                f"stage {stage.name} not live: Envoy does not show that {failing[0].description}"
            )
        time.sleep(0.25)
    say("Envoy sidecars show the stage's config and trust Consul's active CA root")
    remaining = max(5.0, deadline - time.monotonic())
    ids = f" from APP_IDs {', '.join(stage.expect.app_ids)}" if stage.expect.app_ids else ""
    say(f"waiting for {LIVE_BURST} GET /hello_a in a row to answer {stage.expect.hello_a}{ids}")
    live, last, answers = wait_hello_a(SERVICE_A_URL, stage.expect.hello_a, stage.expect.app_ids, remaining,
                                       consecutive=LIVE_BURST)
    if not live:
        check_alive()
        what = last.describe() if last else "no answer"
        seen = seen_app_ids(answers)
        missing = [i for i in stage.instances if i.app_env().get("APP_ID") in set(stage.expect.app_ids) - seen]
        # The silent instances' sidecar logs say why (e.g. a listener that failed to bind).
        logs = [(i.id, sidecar_log(i.id)) for i in missing]
        detail = "\n".join(f"--- {i}-sidecar:\n{log}" for i, log in logs if log is not None) or None
        raise UnreachableError(
            f"stage {stage.name} not live: GET /hello_a should be {stage.expect.hello_a}"
            f"{' from APP_IDs ' + ','.join(stage.expect.app_ids) if stage.expect.app_ids else ''}"
            f", last answer {what}; answers: "
            + (", ".join(f"{n}x {k}" for k, n in answers.most_common()) or "none"),
            detail,
        )
    say(f"GET /hello_a answers as stage {stage.name} expects ({last.describe() if last else ''})")


def _ca_expectation(consul: ConsulClient, instances: tuple[str, ...]) -> EnvoyExpectation:
    """Every sidecar trusts the CA root Consul signs certificates with now."""
    try:
        found = active_root(consul.ca_roots())
    except LoadgenError:
        found = None
    if found is None:
        # Right after an agent starts its CA may not be set up yet: not live, ask again.
        return EnvoyExpectation(f"Consul at {consul.address} has an active Connect CA root", instances,
                                lambda _d: False)
    return ca_expectation(instances, *found)
