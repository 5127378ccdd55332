"""What a canary expects: the split to judge against and which APP_ID belongs to which subset.

Resolved once, the same way for ``loadgen canary`` and the Locust plugin
(:func:`resolve_expectation`): ``--map`` or Consul's catalog for the APP_ID map, and
``--expect`` as weights or ``consul`` (the split Consul compiled into the upstream's
discovery chain for the request service-a makes, :mod:`loadgen.canary.consul_view`).
:class:`Expectation` then holds the one rule for classifying an answer, and the Consul
view when Consul could be read (shown beside the traffic whatever was expected).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from loadgen.canary.consul_view import ConsulView, chain_request, client_upstream, consul_view
from loadgen.errors import LoadgenError, UnreachableError, UsageError
from loadgen.mesh.consul_api import DEFAULT_CONSUL, ConsulClient
from loadgen.mesh.subsets import SubsetMap, subset_map
from loadgen.report.brief import MAX_CHARS, brief_values
from loadgen.stats import SplitSpec, parse_app_id_map

UNMAPPED_STOP = 50  # answers naming a backend, none of them a mapped APP_ID or a subset: a wrong map or rule

__all__ = ["UNMAPPED_STOP", "Expectation", "expects_consul", "mapping_from_option", "resolve_expectation",
           "resolve_mapping", "resolve_spec"]


def expects_consul(expect: str) -> bool:
    """``--expect consul``: the weights are the split Consul compiled (its discovery chain)."""
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


def resolve_spec(expect: str, mapping: SubsetMap) -> SplitSpec:
    """The split ``--expect`` gives as weights (no network). Positional weights (85/15) name the
    mapping's subsets in order (v1, v2, ... when it has none)."""
    if expects_consul(expect):  # a live run reads Consul's chain: resolve_expectation
        raise UsageError("--expect consul needs Consul (give --consul ADDR, or a split like 85/15)")
    positional = "=" not in expect
    return SplitSpec.parse(expect, names=list(mapping.subsets) if positional and mapping.subsets else None)


@dataclass(frozen=True)
class Expectation:
    """The expected split and the APP_ID map, with the one rule that classifies an answer."""

    spec: SplitSpec
    mapping: SubsetMap
    consul: ConsulView | None = None  # what Consul compiled, when it could be read

    def subset_of(self, app_id: str) -> str | None:
        """The subset of the spec that answered, or None when no subset of the spec claims the
        APP_ID (an *unknown* answer: judged against --max-unknown, never as a subset). An
        identity that is itself a subset's name (``--subset-from json:upstream.version``
        answering "v1") names that subset, unless the map says otherwise."""
        subset = self.mapping.subset_of(app_id)
        if subset is None and app_id in self.spec.names:
            subset = app_id
        return subset if subset is not None and subset in self.spec.names else None

    def unmapped_identities(self, app_ids: Mapping[str, int], final: bool = False) -> str | None:
        """What is wrong when the answers name their backends with values that are neither an
        APP_ID of the map nor a subset's name: after UNMAPPED_STOP such answers (or, ``final``,
        any) with none that maps, the map or the identity rule is wrong -- a usage problem, not a
        FAIL of the split. None while something maps (unknown ones are then the judge's)."""
        total = sum(app_ids.values())
        if total < (1 if final else UNMAPPED_STOP):
            return None
        names = set(self.spec.names) | set(self.mapping.subsets)
        if any(self.mapping.subset_of(a) is not None or a in names for a in app_ids):
            return None
        first = min(app_ids, key=lambda a: (-app_ids[a], a))
        pairs = ", ".join(f"{a}={sub}" for a, sub in sorted(self.mapping.app_ids.items())) or "empty"
        example = first if len(first) <= MAX_CHARS and first.isprintable() else "APP_ID"
        return (f"the answers name their backend {brief_values(app_ids)} ({total:,} answers), which is neither an "
                f"APP_ID of the map ({pairs}; {self.mapping.source}) nor a subset name ({', '.join(self.spec.names)}): "
                f"give --map {example}=SUBSET,... or a --subset-from whose values are APP_IDs or subset names")

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


def _answers(consul: ConsulClient, must: bool) -> bool:
    """Whether Consul answers; when it ``must`` (--expect consul), why it does not is the error
    (a TLS certificate, plain HTTP to an HTTPS port), not a bare "unreachable"."""
    try:
        consul.leader()
        return True
    except LoadgenError as exc:
        if must:
            raise LoadgenError(f"--expect consul: {exc.message}", exc.code) from exc
        return False


def resolve_expectation(expect: str, map_text: str | None, consul: ConsulClient | None, *, service: str,
                        upstream: str | None = None, headers: Mapping[str, str] | None = None,
                        path: str | None = None, counts_from_envoy: bool = False,
                        say: Callable[[str], None] = lambda _: None) -> Expectation:
    """The expectation of a live run. With Consul reachable, the upstream's compiled chain is
    read for the request service-a makes: it *is* the split for ``--expect consul``, and the
    Consul column otherwise (a chain that cannot be read is then only a note)."""
    view = None
    if consul is not None and _answers(consul, expects_consul(expect)):
        try:
            view = consul_view(consul, upstream or client_upstream(consul), chain_request(headers or {}, path))
        except LoadgenError as exc:
            if expects_consul(expect):
                raise
            say(f"note: Consul's compiled split is not shown ({exc})")
    elif expects_consul(expect):
        where = consul.address if consul else DEFAULT_CONSUL
        raise UnreachableError(f"--expect consul: Consul at {where} is unreachable (give --consul ADDR, or a "
                               "split like 85/15)")
    if map_text:
        mapping = mapping_from_option(map_text)
    elif view is not None:
        mapping = view.mapping
    else:
        mapping = resolve_mapping(None, consul, service)
    if expects_consul(expect):
        assert view is not None
        spec = view.spec
        unmapped = [s for s, w in zip(spec.names, spec.weights, strict=True)
                    if w > 0 and s not in mapping.app_ids.values()]
        if unmapped and not counts_from_envoy:
            where = "; ".join(f"{s}: {view.path(s)}" for s in unmapped)
            raise UsageError(f"Consul's chain sends traffic to {', '.join(unmapped)} ({where}), but no APP_ID maps "
                             f"there ({mapping.source}): give --map APP_ID=SUBSET,..., or --subset-from envoy")
    else:
        spec = resolve_spec(expect, mapping)
    return Expectation(spec, mapping, view)
