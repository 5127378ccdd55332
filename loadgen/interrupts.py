"""Ctrl-C and SIGTERM, treated alike: stop sending, keep and report what was collected, exit.

``timeout``, CI cancellation, ``docker stop`` and systemd send SIGTERM; people press Ctrl-C
(SIGINT). loadgen handles both the same way and only the exit code tells them apart
(130 = 128 + SIGINT, 143 = 128 + SIGTERM, as shells report them).

Two places see a stop signal:

- **Inside a load loop** (:func:`stop_on_signals`): the first signal only asks the loop to
  stop, so in-flight requests finish and the judge and the reports still run; a second one
  stops hard (raises :class:`Interrupted`).
- **Anywhere else** (bringing the mesh up, probing, writing): :func:`install` makes SIGTERM
  raise :class:`Terminated`, a ``KeyboardInterrupt`` like the one Ctrl-C raises, so every
  ``finally`` (taking down what the command brought up, closing files) runs for both.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from types import FrameType
from typing import TYPE_CHECKING

from loadgen.errors import ExitCode

if TYPE_CHECKING:  # every command imports this module; only the load loops need asyncio
    import asyncio

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A stop signal outside a load loop (or a second one inside it)."""

    signum: int = signal.SIGINT


class Terminated(Interrupted):
    """SIGTERM."""

    signum = signal.SIGTERM


def exit_code(signum: int) -> ExitCode:
    return ExitCode.TERMINATED if signum == signal.SIGTERM else ExitCode.INTERRUPTED


def describe(signum: int) -> str:
    """How an output says the run was stopped: "interrupted" or "terminated (SIGTERM)"."""
    return "terminated (SIGTERM)" if signum == signal.SIGTERM else "interrupted"


def _raise_terminated(_signum: int, _frame: FrameType | None) -> None:
    raise Terminated()


def install() -> None:
    """Make SIGTERM raise :class:`Terminated` in the main thread (Ctrl-C already raises)."""
    signal.signal(signal.SIGTERM, _raise_terminated)


@contextlib.contextmanager
def stop_on_signals(loop: asyncio.AbstractEventLoop, on_stop: Callable[[int], None]) -> Iterator[None]:
    """While inside, the first SIGINT or SIGTERM calls ``on_stop(signum)`` (the loop then stops
    by itself); a second one of either kind raises :class:`Interrupted` / :class:`Terminated`."""
    fired: list[int] = []

    def handler(signum: int) -> None:
        if fired:
            raise Terminated() if signum == signal.SIGTERM else Interrupted()
        fired.append(signum)
        on_stop(signum)

    installed = []
    for signum in STOP_SIGNALS:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, handler, signum)
            installed.append(signum)
    try:
        yield
    finally:
        for signum in installed:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signum)
        if signal.SIGTERM in installed:
            # remove_signal_handler restores SIG_DFL; keep SIGTERM raising outside the loop.
            with contextlib.suppress(ValueError):
                install()


@contextlib.contextmanager
def flag_on_signals(on_stop: Callable[[int], None]) -> Iterator[None]:
    """The same without an event loop (a parent waiting on worker processes): the first signal
    calls ``on_stop(signum)``, a second raises."""
    fired: list[int] = []

    def handler(signum: int, _frame: FrameType | None) -> None:
        if fired:
            raise Terminated() if signum == signal.SIGTERM else Interrupted()
        fired.append(signum)
        on_stop(signum)

    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM for a moment that must not be cut: starting a part and recording
    it (else it runs on, unknown to `down`), or cleaning up (a second press would leave half a
    mesh). One that comes meanwhile is acted on (raises) as soon as the block is done.

    Python handlers that note the signal, not a blocked signal mask: the parts started inside
    would inherit the mask and then ignore the SIGTERM that `down` stops them with.
    """
    caught: list[int] = []

    def note(signum: int, _frame: FrameType | None) -> None:
        caught.append(signum)

    try:
        previous = {s: signal.signal(s, note) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: signals are not delivered here anyway
        yield
        return
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if caught:
            handler = previous[caught[0]]
            if callable(handler):
                handler(caught[0], None)  # raises KeyboardInterrupt / Terminated
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), caught[0])
