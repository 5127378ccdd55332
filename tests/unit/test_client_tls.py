"""The lean client over TLS, with any method and a body, and the plan fields that carry them
(to worker processes too), against a local aiohttp HTTPS server on 127.0.0.1. No mesh: the CA
and the server certificate are made in a tmp dir with the openssl command line."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from loadgen.commands.request_options import RequestOptions, build_request_options
from loadgen.errors import ExitCode, UsageError
from loadgen.load.client import Client, Endpoint, RequestError, Response, TlsOptions
from loadgen.load.engine import LoadPlan, run_blocking, run_load
from loadgen.load.identity import IdentityRule
from loadgen.load.sample import Sample
from loadgen.load.workers import run_workers
from tests.integration.parts import missing


@pytest.fixture(autouse=True)
def _openssl() -> None:
    """The certificates are made by the openssl command: missing, it fails in CI (a missing
    install step) and skips on a dev machine, like the integration tests' real parts."""
    if shutil.which("openssl") is None:
        missing("needs the openssl command (apt-get install openssl)")


def make_certs(where: Path, name: str = "test") -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate for localhost and 127.0.0.1, its key), EC P-256."""
    ca, ca_key = where / f"{name}-ca.pem", where / f"{name}-ca-key.pem"
    cert, key, csr, ext = (where / f"{name}-server.pem", where / f"{name}-server-key.pem",
                           where / f"{name}.csr", where / f"{name}.ext")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def openssl(*args: str | Path) -> None:
        subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=30)

    openssl("req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", f"/CN={name} test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=localhost")
    ext.write_text("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
                   "subjectAltName=DNS:localhost,IP:127.0.0.1\nauthorityKeyIdentifier=keyid\n")
    openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert,
            "-days", "2", "-extfile", ext)
    return ca, cert, key


@dataclass
class Server:
    port: int
    ca: Path
    peers: list[int] = field(default_factory=list)  # client ports, one per TLS connection
    sni: list[str | None] = field(default_factory=list)  # the server name of each handshake

    def url(self, host: str = "localhost", path: str = "/x") -> str:
        return f"https://{host}:{self.port}{path}"


@contextlib.contextmanager
def echo_server(where: Path) -> Iterator[Server]:
    """HTTPS answering each request with its method, body, Host and Content-Type (as JSON) and
    an X-Backend header, so a rule other than auto has something to read."""
    ca, cert, key = make_certs(where)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = Server(port, ca)
    context.sni_callback = lambda _sock, name, _ctx: server.sni.append(name)

    async def echo(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername")[1] if request.transport else 0
        if peer not in server.peers:
            server.peers.append(peer)
        body = await request.read()
        answer = {"method": request.method, "body": body.hex(), "host": request.host,
                  "type": request.headers.get("Content-Type"), "length": request.headers.get("Content-Length"),
                  "upstream": {"app_id": 7}}
        return web.json_response(answer, headers={"X-App-Id": "1", "X-Backend": "v2"})

    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app)

    async def start() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with echo_server(tmp_path_factory.mktemp("tls")) as found:
        yield found


@pytest.fixture
def fresh(server: Server) -> Server:
    server.peers.clear()
    server.sni.clear()
    return server


def send(client: Client, n: int) -> list[Response]:
    async def go() -> list[Response]:
        try:
            return [await client.send() for _ in range(n)]
        finally:
            client.close()

    return asyncio.run(go())


def test_https_urls_parse_with_their_scheme_and_default_port():
    assert Endpoint.parse("https://shop.example/a?b=1") == Endpoint("shop.example", 443, "/a?b=1", "https")
    assert Endpoint.parse("http://shop.example/") == Endpoint("shop.example", 80, "/", "http")


def test_keep_alive_over_tls_is_one_verified_connection_with_the_host_as_sni(fresh):
    responses = send(Client(fresh.url(), tls=TlsOptions(cacert=str(fresh.ca))), 5)
    assert [r.status for r in responses] == [200] * 5
    assert [r.new_connection for r in responses] == [True, False, False, False, False]
    assert len(fresh.peers) == 1 and fresh.sni == ["localhost"]
    assert json.loads(responses[0].body)["host"] == f"localhost:{fresh.port}"


def test_fresh_connection_mode_over_tls_handshakes_once_per_request(fresh):
    client = Client(fresh.url(), tls=TlsOptions(cacert=str(fresh.ca)), new_connection=True)
    responses = send(client, 4)
    assert all(r.new_connection and r.status == 200 for r in responses)
    assert len(fresh.peers) == 4 and fresh.sni == ["localhost"] * 4


def test_an_ip_address_target_is_verified_against_the_certificate_ip_without_sni(fresh):
    (resp,) = send(Client(fresh.url("127.0.0.1"), tls=TlsOptions(cacert=str(fresh.ca))), 1)
    assert resp.status == 200 and fresh.sni == [None]  # RFC 6066: no SNI for an address


def test_a_certificate_from_another_ca_is_a_tls_error_naming_the_cause(fresh, tmp_path):
    other_ca, _, _ = make_certs(tmp_path, "other")
    with pytest.raises(RequestError) as err:
        send(Client(fresh.url(), tls=TlsOptions(cacert=str(other_ca))), 1)
    assert err.value.kind == "tls_error" and "unable to get local issuer certificate" in err.value.detail
    assert err.value.detail.startswith(f"localhost:{fresh.port}: ")


def test_the_system_trust_store_does_not_know_a_private_ca(fresh):
    with pytest.raises(RequestError) as err:
        send(Client(fresh.url()), 1)
    assert err.value.kind == "tls_error"


def test_insecure_skips_the_check(fresh):
    (resp,) = send(Client(fresh.url(), tls=TlsOptions(insecure=True)), 1)
    assert resp.status == 200


def test_a_server_name_override_is_the_sni_and_the_verified_name(fresh):
    with pytest.raises(RequestError) as err:
        send(Client(fresh.url(), tls=TlsOptions(cacert=str(fresh.ca), server_name="shop.example")), 1)
    assert err.value.kind == "tls_error" and "mismatch" in err.value.detail.lower()
    assert fresh.sni == ["shop.example"]
    # An address in the URL, the certificate's name in SNI: how a target is reached by IP.
    (resp,) = send(Client(fresh.url("127.0.0.1"), tls=TlsOptions(cacert=str(fresh.ca), server_name="localhost")), 1)
    assert resp.status == 200 and fresh.sni[-1] == "localhost"


def test_tls_to_a_plain_http_port_is_a_tls_error_not_a_traceback():
    plain = socket.socket()
    plain.bind(("127.0.0.1", 0))
    plain.listen()
    port = plain.getsockname()[1]

    def answer() -> None:
        with contextlib.suppress(OSError):
            conn, _ = plain.accept()
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            conn.close()

    threading.Thread(target=answer, daemon=True).start()
    try:
        with pytest.raises(RequestError) as err:
            send(Client(f"https://127.0.0.1:{port}/", tls=TlsOptions(insecure=True), connect_timeout=5), 1)
    finally:
        plain.close()
    assert err.value.kind == "tls_error", err.value


@pytest.mark.parametrize("body", [b'{"n": 1}', b"line\r\n\r\nGET / HTTP/1.1\r\n\xff\x00", b""])
def test_a_post_body_arrives_intact_with_its_length_and_the_users_type(fresh, body):
    client = Client(fresh.url(), method="POST", body=body, headers={"Content-Type": "application/json"},
                    tls=TlsOptions(cacert=str(fresh.ca)))
    for resp in send(client, 3):  # the same prebuilt bytes, three times on one connection
        got = json.loads(resp.body)
        assert (got["method"], bytes.fromhex(got["body"]), got["type"]) == ("POST", body, "application/json")
        assert got["length"] == str(len(body))
    assert len(fresh.peers) == 1


def test_put_without_a_body_and_head_whose_answer_has_no_body(fresh):
    (put,) = send(Client(fresh.url(), method="PUT", tls=TlsOptions(cacert=str(fresh.ca))), 1)
    assert json.loads(put.body)["method"] == "PUT" and json.loads(put.body)["length"] is None
    heads = send(Client(fresh.url(), method="HEAD", timeout=2, tls=TlsOptions(cacert=str(fresh.ca))), 3)
    assert [(r.status, r.body) for r in heads] == [(200, b"")] * 3 and int(heads[0].headers["Content-Length"]) > 0
    assert len(fresh.peers) == 2  # HEAD kept its connection alive


@pytest.mark.parametrize(("tls", "needle"), [
    (TlsOptions(cacert="/nonexistent/ca.pem"), "--cacert /nonexistent/ca.pem: no such file"),
    (TlsOptions(cacert=__file__), "is not a PEM CA certificate"),
])
def test_a_bad_ca_file_is_one_usage_line(tls, needle):
    with pytest.raises(UsageError) as err:
        Client("https://localhost:1/x", tls=tls)
    assert needle in err.value.message and "\n" not in err.value.message and err.value.code == ExitCode.USAGE


def _plan(server: Server, **fields: object) -> LoadPlan:
    request = build_request_options("post", "hello", str(server.ca), False, "header:x-backend", server.url())
    plan = LoadPlan(url=server.url(), concurrency=2, max_requests=6, max_time=10, timeout=3)
    return request.apply(dataclasses.replace(plan, **fields))  # type: ignore[arg-type]


def test_the_engine_sends_the_plans_request_and_reads_answers_by_its_rule(fresh):
    plan = _plan(fresh)
    assert (plan.method, plan.body, plan.identity.kind) == ("POST", b"hello", "header")
    samples: list[Sample] = []
    stats = run_blocking(lambda: run_load(plan, samples.append))  # uvloop, as a run uses
    assert stats.completed == 6 and {(s.status, s.app_id, s.error) for s in samples} == {(200, "v2", None)}
    plan = RequestOptions(identity=IdentityRule.parse("json:upstream.app_id"), tls=plan.tls).apply(plan)
    samples.clear()
    asyncio.run(run_load(plan, samples.append))  # and on asyncio's own loop
    assert {s.app_id for s in samples} == {"7"} and len(samples) == 6


def test_a_handshake_failure_is_a_tls_error_sample_in_a_run(fresh, tmp_path):
    other_ca, _, _ = make_certs(tmp_path, "other")
    plan = RequestOptions(tls=TlsOptions(cacert=str(other_ca))).apply(
        LoadPlan(url=fresh.url(), rate=50, max_requests=5, max_time=5, timeout=2))
    samples: list[Sample] = []
    run_blocking(lambda: run_load(plan, samples.append))
    assert len(samples) == 5 and {(s.status, s.error) for s in samples} == {(None, "tls_error")}


def test_worker_processes_get_the_method_body_tls_and_rule(fresh):
    plan = _plan(fresh, max_requests=8)
    merged = run_workers(plan, 2)
    assert merged.tally.sent == 8 and dict(merged.tally.app_ids) == {"v2": 8} and not merged.tally.errors
