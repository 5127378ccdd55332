"""The docker runtime's images: built locally with no registry, rebuilt only when inputs change."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.integration.parts import missing


@pytest.fixture(scope="module")
def client():
    from loadgen.errors import LoadgenError
    from loadgen.mesh.images import docker_client

    try:
        return docker_client()
    except LoadgenError as exc:
        missing(exc.message)


def test_build_then_nothing_to_rebuild(client):
    from loadgen.mesh.images import build_all

    first = {b.name: b for b in build_all()}
    assert set(first) == {"base", "service-a", "service-b", "consul-envoy", "pause"}
    second = build_all()
    assert [b.built for b in second] == [False] * 5  # unchanged inputs: nothing is built
    assert [b.tag for b in second] == [first[b.name].tag for b in second]


def test_images_run_on_the_host_network(client):
    from loadgen.mesh import toolchain
    from loadgen.mesh.images import build_all

    tags = {b.name: b.tag for b in build_all()}
    box = client.containers.run(tags["service-b"], detach=True, network_mode="host", remove=True,
                                environment={"PORT": "39011", "APP_ID": "7", "VERSION": "v2"},
                                labels={"loadgen.test": "images"})
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                body = httpx.get("http://127.0.0.1:39011/hello_b", timeout=1).json()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, box.logs().decode()[-1000:]
                time.sleep(0.2)
        assert body["app_id"] == "7" and body["version"] == "v2"
    finally:
        box.remove(force=True)
    envoy = client.containers.run(tags["consul-envoy"], entrypoint=["/usr/local/bin/envoy"], command=["--version"],
                                  remove=True).decode()
    consul = client.containers.run(tags["consul-envoy"], entrypoint=["/usr/local/bin/consul"], command=["version"],
                                   remove=True).decode()
    assert f"/{toolchain.find('envoy').version}/" in envoy
    assert consul.startswith(f"Consul v{toolchain.find('consul').version}")


def test_the_loadgen_image_passes_the_canary_on_the_host_network(client, splitter_mesh):
    """The image controllers run (examples/): its entry point is the CLI, as nobody, and the
    README's canary from inside it PASSes against the shared mesh (exit 0, the Job provider's contract)."""
    from loadgen.mesh.images import build_all

    built = {b.name: b for b in build_all(loadgen_image=True)}
    assert {"loadgen-packages", "loadgen"} <= set(built)
    attrs = client.images.get(built["loadgen"].tag).attrs
    assert attrs["Config"]["User"] == "nobody" and attrs["Config"]["Entrypoint"] == ["python3", "-m", "loadgen.cli"]
    # 473 MB before the trimming (the whole debootstrapped base, every runtime package, their tests);
    # 273 MB after it (README, "The loadgen image").
    assert attrs["Size"] < 300 * 10**6, attrs["Size"]
    box = client.containers.run(built["loadgen"].tag, detach=True, network_mode="host",
                                labels={"loadgen.test": "images"},
                                command=["canary", "--expect", "85/15", "--tolerance", "5",
                                         "--target", "http://127.0.0.1:3000/hello_a", "--map", "1=v1,2=v2",
                                         "--max-time", "20s"])
    try:
        exit_code = box.wait(timeout=120)["StatusCode"]
        output = box.logs().decode()
    finally:
        box.remove(force=True)
    assert exit_code == 0, output[-2000:]
    assert "verdict: PASS" in output
