"""What a canary run is asked to do, checked before anything starts, and its request budget."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from loadgen.canary.expectation import expects_consul, mapping_from_option, resolve_spec
from loadgen.errors import UsageError
from loadgen.load.client import Endpoint, TlsOptions
from loadgen.load.identity import IdentityRule
from loadgen.stats import JudgeConfig, SampleSizePlan, SplitSpec, plan_sample_size
from loadgen.stats.bands import band_of, format_band
from loadgen.stats.plan import approximate_fixed_n, default_budget

__all__ = ["DEFAULT_WARMUP_S", "CanaryOptions", "budget", "reachability", "validate"]

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


def validate(options: CanaryOptions) -> None:
    """Every check that needs no network, made before anything is started or sent: a mistake
    in the options must never cost a mesh bring-up (nor hide a verdict after the run)."""
    if options.consul is not None and not options.consul.strip():
        # Not "no --consul": an empty one would fall back to CONSUL_HTTP_ADDR or the local agent unasked.
        raise UsageError("--consul is empty: give [http|https://]host:port, or leave it out")
    if options.record is not None and options.replay is not None:
        raise UsageError("--record and --replay cannot be used together")
    if options.target is not None:
        Endpoint.parse(options.target, "--target")
        if options.tls is not None and Endpoint.parse(options.target).scheme != "https":
            raise UsageError("--cacert and --insecure are for an https:// --target")
    if options.tls is not None:
        options.tls.context()  # a CA file that is missing or not PEM: one line now
    IdentityRule.parse(options.subset_from)
    if not options.request_method.isalpha():
        raise UsageError(f"-X {options.request_method!r} is not an HTTP method (GET, POST, PUT, ...)")
    if options.mapping is not None and not options.mapping.strip():
        raise UsageError("--map is empty: give APP_ID=SUBSET pairs like 1=v1,2=v2, or leave it out to read "
                         "the map from Consul")
    if expects_consul(options.expect):
        if options.replay is not None:
            raise UsageError("--replay judges without any network: give the split, like --expect 85/15")
        return
    if options.mapping:
        spec = resolve_spec(options.expect, mapping_from_option(options.mapping))
    else:
        spec = SplitSpec.parse(options.expect)  # the weights; positional names come from Consul's map
    budget(options, plan_sample_size(spec, options.config))  # the fixed test may need more than it can send


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
    can_send = min(n_max, int(options.rate * options.max_time))
    # The sequential judge's mean n to PASS at the expected split is below the fixed test's n at
    # 90 % power in every simulated scenario (bench/README.md): fewer than that, and many runs end
    # undecided.
    needed = approximate_fixed_n(spec, options.config, power=0.9)
    if can_send < needed:
        limit = "--max-requests" if n_max <= options.rate * options.max_time else \
            f"--max-time {options.max_time:g}s at --rate {options.rate:g}/s"
        return False, (f"warning: bands {bands} need about {needed:,} requests for a verdict (fixed "
                       f"test at 90 % power; see --plan), but this run can send at most {can_send:,} "
                       f"({limit}): expect INCONCLUSIVE. Raise the budget, or widen --tolerance")
    return True, f"bands {bands}"
