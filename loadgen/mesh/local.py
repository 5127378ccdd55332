"""Borrowing the local mesh for one command: bring a stage up if needed, put things back after.

``with borrowed_stage("splitter", say) as target:`` uses the running mesh as it is when
it is at that stage, otherwise brings the stage up and says so; on leaving it restores
what was there before: the previous stage, or nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from loadgen.mesh.runtime.base import Progress, Target
from loadgen.mesh.runtime.process import ProcessRuntime
from loadgen.mesh.runtime.select import runtime_for
from loadgen.mesh.stages import load_stages


@contextlib.contextmanager
def borrowed_stage(stage_name: str, say: Progress, runtime: ProcessRuntime | None = None) -> Iterator[Target]:
    book = load_stages()
    stage = book.get(stage_name)
    rt = runtime or runtime_for(book=book)
    before = rt.run.load()
    previous = before.stage if not before.empty else None
    if previous == stage_name:
        # Used as it is, even with a part down: its config may have been changed on purpose
        # since `up`, and a stopped instance is exactly what a canary must notice. Repairs
        # are `loadgen up`'s job.
        down = [c.name for c in rt.status().components if not c.running]
        say(f"using the local mesh at stage {stage_name}"
            + (f" (not running: {', '.join(down)})" if down else ""))
        target = rt.current_target(stage)
    else:
        what = "nothing was running" if previous is None else f"it was at stage {previous}"
        say(f"bringing the local mesh up at stage {stage_name} ({what}; it is put back afterwards)")
        target = rt.up(stage, say)
    try:
        yield target
    finally:
        if previous is None:
            say("taking the local mesh down again, as it was")
            rt.down()
        elif previous != stage_name:
            say(f"putting the local mesh back to stage {previous}")
            rt.up(book.get(previous))
