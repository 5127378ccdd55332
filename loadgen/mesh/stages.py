"""Stages of the reference mesh, read from consul/stages.toml and the files it names.

A :class:`Stage` says which instances run (each a service process plus its Envoy
sidecar), how each is registered, which config entries are in force, and what a
request through service-a must show for the stage to count as live.
"""

from __future__ import annotations

import functools
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loadgen.errors import UsageError
from loadgen.mesh.hcl_cache import cached_parse
from loadgen.paths import consul_dir

if TYPE_CHECKING:
    from hcl.parser import HclParser


@dataclass(frozen=True)
class ConfigEntry:
    """One Consul config entry, as the file on disk says it."""

    path: Path
    body: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.body["Kind"])

    @property
    def name(self) -> str:
        return str(self.body["Name"])

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.name)


@dataclass(frozen=True)
class Instance:
    """One service instance: the app to run and its Consul registration."""

    id: str
    app: str
    registration: dict[str, Any]
    envoy_admin_port: int

    @property
    def service(self) -> str:
        return str(self.registration["Name"])

    @property
    def port(self) -> int:
        return int(self.registration["Port"])

    def app_env(self) -> dict[str, str]:
        """The app's environment, derived from its registration (one source of truth)."""
        meta = self.registration.get("Meta") or {}
        env = {"PORT": str(self.port), "INSTANCE_ID": self.id}
        if "app_id" in meta:
            env["APP_ID"] = str(meta["app_id"])
        if "version" in meta:
            env["VERSION"] = str(meta["version"])
        upstreams = (((self.registration.get("Connect") or {}).get("SidecarService") or {}).get("Proxy") or {}).get(
            "Upstreams"
        ) or []
        if upstreams:
            up = upstreams[0]
            env["SIDECAR_URL"] = f"http://{up.get('LocalBindAddress', '127.0.0.1')}:{up['LocalBindPort']}"
        return env

    @property
    def sidecar_port(self) -> int | None:
        """The sidecar's public (mTLS) port when the registration fixes it."""
        port = ((self.registration.get("Connect") or {}).get("SidecarService") or {}).get("Port")
        return int(port) if port else None

    def upstream_ports(self) -> list[int]:
        proxy = ((self.registration.get("Connect") or {}).get("SidecarService") or {}).get("Proxy") or {}
        return [int(u["LocalBindPort"]) for u in proxy.get("Upstreams") or []]


HELLO_A_EXPECTATIONS = ("ok", "denied")


@dataclass(frozen=True)
class Expectation:
    """What GET /hello_a must show: ``ok`` (200 with an APP_ID) or ``denied`` (upstream error)."""

    hello_a: str
    app_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Stage:
    name: str
    summary: str
    instances: tuple[Instance, ...]
    config_entries: tuple[ConfigEntry, ...]
    expect: Expectation
    origin: str = "seed"  # "seed": from the original notes; "loadgen": one of loadgen's own

    def instance(self, instance_id: str) -> Instance:
        for inst in self.instances:
            if inst.id == instance_id:
                return inst
        raise KeyError(instance_id)

    def entry(self, kind: str, name: str) -> ConfigEntry | None:
        return next((e for e in self.config_entries if e.key == (kind, name)), None)


@dataclass
class StageBook:
    """All stages defined in a stages.toml."""

    stages: dict[str, Stage] = field(default_factory=dict)

    def get(self, name: str) -> Stage:
        if name not in self.stages:
            known = ", ".join(self.stages)
            raise UsageError(f"unknown stage {name!r}; known stages: {known}")
        return self.stages[name]

    @property
    def names(self) -> list[str]:
        return list(self.stages)


@functools.cache
def _hcl_parser() -> HclParser:
    # hcl.loads builds a new parser, and with it its LALR tables (~80 ms), for every file:
    # 1.7 s per load_stages. One parser per process; each parse gets its own lexer. Imported
    # here: a command that reads no stage file (`loadgen status` with nothing up) skips pyhcl.
    from hcl.parser import HclParser

    return HclParser()


def _parse_hcl(text: str) -> Any:
    return cached_parse(text, _parse_hcl_now)


def _parse_hcl_now(text: str) -> Any:
    from hcl.api import isHcl

    return _hcl_parser().parse(text) if isHcl(text) else json.loads(text)


def load_config_entry(path: Path) -> ConfigEntry:
    try:
        with path.open() as fh:
            body = _parse_hcl(fh.read()) if path.suffix == ".hcl" else json.load(fh)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read config entry {path}: {exc}") from exc
    if not isinstance(body, dict) or "Kind" not in body or "Name" not in body:
        raise UsageError(f"{path} is not a Consul config entry (it needs Kind and Name)")
    return ConfigEntry(path=path, body=body)


def _load_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read service definition {path}: {exc}") from exc


def load_stages(base: Path | None = None) -> StageBook:
    """Read stages.toml from ``base`` (default: the project's consul/ directory).

    The file is checked as it is read: a malformed one is a UsageError (exit 2) naming the
    file, the stage or instance and the field, not a failure half way through an `up`.
    """
    base = base or consul_dir()
    path = base / "stages.toml"
    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from exc
    check_stages_doc(doc, path)

    instance_specs: dict[str, dict[str, Any]] = doc.get("instances", {})
    book = StageBook()
    for name, spec in doc.get("stages", {}).items():
        overrides: dict[str, str] = spec.get("registrations", {})
        instances = []
        for inst_id in spec["instances"]:
            ispec = instance_specs[inst_id]
            reg_path = base / overrides.get(inst_id, ispec["registration"])
            instances.append(
                Instance(
                    id=inst_id,
                    app=ispec["app"],
                    registration=_load_json(reg_path),
                    envoy_admin_port=int(ispec["envoy_admin_port"]),
                )
            )
        entries = tuple(load_config_entry(base / p) for p in spec.get("config_entries", []))
        exp = spec.get("expect", {})
        book.stages[name] = Stage(
            name=name,
            summary=spec.get("summary", ""),
            instances=tuple(instances),
            config_entries=entries,
            expect=Expectation(hello_a=exp.get("hello_a", "ok"), app_ids=tuple(exp.get("app_ids", ()))),
            origin=spec.get("origin", "seed"),
        )
    return book


# The shape of stages.toml: each table's keys, whether required, and the type of the value.
_INSTANCE_KEYS: dict[str, tuple[bool, type]] = {"app": (True, str), "registration": (True, str),
                                                "envoy_admin_port": (True, int)}
_STAGE_KEYS: dict[str, tuple[bool, type]] = {"summary": (False, str), "instances": (True, list),
                                             "registrations": (False, dict), "config_entries": (False, list),
                                             "expect": (False, dict), "origin": (False, str)}
ORIGINS = ("seed", "loadgen")
_EXPECT_KEYS: dict[str, tuple[bool, type]] = {"hello_a": (False, str), "app_ids": (False, list)}


def _check_table(table: object, keys: dict[str, tuple[bool, type]], where: str) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise UsageError(f"{where} must be a table")
    for key in table:
        if key not in keys:
            raise UsageError(f"{where} has an unknown field {key!r} (known: {', '.join(keys)})")
    for key, (required, kind) in keys.items():
        if key not in table:
            if required:
                raise UsageError(f"{where} needs the field {key}")
            continue
        value = table[key]
        # bool is an int in Python; a port of `true` is still a mistake.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise UsageError(f"{where}: {key} must be a {_TYPE_NAMES[kind]}, not {value!r}")
    return table


_TYPE_NAMES = {str: "string", int: "whole number", list: "list", dict: "table"}


def _strings(value: list[Any], where: str) -> None:
    bad = next((v for v in value if not isinstance(v, str)), None)
    if bad is not None:
        raise UsageError(f"{where} must list strings, not {bad!r}")


def check_stages_doc(doc: dict[str, Any], path: Path) -> None:
    """Raise a UsageError (one line: file, stage or instance, field) when ``doc`` is malformed."""
    instances = doc.get("instances", {})
    stages = doc.get("stages", {})
    for key in doc:
        if key not in ("instances", "stages"):
            raise UsageError(f"{path}: unknown table {key!r} (known: instances, stages)")
    if not isinstance(instances, dict) or not isinstance(stages, dict):
        raise UsageError(f"{path}: instances and stages must be tables")
    if not stages:
        raise UsageError(f"{path} defines no stage")
    for inst_id, ispec in instances.items():
        _check_table(ispec, _INSTANCE_KEYS, f"{path}: instance {inst_id}")
    for name, spec in stages.items():
        where = f"{path}: stage {name}"
        _check_table(spec, _STAGE_KEYS, where)
        _strings(spec["instances"], f"{where}: instances")
        _strings(spec.get("config_entries", []), f"{where}: config_entries")
        for inst_id in spec["instances"]:
            if inst_id not in instances:
                raise UsageError(f"{where} names unknown instance {inst_id}")
        for inst_id, reg in spec.get("registrations", {}).items():
            if inst_id not in spec["instances"]:
                raise UsageError(f"{where}: registrations.{inst_id} is not one of the stage's instances")
            if not isinstance(reg, str):
                raise UsageError(f"{where}: registrations.{inst_id} must be a string, not {reg!r}")
        expect = _check_table(spec.get("expect", {}), _EXPECT_KEYS, f"{where}: expect")
        hello_a = expect.get("hello_a", "ok")
        if hello_a not in HELLO_A_EXPECTATIONS:
            raise UsageError(f"{where}: expect.hello_a is {hello_a!r}; it must be one of "
                             f"{', '.join(HELLO_A_EXPECTATIONS)}")
        _strings(expect.get("app_ids", []), f"{where}: expect.app_ids")
        if spec.get("origin", "seed") not in ORIGINS:
            raise UsageError(f"{where}: origin is {spec['origin']!r}; it must be one of {', '.join(ORIGINS)}")
