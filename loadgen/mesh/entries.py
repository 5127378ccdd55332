"""What a stage writes into Consul besides workloads, kept in step with the run state: its
config entries (applied in the stage file's order, removed in dependency order) and, at
`down`, the registrations loadgen made."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from loadgen.errors import LoadgenError
from loadgen.mesh.consul_api import DEFAULT_CONSUL, ConsulClient
from loadgen.mesh.secure import SecureFiles, mesh_settings
from loadgen.mesh.stages import Stage
from loadgen.mesh.state import MeshState, RunDir
from loadgen.paths import consul_dir

# Consul checks every discovery chain a change touches, so entries go in the reverse of the
# order they depend on each other: a route or split before the resolver or service-defaults
# it relies on (a splitter may point at a virtual service added after it was first written).
_REMOVAL_RANK = {"service-intentions": 0, "service-router": 1, "service-splitter": 2, "service-resolver": 3,
                 "service-defaults": 4}


def removal_order(keys: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``keys`` (kind, name) in a safe order to delete: by kind, newest first within one."""
    newest_first = list(reversed(keys))
    return sorted(newest_first, key=lambda k: _REMOVAL_RANK.get(k[0], 0))


def apply_entries(run: RunDir, stage: Stage, state: MeshState, consul: ConsulClient,
                  say: Callable[[str], None]) -> None:
    """Write the stage's config entries, then remove those of the previous stage it lacks.

    Writes come first: Consul checks every discovery chain an entry touches, so a splitter
    that points at a virtual service (nested-splitter) must be rewritten before that
    service's own entries can go (nested-splitter -> splitter)."""
    wanted = {e.key for e in stage.config_entries}
    for entry in stage.config_entries:
        consul.write_config(entry.body)
        if entry.key not in state.config_entries:
            state.config_entries.append(entry.key)
        run.save(state)
        say(f"applied {entry.path.relative_to(consul_dir())}")
    # Remove what the previous stage wrote and this one does not.
    for key in removal_order(list(state.config_entries)):
        if key not in wanted:
            consul.delete_config(*key)
            state.config_entries.remove(key)
            run.save(state)
            say(f"removed {key[0]}/{key[1]}")


def release(state: MeshState, say: Callable[[str], None], run_path: Path) -> list[str]:
    """Remove our config entries (newest first) and registrations from Consul; returns
    warnings. Keeps going on a failed call: the parts must be stopped regardless."""
    warnings: list[str] = []
    address = state.consul_address or DEFAULT_CONSUL
    with ConsulClient(None, timeout=3.0, settings=mesh_settings(run_path, state.secure, address)) as consul:
        if consul.reachable():
            for key in removal_order(state.config_entries):
                try:
                    consul.delete_config(*key)
                    say(f"removed {key[0]}/{key[1]}")
                except LoadgenError as exc:
                    warnings.append(f"could not remove {key[0]}/{key[1]}: {exc.message}")
            for sid in state.services:
                try:
                    consul.deregister_service(f"{sid}-sidecar-proxy")
                    consul.deregister_service(sid)
                    say(f"deregistered {sid}")
                except LoadgenError as exc:
                    warnings.append(f"could not deregister {sid}: {exc.message}")
            if state.secure:
                warnings += revoke(SecureFiles(run_path), consul, say)
        elif state.services or state.config_entries:
            warnings.append(
                f"Consul at {address} is unreachable: registrations and config entries left as they are"
            )
    state.config_entries.clear()
    state.services.clear()
    return warnings


def revoke(files: SecureFiles, consul: ConsulClient, say: Callable[[str], None]) -> list[str]:
    """Delete the tokens and policies `up --secure` made (the files go with the run directory's
    secure/ when the agent stops)."""
    warnings: list[str] = []
    record = files.load_acl()
    for accessor in record.get("tokens", []):
        try:
            consul.acl_delete_token(accessor)
        except LoadgenError as exc:
            warnings.append(f"could not delete an ACL token loadgen made: {exc.message}")
    for policy in record.get("policies", []):
        try:
            consul.acl_delete_policy(policy)
        except LoadgenError as exc:
            warnings.append(f"could not delete an ACL policy loadgen made: {exc.message}")
    if record.get("tokens") or record.get("policies"):
        tokens, policies = len(record.get("tokens", [])), len(record.get("policies", []))
        say(f"deleted {tokens} ACL token{'s' if tokens != 1 else ''} and {policies} "
            f"polic{'ies' if policies != 1 else 'y'}")
    files.save_acl({"tokens": [], "policies": []})
    return warnings
