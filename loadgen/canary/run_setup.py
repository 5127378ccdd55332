"""What every live canary sets up before its first request, whoever sends the requests (this
process: canary.live; remote workers: distributed.canary_run): the expectation (Consul's chain or
the given split and map), the check that judges it, the budget, and the load plan.

Nothing is sent here: the caller says ``about`` when the budget cannot reach a verdict, probes the
target (load.reachable) and says the ``later`` lines once it answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from loadgen.canary.check import SplitCheck
from loadgen.canary.expectation import Expectation, resolve_expectation
from loadgen.canary.options import CanaryOptions, budget, check_budget, reachability, warmup_requests
from loadgen.load.engine import LoadPlan
from loadgen.load.identity import IdentityRule
from loadgen.mesh.consul_api import ConsulClient

__all__ = ["RunSetup", "set_up_run"]


@dataclass(frozen=True)
class RunSetup:
    expectation: Expectation
    check: SplitCheck
    n_max: int  # judged requests at most (the warm-up's come on top)
    reachable: bool  # the budget can reach a verdict
    about: str  # what reachability says of the budget
    warm: int  # the warm-up's requests
    load: LoadPlan
    later: list[str]  # lines to say once the target is known to answer (its error is the one line otherwise)


def set_up_run(options: CanaryOptions, target_url: str, consul: ConsulClient | None, identity: IdentityRule,
               say: Callable[[str], None], refuse_undecidable: bool) -> RunSetup:
    """``refuse_undecidable``: a budget too small to decide the split (``--expect consul``'s, known only
    now) is a UsageError before anything is sent."""
    later: list[str] = []
    expectation = resolve_expectation(
        options.expect, options.mapping, consul, service=options.service, upstream=options.upstream,
        headers=options.headers, path=options.upstream_path, counts_from_envoy=identity.kind == "envoy",
        say=later.append)
    spec, mapping = expectation.spec, expectation.mapping
    if expectation.unmapped_subsets:
        say(f"warning: no APP_ID maps to subset {', '.join(expectation.unmapped_subsets)} ({mapping.source})")
    check = SplitCheck(expectation, options.config, options.method, options.warmup, worse=options.worse(spec))
    n_max = budget(options, check.sample_plan)
    if refuse_undecidable:
        check_budget(options, spec, n_max)
    reachable, about = reachability(options, spec, n_max)
    # The warm-up's requests are not judged: they come on top of the budget, so the judge still
    # gets the n it was planned for (the fixed test's n, or --max-requests).
    warm = warmup_requests(options.rate, options.warmup)
    load = LoadPlan(url=target_url, rate=options.rate, max_requests=n_max + warm, max_time=options.max_time,
                    timeout=options.timeout, headers=options.headers, identity=identity,
                    method=options.request_method, body=options.body, tls=options.tls)
    return RunSetup(expectation, check, n_max, reachable, about, warm, load, later)
