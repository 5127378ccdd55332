"""A distributed Locust run judges every worker's last answers, not only those that made it in time.

Locust's master, on quit, sends "quit" to its workers and waits 0.5 s for their final stats
before it stops listening (runners.MasterRunner.quit); a worker on a busy machine can take longer,
and the master then judges (and reports) fewer answers than the workers got. So the master's quit
first stops the workers ("stop": each stops its users, releases what was in flight and sends its
final counts in a "loadgen_final" message), waits for one from every worker, bounded by
FINAL_WAIT_S, and only then quits as Locust does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gevent

__all__ = ["FINAL_MESSAGE", "FINAL_WAIT_S", "FinalReports"]

FINAL_MESSAGE = "loadgen_final"
FINAL_WAIT_S = 10.0


class FinalReports:
    """On the master: which workers have sent their final counts; ``take`` stores each one."""

    def __init__(self, take: Callable[[str, dict[str, Any]], None]) -> None:
        self.take = take
        self.received: set[str] = set()

    def install(self, runner: Any) -> None:
        """Register the message and wrap ``runner.quit`` (the -t limit, a verdict and Ctrl-C all quit)."""
        runner.register_message(FINAL_MESSAGE, self._on_final)
        locust_quit = runner.quit

        def quit_after_final_reports() -> None:
            workers = set(runner.clients.keys()) if hasattr(runner.clients, "keys") else set()
            if workers - self.received:
                runner.stop()  # "stop" to every worker: each answers with its final counts
                deadline = time.monotonic() + FINAL_WAIT_S
                while workers - self.received and time.monotonic() < deadline:
                    gevent.sleep(0.05)
            locust_quit()

        runner.quit = quit_after_final_reports

    def _on_final(self, environment: Any, msg: Any, **_kw: Any) -> None:
        self.take(msg.node_id, msg.data)
        self.received.add(msg.node_id)
