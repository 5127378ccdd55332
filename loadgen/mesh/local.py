"""Borrowing the local mesh for one command: bring a stage up if needed, put things back after.

``with borrowed_stage("splitter", say) as target:`` uses the running mesh as it is when
it is at that stage, otherwise brings the stage up and says so; on leaving it restores
what was there before: the previous stage, or nothing. ``with stage_walk(say) as borrow:``
does the same for several stages in turn, restoring once at the end.

Several commands may borrow the mesh at once (two canaries in two shells). The run directory
counts them (:class:`loadgen.mesh.state.Loan`), so:

- a borrower that needs the stage the others use joins them; one that needs another stage is
  refused (exit 5) instead of switching the stage under them;
- only the last live borrower puts back what the FIRST one found; the others leave the mesh
  as it is for those still using it. A borrower killed with -9 is seen to be gone (pid and
  start time) and ignored; its duty passes to whoever is last;
- a person's `loadgen down` refuses while borrowers are live (naming them) unless --force, and
  `loadgen up` refuses to switch the stage under them unless --force; an `up` of the stage
  they use is allowed (a repair) and makes that stage what stays after them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from loadgen.errors import ExitCode, LoadgenError
from loadgen.mesh.runtime.base import Progress, Runtime, Target
from loadgen.mesh.runtime.select import runtime_for
from loadgen.mesh.state import Borrower, describe_borrowers, join, leave, returned, user_took_over

if TYPE_CHECKING:  # `loadgen down` reads no stage file
    from loadgen.mesh.stages import Stage, StageBook

# How long a borrower waits for another command that is changing the mesh (a bring-up or a
# restore: each bounded by `up`'s 90 s live timeout) before it gives up.
LOCK_WAIT = 300.0


@contextlib.contextmanager
def borrowed_stage(stage_name: str, say: Progress, runtime: Runtime | None = None) -> Iterator[Target]:
    with stage_walk(say, runtime) as borrow:
        yield borrow(stage_name)


@contextlib.contextmanager
def stage_walk(say: Progress, runtime: Runtime | None = None) -> Iterator[Callable[[str], Target]]:
    """Borrow the local mesh for one stage after another (`run --all-stages`): ``borrow(stage)``
    switches it in place, and what was there before the first is put back once, when the walk
    ends (normally, on an error or a signal), not between stages."""
    from loadgen.mesh.stages import load_stages

    book = load_stages()
    rt = runtime or runtime_for(book=book)
    me: Borrower | None = None

    def borrow(stage_name: str) -> Target:
        nonlocal me
        stage = book.get(stage_name)
        walking, me = me is not None, Borrower.me(stage_name)
        # Held from the look at the state until the stage is live, so that a second borrower waits
        # for the first one's bring-up and then joins it, instead of starting its own.
        with rt.run.locked(wait=LOCK_WAIT, on_wait=say):
            state = rt.run.load()
            as_it_is = join(state, me)  # refuses (exit 5) rather than switch the stage under someone
            rt.run.save(state)
            loan = state.loan
            assert loan is not None
            others = loan.live(besides=me)
            if as_it_is:
                # Used as it is, even with a part down: its config may have been changed on purpose
                # since `up`, and a stopped instance is exactly what a canary must notice. Repairs
                # are `loadgen up`'s job.
                down = [c.name for c in rt.status().components if not c.running]
                say(f"using the local mesh at stage {stage_name}"
                    + (f" (not running: {', '.join(down)})" if down else "")
                    + (f", shared with {describe_borrowers(others)}" if others else ""))
                return rt.current_target(stage)
            if walking:
                say(f"switching the local mesh to stage {stage_name}")
            else:
                what = "nothing was running" if loan.found is None else f"it was at stage {loan.found}"
                say(f"bringing the local mesh up at stage {stage_name} ({what}; it is put back afterwards)")
            try:
                return rt.up(stage, say)
            except BaseException:
                # Failed or interrupted (Ctrl-C, SIGTERM) half way: no half-up mesh is left behind.
                # `up` already took down what it started on a first bring-up; a switch is undone.
                _give_back(rt, book, me, say, failed=True)
                me = None
                raise

    try:
        yield borrow
    finally:
        if me is not None:
            _give_back(rt, book, me, say)


def _give_back(rt: Runtime, book: StageBook, me: Borrower, say: Progress, failed: bool = False) -> None:
    with rt.run.locked(wait=LOCK_WAIT, on_wait=say):
        state = rt.run.load()
        back = leave(state, me)
        if back.taken_away:
            if not failed:
                say("the local mesh was taken down or over by someone else meanwhile; leaving it as it is")
            return
        if back.others:
            rt.run.save(state)
            say(f"leaving the local mesh up at stage {state.stage}: still used by {describe_borrowers(back.others)}")
            return
        try:
            if back.found is None:
                if not state.empty:
                    say("taking the local mesh down again, as it was")
                rt.down()
            elif state.empty or back.found != state.stage:
                say(f"putting the local mesh back to stage {back.found}")
                rt.up(book.get(back.found))
        except LoadgenError as exc:
            if not failed:
                raise
            # The bring-up's own error is the one to report; this one is a footnote.
            say(f"could not put the local mesh back ({exc.message}); see `loadgen status`")
            return
        state = rt.run.load()
        if not state.empty:
            returned(state)
            rt.run.save(state)


def up_for_user(rt: Runtime, stage: Stage, say: Progress, force: bool = False) -> Target:
    """`loadgen up`: refuses to switch the stage under live borrowers unless ``force``."""
    with rt.run.locked():
        state = rt.run.load()
        live = state.loan.live() if state.loan else []
        if live and not force and (state.stage != stage.name or any(b.stage != stage.name for b in live)):
            raise LoadgenError(
                f"the local mesh is in use by {describe_borrowers(live)}; switching it to stage {stage.name} "
                "would change it under them: wait for them to end, or add --force",
                ExitCode.ENVIRONMENT,
            )
        if live and force:
            say(f"switching the local mesh under {describe_borrowers(live)} (--force)")
        target = rt.up(stage, say)
        state = rt.run.load()
        if state.loan is not None:
            user_took_over(state, stage.name)
            rt.run.save(state)
        return target


def down_for_user(rt: Runtime, say: Progress, force: bool = False) -> list[str]:
    """`loadgen down`: refuses while commands borrow the mesh unless ``force``.

    They would fail with connection errors (a canary would report a false FAIL), and they put
    the mesh back themselves when they end.
    """
    with rt.run.locked():
        state = rt.run.load()
        live = state.loan.live() if state.loan else []
        if live and not force:
            raise LoadgenError(
                f"the local mesh is in use by {describe_borrowers(live)}; they put it back when they end "
                "(taking it down if they brought it up): wait for them, or `loadgen down --force`",
                ExitCode.ENVIRONMENT,
            )
        if live:
            say(f"taking the local mesh down under {describe_borrowers(live)} (--force)")
        return rt.down(say)
