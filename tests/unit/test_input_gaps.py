"""Issue 25, item 12 (the engine's share): replays that cannot be judged are input errors, an
empty APP_ID is none wherever it comes from, connection failures are named for what they are,
a silent target is not blamed on the generator, a flood of unknown APP_IDs is summed up, and
a method or path that is not ASCII never goes out as raw latin-1."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading

import pytest

from loadgen.canary.expectation import Expectation
from loadgen.errors import UsageError
from loadgen.load.client import Client, Endpoint, RequestError
from loadgen.load.engine import LoadPlan, run_load
from loadgen.load.identity import AUTO, IdentityRule
from loadgen.load.sample import read_samples
from loadgen.mesh.subsets import SubsetMap
from loadgen.stats import SplitSpec
from tests.unit.cli_in_process import loadgen_in_process


def _line(**fields):
    base = {"t": 0.5, "status": 200, "app_id": "1", "latency_ms": 1.0, "error": None}
    return json.dumps({**base, **fields}) + "\n"


# -- replays ---------------------------------------------------------------------------------
@pytest.mark.parametrize("content", ["", "\n\n"])
def test_an_empty_replay_is_an_input_error_even_with_a_map(tmp_path, content):
    path = tmp_path / "empty.jsonl"
    path.write_text(content)
    result = loadgen_in_process("canary", "--replay", str(path), "--expect", "85/15", "--map", "1=v1,2=v2",
                                tmp_path=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "holds no samples" in result.stderr


@pytest.mark.parametrize("fields,complaint", [({"t": -1.0}, "t must be"), ({"app_id": True}, "app_id must be"),
                                              ({"app_id": False}, "app_id must be")])
def test_a_negative_t_or_a_boolean_app_id_is_refused_with_its_line(tmp_path, fields, complaint):
    path = tmp_path / "bad.jsonl"
    path.write_text(_line() + _line(**fields))
    with pytest.raises(UsageError, match=rf"bad.jsonl:2: {complaint}"):
        list(read_samples(path))


@pytest.mark.parametrize("app_id", ["", "  "])
def test_an_empty_app_id_in_a_replay_is_no_app_id(tmp_path, app_id):
    path = tmp_path / "r.jsonl"
    path.write_text(_line(app_id=app_id))
    [(sample, _)] = list(read_samples(path))
    assert sample.app_id is None and not sample.ok and sample.error == "no_app_id"


# -- an empty APP_ID is none, in a header or a JSON body --------------------------------------
@pytest.mark.parametrize("rule,headers,body", [
    (AUTO, {"X-App-Id": ""}, b""),
    (AUTO, {}, b'{"app_id": ""}'),
    (AUTO, {"X-App-Id": " "}, b'{"app_id": " "}'),
    (IdentityRule.parse("json:upstream.app_id"), {}, b'{"upstream": {"app_id": ""}}'),
    (IdentityRule.parse("header:x-backend"), {"X-Backend": ""}, b""),
])
def test_an_empty_identity_names_no_backend(rule, headers, body):
    assert rule.of(headers, body) is None


def test_an_empty_header_falls_back_to_the_body_as_before():
    assert AUTO.of({"X-App-Id": ""}, b'{"app_id": "2"}') == "2"


# -- connection failures named for what they are ------------------------------------------------
def _send_once(client: Client) -> RequestError:
    async def go() -> RequestError:
        try:
            await client.send()
        except RequestError as exc:
            return exc
        finally:
            client.close()
        raise AssertionError("the request was answered")

    return asyncio.run(go())


def test_a_name_that_does_not_resolve_is_a_dns_error_not_a_refusal():
    error = _send_once(Client("http://no-such-host.invalid:3000/hello_a", connect_timeout=2.0))
    assert error.kind == "dns_error", error


@contextlib.contextmanager
def _silent_plain_server():
    """Accepts connections and reads, never answering: a plain-HTTP server waiting for a request line
    that a TLS ClientHello never completes."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    held: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = listener.accept()
                held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        for conn in held:
            conn.close()


def test_tls_to_a_plain_server_that_never_answers_is_a_tls_error_not_a_connect_timeout():
    with _silent_plain_server() as port:
        error = _send_once(Client(f"https://127.0.0.1:{port}/hello_a", connect_timeout=0.3))
    assert error.kind == "tls_error" and "TLS handshake" in error.detail, error


def test_a_refused_connection_is_still_connect_refused():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        error = _send_once(Client(f"http://127.0.0.1:{port}/", connect_timeout=1.0))
    assert error.kind == "connect_refused"


def test_a_silent_target_is_not_blamed_on_the_generator():
    """Every connection is waiting on a target that does not answer: the drops are its doing."""
    with _silent_plain_server() as port:
        plan = LoadPlan(url=f"http://127.0.0.1:{port}/", rate=200, max_time=0.3, timeout=0.3, max_in_flight=4)
        stats = asyncio.run(run_load(plan, lambda s: None))
    problems = stats.generator_health().problems
    assert stats.dropped > 0 and problems
    assert all("generator too slow" not in p for p in problems), problems
    assert any("waiting on the target's answers" in p for p in problems), problems


# -- a flood of unknown APP_IDs is summed up --------------------------------------------------
def test_unmapped_identities_list_the_top_five_and_cut_long_values():
    expectation = Expectation(SplitSpec.parse("v1=85,v2=15"), SubsetMap(("v1", "v2"), {"1": "v1", "2": "v2"}, "--map"))
    seen = {f"request-{i}": 1 for i in range(1000)} | {"y" * 100_000: 3}
    message = expectation.unmapped_identities(seen, final=True)
    assert message is not None and "and 996 others" in message and "99,960 more characters" in message
    assert len(message) < 1000


def test_the_canary_lists_unknown_app_ids_briefly(tmp_path):
    lines = [_line(t=i * 0.01, app_id="1" if i % 2 else f"req-{i}" + "z" * 1000, subset=None) for i in range(400)]
    path = tmp_path / "flood.jsonl"
    path.write_text("".join(lines))
    result = loadgen_in_process("canary", "--replay", str(path), "--expect", "v1=50,v2=50", "--map", "1=v1,2=v2",
                                tmp_path=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr  # half the answers are unknown: FAIL
    flat = " ".join(result.stdout.split())  # the judge FAILs at its first look: 25 unknown, 5 listed
    assert "and 20 others (20 answers)" in flat and "(965 more characters)" in flat, flat  # 1,005 cut to 40
    assert len(result.stdout) < 5_000


# -- a method or path that is not ASCII -------------------------------------------------------------
@pytest.mark.parametrize("method", ["GÉT", "ПОСТ", "G\u0130T"])
def test_a_method_that_is_not_an_ascii_token_is_refused(tmp_path, method):
    result = loadgen_in_process("run", "--target", "http://127.0.0.1:9/hello_a", "-X", method, "--duration", "1s",
                                "--out", str(tmp_path), tmp_path=tmp_path)
    assert result.returncode == 2 and "not an HTTP method" in result.stderr
    with pytest.raises(UsageError):
        Client("http://127.0.0.1:9/", method=method)


def test_a_non_ascii_path_is_sent_percent_encoded_as_utf8():
    received: list[bytes] = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            received.append(conn.recv(4096))
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

    threading.Thread(target=serve, daemon=True).start()
    port = listener.getsockname()[1]

    async def go() -> None:
        client = Client(f"http://127.0.0.1:{port}/h\u00e9llo?q=\u00e9")
        try:
            await client.send()
        finally:
            client.close()

    asyncio.run(go())
    listener.close()
    assert received[0].split(b"\r\n")[0] == b"GET /h%C3%A9llo?q=%C3%A9 HTTP/1.1"
    assert Endpoint.parse("http://127.0.0.1/a%20b").path == "/a%20b"  # what is already encoded stays


def test_the_canary_warning_names_the_target_when_it_held_every_connection():
    import signal

    from loadgen.canary.options import CanaryOptions
    from loadgen.canary.unstarted import unstarted_result
    from loadgen.load.engine import RunStats
    from loadgen.stats import JudgeConfig

    result = unstarted_result(CanaryOptions(expect="85/15", target="http://127.0.0.1:9/", config=JudgeConfig()),
                              signal.SIGINT)
    held = RunStats(sent=256, completed=256, elapsed=3.0, dropped=344, waited_for_target=300, cpu_share=0.2)
    result.generator = held.health()
    assert result.warnings[0].startswith("loadgen could not keep the asked rate, the target holding"), result.warnings
    busy = RunStats(sent=256, completed=256, elapsed=3.0, dropped=344, waited_for_target=300, cpu_share=0.99)
    result.generator = busy.health()  # its own CPU was full: it read the answers late itself
    assert result.warnings[0].startswith("the generator could not keep the asked rate"), result.warnings
