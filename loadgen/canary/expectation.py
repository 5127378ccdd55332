"""What a canary expects: the split to judge against and which APP_ID belongs to which subset.

Resolved once, the same way for ``loadgen canary`` and the Locust plugin: ``--map`` or
Consul's catalog for the APP_ID map, and ``--expect`` as weights or ``consul`` (the live
service-splitter). :class:`Expectation` then holds the one rule for classifying an answer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from loadgen.errors import UnreachableError, UsageError
from loadgen.mesh.consul_api import DEFAULT_CONSUL, ConsulClient
from loadgen.mesh.subsets import SubsetMap, live_splitter, subset_map
from loadgen.stats import SplitSpec, parse_app_id_map

__all__ = ["Expectation", "expects_consul", "mapping_from_option", "resolve_mapping", "resolve_spec"]


def expects_consul(expect: str) -> bool:
    """``--expect consul``: the weights are read from the service-splitter in force."""
    return expect.strip().lower() == "consul"


def mapping_from_option(text: str) -> SubsetMap:
    """The APP_ID map given as ``--map 1=v1,2=v2``."""
    app_ids = parse_app_id_map(text)
    return SubsetMap(tuple(sorted(set(app_ids.values()))), app_ids, "--map")


def resolve_mapping(map_text: str | None, consul: ConsulClient | None, service: str) -> SubsetMap:
    """``--map`` when given, otherwise the subsets of ``service`` as Consul's resolver sees them."""
    if map_text:
        return mapping_from_option(map_text)
    if consul is None or not consul.reachable():
        where = consul.address if consul else DEFAULT_CONSUL
        raise UnreachableError(f"Consul at {where} is unreachable, so the APP_ID -> subset map is unknown; "
                               "give --consul ADDR or --map 1=v1,2=v2")
    return subset_map(consul, service)


def resolve_spec(expect: str, mapping: SubsetMap, consul: ConsulClient | None, service: str) -> SplitSpec:
    """The split ``--expect`` asks for. Positional weights (85/15) name the mapping's subsets in
    order (v1, v2, ... when it has none)."""
    if expects_consul(expect):
        if consul is None:
            raise UsageError("--expect consul needs Consul (give --consul ADDR, or a split like 85/15)")
        return SplitSpec.from_splitter(live_splitter(consul, service))
    positional = "=" not in expect
    return SplitSpec.parse(expect, names=list(mapping.subsets) if positional and mapping.subsets else None)


@dataclass(frozen=True)
class Expectation:
    """The expected split and the APP_ID map, with the one rule that classifies an answer."""

    spec: SplitSpec
    mapping: SubsetMap

    def subset_of(self, app_id: str) -> str | None:
        """The subset of the spec that answered, or None when no subset of the spec claims the
        APP_ID (an *unknown* answer: judged against --max-unknown, never as a subset)."""
        subset = self.mapping.subset_of(app_id)
        return subset if subset is not None and subset in self.spec.names else None

    def classify(self, app_ids: Mapping[str, int]) -> tuple[Counter[str], int]:
        """Answers per APP_ID -> answers per subset of the spec, and the unknown ones."""
        counts: Counter[str] = Counter()
        unknown = 0
        for app_id, n in app_ids.items():
            subset = self.subset_of(app_id)
            if subset is None:
                unknown += n
            else:
                counts[subset] += n
        return counts, unknown

    @property
    def unmapped_subsets(self) -> list[str]:
        """Subsets expected to get traffic that no APP_ID maps to (worth a warning up front)."""
        return [s for s in self.spec.names if s not in self.mapping.app_ids.values() and self.spec.weight(s) > 0]
