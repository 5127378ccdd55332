"""The nomad runtime's pure parts: where instances run, the bridge spec, paths, error text."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from loadgen.mesh import bridge
from loadgen.mesh.runtime.nomad import _last_events, job_and_group, nomad_dir, nomad_state_dir, upstream_of
from loadgen.mesh.stages import load_stages


def _instances(stage: str) -> dict:
    return {i.id: i for i in load_stages().get(stage).instances}


def test_instances_map_to_the_job_groups_in_nomad_dir():
    inst = _instances("splitter")
    assert job_and_group(inst["service-a"]) == ("service-a", "service-a")
    # service-b's groups are named after the version its subset selects on.
    assert job_and_group(inst["service-b-1"]) == ("service-b", "v1")
    assert job_and_group(inst["service-b-2"]) == ("service-b", "v2")
    for job in ("service-a", "service-b"):
        assert (nomad_dir() / f"{job}.nomad.hcl").is_file()


def test_service_a_upstream_follows_the_stage():
    assert upstream_of(_instances("basic")["service-a"]) == "service-b"
    # L7 stages: service-a calls its own virtual service, whose router sends /hello_b on.
    assert upstream_of(_instances("l7-router")["service-a"]) == "service-a"
    assert upstream_of(_instances("basic")["service-b-1"]) is None


def test_bridge_spec_comes_from_the_agent_config():
    spec = bridge.read_spec(nomad_dir() / "conf" / "agent.hcl")
    assert spec.name == "loadgen-nomad" and len(spec.name) <= 15  # Linux interface names
    assert spec.subnet.is_private and spec.gateway == str(spec.subnet.network_address + 1)


def test_subnet_membership_ignores_the_gateway_and_other_networks():
    spec = bridge.BridgeSpec("br", ipaddress.ip_network("10.213.77.0/24"))
    assert bridge._in_subnet("10.213.77.5:3001", spec)  # a DNAT target
    assert bridge._in_subnet("10.213.77.5/32", spec, host_only=True)
    assert not bridge._in_subnet("10.213.77.0/24", spec, host_only=True)
    assert not bridge._in_subnet("10.213.77.1/32", spec)  # the gateway is the host's own
    assert not bridge._in_subnet("127.0.0.1/32", spec) and not bridge._in_subnet("--dport", spec)


def test_state_dir_keeps_unix_socket_paths_under_the_limit():
    deep = Path("/home/" + "a-rather-long-user-name" * 3 + "/.local/state/loadgen/mesh")
    sock = nomad_state_dir(deep) / "alloc" / ("x" * 36) / "alloc" / "tmp" / "consul_grpc.sock"
    assert len(str(sock)) <= 107
    assert nomad_state_dir(deep) != nomad_state_dir(deep.parent)


def test_allocation_errors_show_the_event_that_failed_the_task():
    alloc = {"ClientStatus": "failed", "TaskStates": {"connect-proxy-service-a": {"Events": [
        {"Type": "Received", "DisplayMessage": "Task received by client"},
        {"Type": "Setup Failure", "DisplayMessage": "unable to create unix socket", "FailsTask": True},
        {"Type": "Killing", "DisplayMessage": "Sent interrupt"},
    ]}}}
    assert _last_events(alloc) == "connect-proxy-service-a: Setup Failure: unable to create unix socket"
    assert _last_events({"ClientStatus": "pending", "TaskStates": {}}) == "pending"
