"""Where a probe sends traffic and whose Envoy admin it watches: the local mesh or a given deployment."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from loadgen.addresses import check_admin_address, check_consul_address
from loadgen.errors import UsageError
from loadgen.load.client import Endpoint
from loadgen.mesh.consul_api import ConsulClient, ConsulSettings
from loadgen.mesh.local import borrowed_stage
from loadgen.probes.watch import LOCAL_UPSTREAM
from loadgen.shown import shown
from loadgen.url_userinfo import refuse_userinfo


@dataclass(frozen=True)
class TargetOptions:
    """--target, --consul and --envoy-admin as given; no ``url`` means the local mesh."""

    url: str | None = None
    consul: str | None = None
    envoy_admins: tuple[str, ...] = ()  # each "[NAME=]HOST:PORT"

    def __post_init__(self) -> None:
        if self.url is not None:  # made before anything is sent: a password is refused at once
            refuse_userinfo(self.url, "--target")

    def check(self, sidecars_of: str) -> None:
        """Everything :func:`probe_target` needs, checked as text before the mesh, Consul or the target
        is touched (a probe writes to Consul before it sends: a bad URL found after the write would
        leave the write in force while the probe waits). Raises UsageError."""
        if self.url is None:
            if self.consul or self.envoy_admins:
                raise UsageError("--consul and --envoy-admin go with --target (the local mesh knows its own)")
            return
        Endpoint.parse(self.url)
        if not self.consul or not self.envoy_admins:
            raise UsageError(
                f"--target needs --consul ADDR and --envoy-admin NAME=HOST:PORT for each {sidecars_of} sidecar")
        check_consul_address(self.consul)
        parse_envoy_admins(self.envoy_admins, sidecars_of)


@dataclass(frozen=True)
class ProbeTarget:
    """A resolved target: the probe URL, the Consul agent to write to, and the sidecars to watch."""

    url: str
    consul_address: str
    sidecar_admin: dict[str, str]  # sidecar name -> its Envoy admin host:port
    consul_settings: ConsulSettings | None = None  # the local secure mesh's management credentials

    def consul(self) -> ConsulClient:
        """A client of the Consul to write to (the consul CLI's environment for a given one)."""
        return ConsulClient(settings=self.consul_settings) if self.consul_settings else \
            ConsulClient(self.consul_address)


@contextlib.contextmanager
def probe_target(stage: str, given: TargetOptions, sidecars_of: str,
                 say: Callable[[str], None]) -> Iterator[ProbeTarget]:
    """The local mesh at ``stage`` (borrowed, put back afterwards) or the deployment ``given`` names.

    ``sidecars_of`` is the service whose sidecars are watched ("service-b" for intentions,
    "service-a" for the splitter); unnamed --envoy-admin addresses are called after it.
    """
    given.check(sidecars_of)
    if given.url is None:
        with borrowed_stage(stage, say) as t:
            yield ProbeTarget(LOCAL_UPSTREAM, t.consul_address, {k: f"127.0.0.1:{v}" for k, v in
                                                                 t.sidecar_admin.items() if k.startswith(sidecars_of)},
                              t.consul_write)
        return
    assert given.consul is not None
    yield ProbeTarget(given.url, given.consul, parse_envoy_admins(given.envoy_admins, sidecars_of))


def parse_envoy_admins(items: tuple[str, ...], sidecars_of: str) -> dict[str, str]:
    """``[NAME=]HOST:PORT`` items -> {name: host:port}; unnamed ones become ``<sidecars_of>-<i>``."""
    parsed = {}
    for i, item in enumerate(items):
        name, sep, address = item.rpartition("=")
        if sep and not name.strip():
            raise UsageError(f"--envoy-admin {shown(item)} is not [NAME=]HOST:PORT (the name is empty)")
        try:
            address = check_admin_address(address)
        except UsageError:
            raise UsageError(f"--envoy-admin {shown(item)} is not [NAME=]HOST:PORT") from None
        parsed[name.strip() if sep else f"{sidecars_of}-{i + 1}"] = address
    return parsed
