"""What a canary run is asked to do, checked before anything starts, and its request budget."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from loadgen.addresses import check_admin_address, check_consul_address
from loadgen.canary.expectation import expects_consul, mapping_from_option, resolve_spec
from loadgen.canary.worse import WorseOptions
from loadgen.errors import UsageError
from loadgen.load.client import Endpoint, TlsOptions
from loadgen.load.identity import IdentityRule
from loadgen.mesh.service_name import check_service_name
from loadgen.shown import shown
from loadgen.stats import JudgeConfig, SampleSizePlan, SplitSpec, plan_sample_size
from loadgen.stats.bands import band_of, format_band
from loadgen.stats.plan import approximate_fixed_n, default_budget, fewest_to_decide

__all__ = ["DEFAULT_WARMUP_S", "CanaryOptions", "budget", "check_budget", "judged_by_time", "reachability",
           "validate", "warmup_requests"]

DEFAULT_WARMUP_S = 1.0  # live runs: connections opening through the sidecars must not decide a verdict


@dataclass(frozen=True)
class CanaryOptions:
    expect: str
    target: str | None = None  # service-a's /hello_a URL; None: the local mesh
    consul: str | None = None
    mapping: str | None = None  # "1=v1,2=v2"
    headers: dict[str, str] = field(default_factory=dict)
    rate: float = 500.0
    max_requests: int | None = None  # None: 4 x the fixed test's n (sequential) or n (fixed)
    max_time: float = 120.0
    timeout: float = 5.0
    method: str = "sequential"
    config: JudgeConfig = field(default_factory=JudgeConfig)
    record: Path | None = None
    replay: Path | None = None
    service: str = "service-b"  # whose resolver subsets map APP_IDs when Consul's chain cannot be read
    warmup: float = 0.0  # seconds at the start whose requests are reported but not judged
    upstream: str | None = None  # the chain to read; None: the one service-a's sidecar registration names
    upstream_path: str | None = None  # the path of service-a's upstream call (None: /hello_b)
    envoy_admin: str | None = None  # the client sidecar's Envoy admin; None: service-a's on the local mesh
    subset_from: str = "auto"  # how a response names its backend (loadgen.load.identity)
    request_method: str = "GET"
    body: bytes | None = None
    tls: TlsOptions | None = None  # https:// targets
    stage: str | None = None  # --stage as given (None: not given; the local mesh's default is splitter)
    # Is the canary worse than the baseline? (canary.worse; None: not asked)
    latency: str | None = None  # --latency p99
    latency_margin: str | None = None  # --latency-margin 10% | 5ms
    error_margin: str | None = None  # --error-margin 0.5 (points)
    baseline: str | None = None  # --baseline v1 (default: the subset with the largest expected weight)

    def worse(self, spec: SplitSpec) -> WorseOptions | None:
        """The latency and error comparisons asked for, checked against the expected subsets."""
        return WorseOptions.parse(spec, self.latency, self.latency_margin, self.error_margin, self.baseline)


def validate(options: CanaryOptions) -> None:
    """Every check that needs no network, made before anything is started or sent: a mistake
    in the options must never cost a mesh bring-up (nor hide a verdict after the run)."""
    if options.consul is not None and not options.consul.strip():
        # Not "no --consul": an empty one would fall back to CONSUL_HTTP_ADDR or the local agent unasked.
        raise UsageError("--consul is empty: give [http|https://]host:port, or leave it out")
    if options.record is not None and options.replay is not None:
        raise UsageError("--record and --replay cannot be used together")
    if options.replay is not None:
        # A replay sends nothing and reads no Consul: these would be silently ignored.
        given = [name for name, value in (("--target", options.target), ("--consul", options.consul),
                                          ("--envoy-admin", options.envoy_admin), ("--stage", options.stage))
                 if value is not None]
        if given:
            raise UsageError(f"--replay judges a recording without any network: drop {', '.join(given)}")
    if options.target is not None and options.stage is not None:
        raise UsageError("--stage picks a stage of the local mesh; with --target the deployment is what it is: "
                         "drop --stage")
    if options.consul is not None:
        check_consul_address(options.consul)
    if options.envoy_admin is not None:
        check_admin_address(options.envoy_admin)
    if options.upstream is not None:
        check_service_name(options.upstream, "--upstream")
    if options.upstream_path is not None and not options.upstream_path.startswith("/"):
        raise UsageError(f"--path {shown(options.upstream_path)} is not a path: give service-a's upstream call "
                         "as /PATH (with any ?query), like /hello_b")
    if options.target is not None:
        Endpoint.parse(options.target, "--target")
        if options.tls is not None and Endpoint.parse(options.target).scheme != "https":
            raise UsageError("--cacert and --insecure are for an https:// --target")
    if options.tls is not None:
        options.tls.context()  # a CA file that is missing or not PEM: one line now
    IdentityRule.parse(options.subset_from)
    compares = options.latency is not None or options.error_margin is not None
    if compares and IdentityRule.parse(options.subset_from).kind == "envoy":
        raise UsageError("--latency and --error-margin compare each request's latency and outcome by subset: "
                         "--subset-from envoy counts requests per subset but cannot tell which request went where")
    if not options.request_method.isalpha():
        raise UsageError(f"-X {options.request_method!r} is not an HTTP method (GET, POST, PUT, ...)")
    if options.mapping is not None and not options.mapping.strip():
        raise UsageError("--map is empty: give APP_ID=SUBSET pairs like 1=v1,2=v2, or leave it out to read "
                         "the map from Consul")
    if options.replay is None and options.warmup >= options.max_time:
        raise UsageError(f"--warmup {options.warmup:g}s leaves nothing of --max-time {options.max_time:g}s to "
                         "judge: make the warm-up shorter than the run")
    if expects_consul(options.expect):
        if options.replay is not None:
            raise UsageError("--replay judges without any network: give the split, like --expect 85/15")
        # The subsets are Consul's: what needs no names is checked now, --baseline once they are read.
        WorseOptions.check(options.latency, options.latency_margin, options.error_margin, options.baseline)
        return
    if options.mapping:
        mapping = mapping_from_option(options.mapping)
        spec = resolve_spec(options.expect, mapping)
        _check_every_subset_mapped(spec, set(mapping.app_ids.values()), identity_names_subsets(options))
    else:
        spec = SplitSpec.parse(options.expect)  # the weights; positional names come from Consul's map
    if options.mapping:
        options.worse(spec)
    else:  # positional names (v1, v2) until Consul's map names the subsets: --baseline is checked then
        WorseOptions.check(options.latency, options.latency_margin, options.error_margin, options.baseline)
    n_max = budget(options, plan_sample_size(spec, options.config))  # the fixed test may need more than it can send
    if options.replay is None:
        check_budget(options, spec, n_max)


def identity_names_subsets(options: CanaryOptions) -> bool:
    """Whether answers may name their subset themselves rather than an APP_ID: a --subset-from rule
    other than auto (``json:upstream.version`` answering "v2") or the sidecar's clusters (envoy)."""
    return IdentityRule.parse(options.subset_from).kind != "auto"


def _check_every_subset_mapped(spec: SplitSpec, mapped: set[str], names_itself: bool) -> None:
    """--expect names a subset expected to get traffic that no --map APP_ID belongs to: every
    answer would be unknown to it and the run would FAIL a split it never measured."""
    missing = [name for name, w in zip(spec.names, spec.weights, strict=True) if w > 0 and name not in mapped]
    if missing and not names_itself:
        raise UsageError(f"--expect gives {', '.join(missing)} traffic, but no APP_ID in --map belongs to "
                         f"{'it' if len(missing) == 1 else 'them'} (--map maps to {', '.join(sorted(mapped))}): add "
                         f"APP_ID={missing[0]} to --map, or fix the subset's name")


def warmup_requests(rate: float, warmup: float) -> int:
    """How many requests the open-loop schedule intends in the warm-up: those due before ``warmup``
    (request k is due at k / rate). They come on top of the judged budget."""
    if warmup <= 0:
        return 0
    return max(0, math.ceil(rate * warmup - 1e-9))


def judged_by_time(options: CanaryOptions) -> int:
    """The most judged requests --max-time lets the schedule send at --rate after the warm-up."""
    return max(0, math.ceil(options.rate * options.max_time - 1e-9) - warmup_requests(options.rate, options.warmup))


def check_budget(options: CanaryOptions, spec: SplitSpec, n_max: int) -> None:
    """Refuse (UsageError) a budget that leaves the judge too few answers to decide the split even in
    its clearest cases (:func:`fewest_to_decide`): such a run can only end INCONCLUSIVE."""
    needed = fewest_to_decide(spec, options.config, options.method)
    what = (f"the {options.method} judge cannot decide {spec.as_percent()} at "
            f"{options.config.band_tolerance.describe().split(' (')[0]} on fewer than {needed:,} judged answers, not "
            "even when a subset gets none of them, so the run could only end INCONCLUSIVE")
    if n_max < needed:
        raise UsageError(f"--max-requests {n_max:,} is too few: {what}")
    by_time = judged_by_time(options)
    if by_time < needed:
        warm = f" after the {options.warmup:g}s warm-up" if options.warmup > 0 else ""
        raise UsageError(f"--max-time {options.max_time:g}s at --rate {options.rate:g}/s sends at most "
                         f"{by_time:,} judged request{'' if by_time == 1 else 's'}{warm}: {what}")


def budget(options: CanaryOptions, sample_plan: SampleSizePlan) -> int:
    if options.max_requests is not None:
        return options.max_requests
    if options.method == "fixed":
        if sample_plan.fixed_n is None:
            raise UsageError("the fixed test needs more than 10 million requests here; give --max-requests")
        return sample_plan.fixed_n
    return default_budget(sample_plan.fixed_n)


def reachability(options: CanaryOptions, spec: SplitSpec, n_max: int) -> tuple[bool, str]:
    """Can this run's budget reach a verdict at these bands? Said before anything is sent."""
    widths = options.config.half_widths(spec)
    bands = ", ".join(f"{name} {format_band(band_of(w, h))}"
                      for name, w, h in zip(spec.names, spec.weights, widths, strict=True))
    can_send = min(n_max, judged_by_time(options))
    # The sequential judge's mean n to PASS at the expected split is below the fixed test's n at
    # 90 % power in every simulated scenario (bench/README.md): fewer than that, and many runs end
    # undecided.
    needed = approximate_fixed_n(spec, options.config, power=0.9)
    if can_send < needed:
        limit = "--max-requests" if n_max <= judged_by_time(options) else \
            f"--max-time {options.max_time:g}s at --rate {options.rate:g}/s" + \
            (f" after the {options.warmup:g}s warm-up" if options.warmup > 0 else "")
        return False, (f"warning: bands {bands} need about {needed:,} requests for a verdict (fixed "
                       f"test at 90 % power; see --plan), but this run can send at most {can_send:,} "
                       f"({limit}): expect INCONCLUSIVE. Raise the budget, or widen --tolerance")
    return True, f"bands {bands}"
