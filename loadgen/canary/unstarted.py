"""The result of a canary stopped (Ctrl-C, SIGTERM, or an error) before it had a verdict.

The set-up can take a while -- a mesh brought up, Consul read, a slow target probed -- and a
CI job cancelled meanwhile must still find every output it asked for. This result says what
happened: INCONCLUSIVE, n = 0, "terminated (SIGTERM) before any request was sent", and the
expected split when the options give it (``--expect consul`` is known only once Consul was
read: null then).
"""

from __future__ import annotations

import dataclasses
from collections import Counter

from loadgen import interrupts
from loadgen.canary.expectation import expects_consul, mapping_from_option, resolve_spec
from loadgen.canary.options import CanaryOptions
from loadgen.canary.result import CanaryResult
from loadgen.errors import LoadgenError
from loadgen.mesh.subsets import SubsetMap
from loadgen.stats import Verdict, VerdictState, make_judge, plan_sample_size

__all__ = ["unstarted_reason", "unstarted_result"]


def unstarted_reason(signum: int) -> str:
    return f"{interrupts.describe(signum)} before any request was sent"


def unstarted_result(options: CanaryOptions, signum: int | None, target: str | None = None,
                     error: LoadgenError | None = None) -> CanaryResult:
    """INCONCLUSIVE with nothing judged; its exit code is the signal's (130 or 143), or, given
    ``error`` (the target or the mesh unreachable, a mesh that did not come up, an input error
    only the answers could reveal), the error's own: every requested output still says why."""
    reason = unstarted_reason(signum) if signum is not None else f"no verdict: {error}"
    if options.mapping:
        mapping = mapping_from_option(options.mapping)
    else:
        mapping = SubsetMap((), {}, "not read: the run was stopped before it started")
    spec = None if expects_consul(options.expect) else resolve_spec(options.expect, mapping)
    if spec is not None:
        nothing = make_judge(spec, options.config, options.method).finish(Counter(), 0, 0, None)
        verdict = dataclasses.replace(nothing, reason=reason)
        plan = plan_sample_size(spec, options.config)
    else:
        verdict = Verdict(state=VerdictState.INCONCLUSIVE, n=0, subsets=(), reason=reason, method=options.method,
                          tolerance=options.config.tolerance, alpha=options.config.alpha, srm_p=None)
        plan = None
    return CanaryResult(
        verdict=verdict, spec=spec, mapping=mapping, plan=plan,
        target=target or options.target or "the local mesh", requests=0, duration_s=0.0,
        rate_asked=options.rate, rate_achieved=None, app_id_counts={}, errors={}, latency_ms={},
        stopped_by="interrupted" if signum is not None else "error", signum=signum, identity=options.subset_from,
        notes=[f"{reason}: nothing was judged"], error_code=None if error is None else error.code,
    )
