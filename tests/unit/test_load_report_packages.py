"""What starting a process costs: loadgen.load, loadgen.report and the CLI import nothing heavy.

Every load worker process imports loadgen.load.engine (and so loadgen/load/__init__.py): the
package's surface must not pull in the plotting or statistics stacks a worker never uses. And
a command that does not judge (`loadgen status`, `stages`, `down`, `--help`, `run`, ...) must not
import the canary's statistics, the plots or Locust: the CLI imports a command only when it runs.
The mesh commands go further: each imports only what it uses (`stages` no Consul client,
`down` with nothing up neither the client nor the HCL parser, a --help nothing of the mesh).
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import subprocess
import sys

import click
import pytest

HEAVY = ("matplotlib", "scipy", "numpy", "loadgen.stats", "loadgen.report", "loadgen.mesh")


def _imported_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return set(proc.stdout.split())


@pytest.mark.parametrize("package", ["loadgen.load", "loadgen.report"])
def test_every_listed_name_resolves(package):
    module = importlib.import_module(package)
    assert module.__all__ == sorted(module._WHERE), "__all__ and the lazy map list the same names"
    for name in module.__all__:
        value = getattr(module, name)
        assert getattr(value, "__name__", name) == name
        assert value.__module__ == f"{package}.{module._WHERE[name]}"
    with pytest.raises(AttributeError):
        module.no_such_name  # noqa: B018


@pytest.mark.parametrize("package", ["loadgen.mesh", "loadgen.mesh.runtime", "loadgen.stats"])
def test_every_mesh_name_resolves_to_where_the_lazy_map_says(package):
    module = importlib.import_module(package)
    assert sorted(module.__all__) == sorted(module._WHERE), "__all__ and the lazy map list the same names"
    for name in module.__all__:
        defined_in = importlib.import_module(f"{package}.{module._WHERE[name]}")
        assert getattr(module, name) is getattr(defined_in, name)
        value = getattr(module, name)
        if callable(value):  # a class or function (the constants have no __module__)
            assert value.__module__ == defined_in.__name__, f"{name} is defined in {value.__module__}"
    with pytest.raises(AttributeError):
        module.no_such_name  # noqa: B018


def test_importing_the_mesh_package_imports_no_submodule():
    modules = _imported_after("import loadgen.mesh, loadgen.mesh.runtime")
    assert sorted(m for m in modules if m.startswith("loadgen.mesh.")) == ["loadgen.mesh.runtime"]


def test_the_mesh_commands_option_defaults_are_the_runtimes_own():
    # commands/mesh.py keeps a copy of service-a's URL (split's --url default) so that a --help
    # imports none of the runtime contract; the nomad runtime checks drivers against select's list.
    from loadgen.commands import mesh as commands
    from loadgen.mesh.runtime import base, nomad, select

    assert commands.SERVICE_A_URL == base.SERVICE_A_URL
    assert nomad.DRIVERS is select.NOMAD_DRIVERS


@pytest.mark.parametrize("package", ["loadgen.load", "loadgen.report"])
def test_package_imports_cleanly_alone(package):
    modules = _imported_after(f"import {package}")
    assert package in modules


def test_a_worker_process_imports_nothing_heavy():
    # What a --workers process imports: the engine, the worker loop and the Tally.
    modules = _imported_after("import loadgen.load.engine, loadgen.load.workers, loadgen.load")
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY or any(m.startswith(h + ".") or m == h
                                                                          for h in HEAVY))
    assert heavy == [], heavy


def test_a_distributed_worker_imports_no_judge_and_no_plots():
    # `loadgen worker` (--nomad-workers) bins latencies with numpy (stats.latency_bins), but the
    # judges' scipy.stats cost every worker ~0.7 s of CPU at start when the stats package loaded them.
    modules = _imported_after("import loadgen.distributed.worker")
    assert "numpy" in modules  # what it does need
    assert not sorted(m for m in modules if m.split(".")[0] in ("scipy", "matplotlib", "locust", "gevent"))


def test_writing_a_summary_does_not_import_plots_or_statistics():
    # matplotlib only when a PNG is drawn; the canary's statistics never.
    modules = _imported_after("import loadgen.report.summary, loadgen.report.run_files, loadgen.stage_load")
    assert not {"matplotlib", "scipy"} & {m.split(".")[0] for m in modules}


# -- the command line ---------------------------------------------------------------------------
# What no command that does not judge may import (the split judge's numpy/scipy, the plots,
# Locust and its gevent); the judging ones are canary, shift and propagation.
CLI_HEAVY = ("numpy", "scipy", "matplotlib", "locust", "gevent", "loadgen.stats", "loadgen.canary")
LIGHT = [
    (), ("--help",), ("status",), ("stages",), ("down",),
    *((name, "--help") for name in ("up", "down", "status", "logs", "doctor", "split", "toolchain", "images",
                                    "run", "report", "intentions")),
]


# Beyond CLI_HEAVY, what each mesh command leaves out (on an empty run directory, as below):
# httpx (~0.1 s to import) is for talking to Consul or Envoy, pyhcl for reading the stage files,
# psutil for looking at recorded processes, asyncio for the load loops.
MESH_HELP_SKIPS = ("httpx", "httpcore", "psutil", "hcl", "asyncio", "rich", "loadgen.mesh.runtime.base",
                   "loadgen.mesh.state", "loadgen.mesh.stages")
SKIPS: dict[tuple[str, ...], tuple[str, ...]] = {
    (): MESH_HELP_SKIPS,
    ("--help",): MESH_HELP_SKIPS,
    **{(name, "--help"): MESH_HELP_SKIPS for name in ("up", "down", "status", "logs", "doctor", "split", "toolchain",
                                                     "images")},
    ("stages",): ("httpx", "httpcore", "psutil", "asyncio", "loadgen.mesh.runtime.base", "loadgen.mesh.consul_api"),
    ("down",): ("httpx", "httpcore", "hcl", "asyncio", "loadgen.mesh.consul_api", "loadgen.mesh.stages",
                "loadgen.mesh.secure", "loadgen.mesh.toolchain"),
    ("status",): ("hcl", "asyncio"),  # it asks Consul (httpx) even with nothing up
}


def _heavy(modules: set[str], heavy: tuple[str, ...] = CLI_HEAVY) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in heavy))


@pytest.mark.parametrize("args", LIGHT, ids=lambda a: " ".join(a) or "(no arguments)")
def test_a_command_that_does_not_judge_imports_nothing_heavy(args, tmp_path):
    # A fresh interpreter runs `loadgen ARGS` as the console script does (on an empty run
    # directory: status and down find no mesh), then lists what it imported.
    code = ("import sys, json\n"
            f"sys.argv = ['loadgen', *{list(args)!r}]\n"
            "from loadgen.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('\\n--modules--', json.dumps(sorted(sys.modules)))\n")
    env = {**os.environ, "LOADGEN_RUN_DIR": str(tmp_path / "run"), "COLUMNS": "120"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                          cwd=tmp_path)
    assert "--modules--" in proc.stdout, proc.stderr[-2000:]
    output, _, listed = proc.stdout.rpartition("--modules-- ")
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    modules = set(json.loads(listed))
    assert _heavy(modules) == [], _heavy(modules)
    skipped = SKIPS.get(args, ())
    assert _heavy(modules, skipped) == [], f"`loadgen {' '.join(args)}` imported {_heavy(modules, skipped)}"
    if args[-1:] == ("--help",):  # the command itself was loaded to show its help
        assert "Usage: loadgen" in output


def test_the_command_list_names_every_command_with_its_own_short_help():
    from loadgen.cli import COMMANDS

    loaded: dict[str, click.Command] = {}
    for name, (module, attribute, short_help) in COMMANDS.items():
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command), name
        assert command.get_short_help_str(10**6) == short_help, f"COMMANDS[{name!r}] says another short help"
        loaded[name] = command
    # Every top-level command the command modules define is listed (subcommands of groups are not).
    listed = {id(c) for c in loaded.values()}
    in_groups = {id(sub) for c in loaded.values() if isinstance(c, click.Group) for sub in c.commands.values()}
    for module_name in {m for m, _, _ in COMMANDS.values()} | {"loadgen.commands.mesh"}:
        for attribute, value in inspect.getmembers(importlib.import_module(module_name)):
            if isinstance(value, click.Command) and id(value) not in in_groups:
                assert id(value) in listed, f"{module_name}.{attribute} is not in loadgen.cli.COMMANDS"


@pytest.mark.parametrize("width", [50, 80, 200])
def test_the_lazy_command_list_is_what_click_would_print_with_every_command_loaded(width):
    from loadgen.cli import COMMANDS, EXIT_CODES_HELP, LoadgenGroup

    group = LoadgenGroup(name="loadgen", epilog=EXIT_CODES_HELP)  # a fresh group: nothing loaded yet

    def help_text() -> str:
        return group.get_help(click.Context(group, info_name="loadgen", terminal_width=width,
                                            max_content_width=width))

    lazy = help_text()
    assert group.commands == {}, "showing the list loaded a command"
    for name in COMMANDS:
        group.get_command(click.Context(group), name)
    assert set(group.commands) == set(COMMANDS)
    assert lazy == help_text()
