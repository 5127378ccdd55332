"""Judge a recording (``--replay``) as the live run would have judged it, with no network."""

from __future__ import annotations

from collections.abc import Callable

from loadgen.canary.check import SplitCheck
from loadgen.canary.expectation import Expectation, expects_consul, mapping_from_option, resolve_spec
from loadgen.canary.options import CanaryOptions
from loadgen.canary.progress import Snapshot
from loadgen.canary.result import CanaryResult
from loadgen.errors import UsageError
from loadgen.load.recording_order import samples_in_send_order
from loadgen.load.sample import read_samples
from loadgen.mesh.subsets import SubsetMap
from loadgen.stats import Verdict

__all__ = ["REPLAY_LOOK_EVERY", "replay"]

REPLAY_LOOK_EVERY = 50  # samples between looks when replaying a recording


def replay(options: CanaryOptions, on_look: Callable[[Snapshot], None] | None = None) -> CanaryResult:
    """Judge a recording as the live run would have, in send order, looking every REPLAY_LOOK_EVERY samples.

    The file is read twice, streaming (a long recording is never held in memory): once to
    check every line and learn the subsets recorded, so a bad line is exit 2 with nothing
    judged, then to judge."""
    assert options.replay is not None
    path = options.replay
    if expects_consul(options.expect):
        raise UsageError("--replay judges without any network: give the split, like --expect 85/15")
    recorded: dict[str, str] = {}
    total = 0
    last_t, in_order = float("-inf"), True
    for sample, sub in read_samples(path):
        total += 1
        if sample.app_id is not None and sub is not None:
            recorded[sample.app_id] = sub
        in_order = in_order and sample.t >= last_t
        last_t = sample.t
    if options.mapping:
        mapping = mapping_from_option(options.mapping)
    else:
        if not recorded:
            raise UsageError(f"{path} records no subsets (it was not written by loadgen): give --map 1=v1,2=v2")
        # The subsets recorded beside each answer are the map the live run used.
        mapping = SubsetMap(tuple(sorted(set(recorded.values()))), recorded, f"recorded in {path.name}")
        if "=" not in options.expect and len(options.expect.split("/")) != len(mapping.subsets):
            # A recording only knows the subsets that answered: a dead canary's has none of its rows.
            # Positional weights then name the subsets v1, v2, ... as usual.
            mapping = SubsetMap((), mapping.app_ids, mapping.source)
    spec = resolve_spec(options.expect, mapping)
    check = SplitCheck(Expectation(spec, mapping), options.config, options.method, options.warmup,
                       worse=options.worse(spec))
    verdict: Verdict | None = None
    last_t = 0.0
    # Judged in send order (by t), as the live run judges, whatever the order of the lines.
    for i, (sample, _) in enumerate(samples_in_send_order(path, known_in_order=in_order), start=1):
        check.add(sample)
        last_t = sample.t
        if options.method == "sequential" and i % REPLAY_LOOK_EVERY == 0:
            verdict = check.look(sample.t)
            if on_look:
                on_look(Snapshot(verdict, i, sample.t, check.tally.error_count))
            if verdict.decided:
                break
    used = check.tally.sent + check.warm.sent
    # Answers whose names are neither mapped APP_IDs nor subset names: the map is wrong, not the split.
    if unmapped := check.expectation.unmapped_identities(check.tally.app_ids + check.warm.app_ids, final=True):
        raise UsageError(f"{path}: {unmapped}")
    if verdict is None or not verdict.decided:
        verdict = check.look(last_t if used else None, final=True)
    return check.result(
        verdict, target=f"replay of {path}", requests=used, duration_s=last_t if used else 0.0,
        stopped_by="verdict" if verdict.decided and used < total else "end of recording", replayed_from=str(path),
    )
