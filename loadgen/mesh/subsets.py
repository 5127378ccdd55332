"""Which APP_ID belongs to which subset of a service, as Consul itself sees it.

The service-resolver's subsets select instances by filter expressions (e.g.
``Service.Meta.version == v1``). Rather than re-implementing that language, each
subset's filter is handed to Consul's health endpoint, which evaluates it exactly as
the resolver does; each selected instance's ``Meta.app_id`` is the APP_ID its
responses carry. Without a resolver, instances are grouped by ``Meta.version``.
"""

from __future__ import annotations

from dataclasses import dataclass

from loadgen.errors import UsageError
from loadgen.mesh.consul_api import ConsulClient


@dataclass(frozen=True)
class SubsetMap:
    """Subset names in a stable order and the APP_ID -> subset mapping."""

    subsets: tuple[str, ...]
    app_ids: dict[str, str]
    source: str  # where the mapping came from, for people

    def subset_of(self, app_id: str | None) -> str | None:
        """The subset an APP_ID maps to; an identity that is a subset's own name (and no APP_ID
        of the map) is that subset."""
        if app_id is None:
            return None
        return self.app_ids.get(app_id) or (app_id if app_id in self.subsets else None)


def subset_map(consul: ConsulClient, service: str = "service-b") -> SubsetMap:
    resolver = consul.get_config("service-resolver", service)
    subsets = (resolver or {}).get("Subsets") or {}
    app_ids: dict[str, str] = {}
    if subsets:
        for name in sorted(subsets):
            expr = subsets[name].get("Filter") or ""
            for entry in consul.health_service(service, expr or None):
                app_id = (entry.get("Service", {}).get("Meta") or {}).get("app_id")
                if app_id is not None:
                    app_ids.setdefault(str(app_id), name)
        return SubsetMap(tuple(sorted(subsets)), app_ids, f"service-resolver/{service} subsets in Consul")
    for entry in consul.health_service(service):
        meta = entry.get("Service", {}).get("Meta") or {}
        if meta.get("app_id") is not None and meta.get("version"):
            app_ids[str(meta["app_id"])] = str(meta["version"])
    if not app_ids:
        raise UsageError(
            f"Consul knows no {service} instance with Meta app_id and version; give --map APP_ID=SUBSET,..."
        )
    return SubsetMap(tuple(sorted(set(app_ids.values()))), app_ids, f"{service} instances' Meta.version in Consul")


def live_splitter(consul: ConsulClient, service: str = "service-b") -> dict:
    """The service-splitter config entry in force, or a UsageError when there is none."""
    entry = consul.get_config("service-splitter", service)
    if entry is None:
        raise UsageError(f"--expect consul: Consul at {consul.address} has no service-splitter for {service}")
    return entry
