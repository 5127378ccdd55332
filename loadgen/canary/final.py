"""The canary's final verdict: what the traffic says, then what the client sidecar says.

Every path that ends a canary -- ``loadgen canary`` (live), the Locust gate, and ``shift``'s
verifications (which go through :func:`loadgen.canary.live.run_live`) -- turns the judge's
last look into the verdict it reports and exits with here, so a stale sidecar FAILs all of
them alike and an interrupted, undecided run says why in all of them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from loadgen import interrupts
from loadgen.canary.three_way import ThreeWay
from loadgen.stats import Verdict, VerdictState

__all__ = ["FinalVerdict", "final_verdict"]


@dataclass(frozen=True)
class FinalVerdict:
    verdict: Verdict  # what every output reports and the exit code follows
    notes: list[str] = field(default_factory=list)  # what the sidecar's reading added (agreement, failover, ...)
    three_way: dict[str, Any] | None = None  # ThreeWay.to_json of the final verdict (None: no three-way)


def final_verdict(traffic: Verdict, three: ThreeWay | None, answered: Mapping[str, int] | None, alpha: float,
                  signum: int | None = None) -> FinalVerdict:
    """The verdict of a canary run from its traffic's last look (``judge.finish``).

    ``three``: the Consul and Envoy columns, already read after the run (``ThreeWay.after``);
    a sidecar whose route is not Consul's turns any traffic verdict into FAIL (the traffic's
    own kept in the reason). ``answered``: successful answers per subset, checked against the
    sidecar's counters (None when the counts *are* the counters, ``--subset-from envoy``).
    ``signum``: the signal that stopped the run; an undecided verdict then says so."""
    verdict = traffic
    if signum is not None and verdict.state is VerdictState.INCONCLUSIVE:
        verdict = dataclasses.replace(verdict, reason=f"{interrupts.describe(signum)}: {verdict.reason}")
    if three is None:
        return FinalVerdict(verdict)
    verdict, notes = three.judge(verdict, answered, alpha)
    return FinalVerdict(verdict, notes, three.to_json(verdict))
