"""A canary's tally: the shared :class:`~loadgen.load.tally.Tally`, plus when each subset last
answered -- what tells a subset that went silent mid-run from one that is merely small."""

from __future__ import annotations

from collections import Counter

from loadgen.canary.expectation import Expectation
from loadgen.load.sample import Sample
from loadgen.load.tally import Tally

__all__ = ["SplitTally"]


class SplitTally(Tally):
    def __init__(self, expectation: Expectation) -> None:
        super().__init__()
        self.expectation = expectation
        self.last_seen: dict[str, float] = {}  # subset -> intended start of its latest answer
        self.classified = 0  # answers from a subset of the spec
        self.classified_at_last: dict[str, int] = {}  # subset -> self.classified at its latest answer
        self.last_error_t = 0.0

    def add(self, sample: Sample) -> str | None:  # type: ignore[override]
        """Count the sample; return the subset the APP_ID map gives it (written beside it in a
        recording, so a replay knows the map), None for a failed request or an unmapped APP_ID."""
        super().add(sample)
        if not sample.ok:
            self.last_error_t = max(self.last_error_t, sample.t)
            return None
        assert sample.app_id is not None
        subset = self.expectation.subset_of(sample.app_id)
        if subset is None:
            return self.expectation.mapping.subset_of(sample.app_id)  # mapped, but not a subset of the spec
        self.classified += 1
        if sample.t >= self.last_seen.get(subset, 0.0):
            self.last_seen[subset] = sample.t
            self.classified_at_last[subset] = self.classified
        return subset

    def counts(self) -> tuple[Counter[str], int]:
        """Answers per subset of the spec and the unknown ones, as the judge takes them."""
        return self.expectation.classify(self.app_ids)

    def went_silent(self, end: float, improbable: float = 1e-4) -> list[str]:
        """Subsets that answered earlier, then stayed silent through so many answers of the others
        that, at their expected weight, a silence that long has probability < ``improbable``, while
        requests kept failing: the ones that became unreachable mid-run. Counted in answers, not
        seconds, so it holds at any rate and for any weight (and as soon as the judge stops a run)."""
        spec = self.expectation.spec
        out = []
        for name in spec.names:
            seen = self.last_seen.get(name)
            weight = spec.weight(name)
            if seen is None or weight <= 0 or self.last_error_t <= seen:
                continue
            since = self.classified - self.classified_at_last[name]
            if since > 0 and (1 - weight) ** since < improbable:
                out.append(f"{name} stopped answering {end - seen:.1f}s before the end (last answer at {seen:.1f}s, "
                           f"{since:,} answers of the others since) while requests kept failing")
        return out
