"""A stand-in for service-a on an ephemeral 127.0.0.1 port, for tests that need a real HTTP
target but not the mesh (and so can run beside mesh tests on their fixed ports).

Run as ``python -m tests.integration.local_target --delay-ms 50``: it prints its port on
the first line of stdout, answers GET /hello_a like service-a (JSON with ``app_id`` and an
X-App-Id header, APP_IDs 1 and 2 in turn) after the delay, and GET /count with how many
/hello_a requests it has received so far.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import httpx


def _serve(delay_s: float) -> None:
    from aiohttp import web

    seen = [0]

    async def hello(_request: web.Request) -> web.Response:
        seen[0] += 1
        app_id = str(1 + seen[0] % 2)
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        return web.json_response({"service": "local-target", "app_id": app_id}, headers={"X-App-Id": app_id})

    async def count(_request: web.Request) -> web.Response:
        return web.json_response({"count": seen[0]})

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/hello_a", hello)
        app.router.add_get("/count", count)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        port = runner.addresses[0][1]
        print(port, flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


@dataclass
class Target:
    proc: subprocess.Popen[str]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hello_a"

    def count(self) -> int:
        return int(httpx.get(f"http://127.0.0.1:{self.port}/count", timeout=5).json()["count"])


@contextlib.contextmanager
def local_target(delay_ms: float = 0) -> Iterator[Target]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.integration.local_target", "--delay-ms", str(delay_ms)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.strip():
            raise RuntimeError(f"local target did not start (exit {proc.poll()})")
        yield Target(proc, int(line))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--delay-ms", type=float, default=0.0)
    _serve(parser.parse_args().delay_ms / 1000)
