"""`loadgen serve`'s application on a loopback port 0, in a thread of the test process, and a
stand-in target answering X-App-Id 1 or 2 at random (no Consul: canaries give --map 1=v1,2=v2)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections.abc import Iterator
from typing import Any

from aiohttp import web

from loadgen.serve.app import ServeSettings, build_app
from loadgen.serve.connections import CappedSite
from loadgen.serve.runs import Runs
from tests.unit.standin_target import standin_target


@contextlib.contextmanager
def serving(settings: ServeSettings | None = None, runs: Runs | None = None, keepalive_timeout: float = 5.0,
            max_connections: int = 100, **app: Any) -> Iterator[str]:
    """The server's base URL (http://127.0.0.1:PORT) while inside. ``keepalive_timeout``: also how long
    aiohttp waits for a request's headers (loadgen serve uses 15 s); ``max_connections`` as
    `loadgen serve --max-connections` (its site, loadgen.serve.connections.CappedSite)."""
    runs = runs or Runs(max_runs=4)
    application = build_app(runs, settings or ServeSettings(), **app)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, Any] = {}

    async def start() -> None:
        runner = web.AppRunner(application, keepalive_timeout=keepalive_timeout)
        await runner.setup()
        site = CappedSite(runner, "127.0.0.1", 0, max_connections)
        await site.start()
        holder["runner"] = runner
        holder["port"] = runner.addresses[0][1]
        started.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(start()), loop.run_forever()), daemon=True)
    thread.start()
    assert started.wait(10), "the server did not start"
    try:
        yield f"http://127.0.0.1:{holder['port']}"
    finally:
        runs.cancel_all()
        asyncio.run_coroutine_threadsafe(holder["runner"].cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@contextlib.contextmanager
def split_target(p_v1: float = 0.85, seed: int = 7) -> Iterator[str]:
    """service-a stand-in: each answer names APP_ID 1 with probability ``p_v1``, else 2."""
    rng = random.Random(seed)
    lock = threading.Lock()

    def answer(_n: int) -> tuple[int, str]:
        with lock:
            return 200, "1" if rng.random() < p_v1 else "2"

    with standin_target(answer) as url:
        yield url
