"""The mesh commands: up, down, status, logs, stages, doctor, toolchain, split.

Each command imports what it uses when it runs (and its --help nothing of the mesh but the
option choices): `loadgen stages` reads stage files and needs no Consul client, `loadgen down`
with nothing up needs neither, and none of them needs the other runtimes or the liveness checks.
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from loadgen.errors import ExitCode
from loadgen.mesh.runtime.select import NOMAD_DRIVERS, RUNTIMES

if TYPE_CHECKING:
    from rich.console import Console

    from loadgen.mesh.runtime.base import Runtime

# Where service-a answers (loadgen.mesh.runtime.base.SERVICE_A_URL, which a unit test checks
# this is): `split --help` shows it without importing the runtime contract.
SERVICE_A_URL = "http://127.0.0.1:3000/hello_a"


@functools.cache
def _out() -> Console:
    from rich.console import Console

    return Console()


@functools.cache
def _err() -> Console:
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)


def _runtime() -> Runtime:
    from loadgen.mesh.runtime.select import runtime_for

    return runtime_for()


def _progress(quiet: bool) -> Callable[[str], None]:
    start = time.monotonic()

    def say(msg: str) -> None:
        if not quiet:
            _err().print(f"[dim]{time.monotonic() - start:6.1f}s[/dim] {msg}", highlight=False)

    return say


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _home(path: object) -> str:
    text, home = str(path), str(Path.home())
    return "~" + text[len(home):] if text.startswith(home + "/") else text


@click.command()
@click.option("--stage", "stage_name", required=True, metavar="STAGE",
              help="basic | intentions | l7-router | splitter | header-route | nested-splitter (see "
                   "`loadgen stages`).")
@click.option("--runtime", type=click.Choice(list(RUNTIMES)), default=None,
              help="Where the services and sidecars run: process (default), docker (containers on the host "
                   "network; images from `loadgen images build`) or nomad (Nomad jobs with Connect sidecars in "
                   "bridge networking; needs root). Default: what already runs.")
@click.option("--driver", type=click.Choice(list(NOMAD_DRIVERS)), default=None,
              help="nomad runtime only: the task driver of the services and their Envoy sidecars: raw_exec "
                   "(local processes, no image; default) or docker (the images of `loadgen images build`).")
@click.option("--consul", "consul_addr", metavar="ADDR",
              help="Use an existing Consul agent (e.g. 127.0.0.1:8500) instead of starting a dev agent.")
@click.option("--timeout", "live_timeout", type=float, default=90.0, show_default=True,
              help="Seconds to wait for the stage to be live in Envoy and on /hello_a (finite, more than 0).")
@click.option("--keep-on-failure", is_flag=True,
              help="When a first `up` fails or is interrupted, leave what it started running for inspection.")
@click.option("--force", is_flag=True,
              help="Switch the stage even while commands (canary, run, probes) are using the mesh at another one.")
@click.option("--secure", is_flag=True,
              help="Consul with ACLs (default deny) and TLS only (HTTPS :8501, gRPC TLS :8503): a CA and "
                   "certificate made by `consul tls`, a management token, a read-only token for loadgen's "
                   "checks and a service-identity token per sidecar, all owner-only files in the run "
                   "directory's secure/; an allow intention service-a -> service-b (the intentions stage "
                   "denies it). Every runtime; on nomad, Nomad reaches Consul over TLS with a token of its own and "
                   "Nomad's own ACLs stay off.")
@click.option("--json", "as_json", is_flag=True, help="Print the target as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines.")
def up(stage_name: str, runtime: str, driver: str | None, consul_addr: str | None, live_timeout: float,
       keep_on_failure: bool, force: bool, secure: bool, as_json: bool, quiet: bool) -> int:
    """Bring the local mesh to STAGE (starting or reusing what runs) and wait until it is live.

    Live means: every sidecar's Envoy admin API shows the stage's routes, splits and
    intentions and trusts Consul's current CA (after a Consul restart the sidecars re-sync
    first), and 30 GET 127.0.0.1:3000/hello_a in a row answer as the stage expects, from every
    APP_ID it expects. Running it again with another stage switches in place. An `up` that
    fails or is interrupted on an empty machine takes down what it started.

    While commands are using the mesh (`loadgen status` names them), `up` of another stage
    refuses (exit 5) unless --force; `up` of their stage repairs it and keeps it up after them.
    """
    from loadgen.addresses import check_consul_address
    from loadgen.errors import UsageError
    from loadgen.mesh.local import up_for_user
    from loadgen.mesh.runtime.select import runtime_for
    from loadgen.mesh.stages import load_stages

    # Every option before anything is started or asked: nan would wait forever, a bad address later.
    if not (math.isfinite(live_timeout) and live_timeout > 0):
        raise UsageError(f"--timeout {live_timeout:g} must be a finite number of seconds, more than 0")
    if consul_addr is not None:
        check_consul_address(consul_addr)
    stage = load_stages().get(stage_name)
    started = time.monotonic()
    runtime_ = runtime_for(runtime, driver=driver, consul_address=consul_addr, live_timeout=live_timeout,
                           keep_on_failure=keep_on_failure, secure=True if secure else None)
    target = up_for_user(runtime_, stage, _progress(quiet or as_json), force=force)
    # How a person reaches the secure agent: the files, never a token.
    env = {"CONSUL_HTTP_ADDR": target.consul_address, "CONSUL_CACERT": target.consul_read.cacert,
           "CONSUL_HTTP_TOKEN_FILE": target.consul_read.token_source.removeprefix("token file ")} \
        if target.consul_read and target.consul_read.token_source else None
    if as_json:
        _print_json({"stage": target.stage, "service_a_url": target.service_a_url,
                     "consul": target.consul_address, "sidecar_admin": target.sidecar_admin,
                     "secure": env is not None, "consul_env": env,
                     "seconds": round(time.monotonic() - started, 2)})
    else:
        _out().print(f"[green]stage {stage.name} is live[/green] in {time.monotonic() - started:.1f}s: "
                  f"{stage.summary}\n  try: curl {target.service_a_url}", highlight=False)
        if env:
            _out().print("  Consul (ACLs default deny, TLS), read-only:\n    "
                      + " ".join(f"{k}={v}" for k, v in env.items()), highlight=False, soft_wrap=True)
    return ExitCode.OK


@click.command()
@click.option("--force", is_flag=True, help="Take the mesh down even while commands are using it.")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines.")
def down(force: bool, quiet: bool) -> int:
    """Stop every process `up` started and remove what it registered and wrote in Consul.

    While commands (canary, run, probes) are using the mesh it refuses, naming them (exit 5):
    they would fail on connection errors, and the last of them puts the mesh back as it found
    it anyway (down, if nothing ran before). --force takes it down regardless.
    """
    from loadgen.mesh.local import down_for_user

    warnings = down_for_user(_runtime(), _progress(quiet), force=force)
    for w in warnings:
        _err().print(f"loadgen: warning: {w}", highlight=False)
    if not quiet:
        _out().print("mesh is down")
    return ExitCode.OK


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(as_json: bool) -> int:
    """Show every component (pid, port, health), the config entries in force and the commands
    using the mesh (canary, run, probes: `down` waits for them).

    The Consul asked is the mesh's; with nothing up, CONSUL_HTTP_ADDR's (else 127.0.0.1:8500),
    and the output says whose it is. --json is printed whatever goes wrong.

    \b
    Exit codes, so a script can ask "is the local mesh serving?":
      0  the mesh is up: a stage is recorded, every part of it runs and Consul answers
      4  it is half up (a part stopped or never started, no stage because an `up` did not
         finish, or Consul unreachable; each is named), or nothing is up at all
    """
    from loadgen.errors import LoadgenError

    try:
        runtime_ = _runtime()
        st = runtime_.status()
        loan = runtime_.run.load().loan
    except LoadgenError as exc:
        if not as_json:
            raise
        # A script asked for JSON: it gets JSON (and the code), not only a line on stderr.
        _print_json({"up": False, "error": exc.message, "exit_code": int(exc.code)})
        return exc.code
    borrowers = loan.live() if loan else []
    if as_json:
        _print_json({
            "stage": st.stage, "runtime": st.runtime, "consul": st.consul_address, "consul_source": st.consul_source,
            "consul_reachable": st.consul_reachable, "consul_security": st.security, "up": st.up,
            "problems": st.problems,
            "borrowers": [{"pid": b.pid, "command": b.command, "stage": b.stage, "since": b.since}
                          for b in borrowers],
            "components": [c.__dict__ for c in st.components], "config_entries": st.config_entries,
        })
        return ExitCode.OK if st.up else ExitCode.UNREACHABLE
    from rich.markup import escape
    from rich.table import Table

    from loadgen.mesh.state import describe_borrowers

    out = _out()
    consul = f"Consul {st.consul_address} ({st.consul_source}: {'reachable' if st.consul_reachable else 'UNREACHABLE'})"
    if not st.components:
        out.print(f"no local mesh is running (start one with `loadgen up --stage basic`); {consul}", highlight=False,
                  soft_wrap=True)
        for line in st.problems:
            out.print(f"[red]problem:[/red] {escape(line)}", highlight=False)
        return ExitCode.UNREACHABLE
    out.print(f"stage [bold]{st.stage}[/bold] on runtime {st.runtime}; {consul}", highlight=False)
    if st.security:
        out.print(f"  {st.security}", highlight=False)
    refs = any(c.ref for c in st.components)
    table = Table("component", "kind", "pid", *(["runs as"] if refs else []), "port", "running", "health")
    colour = {"passing": "green", "warning": "yellow", "critical": "red", "stopped": "red"}
    for c in st.components:
        h = f"[{colour.get(c.health, 'white')}]{c.health}[/]"
        table.add_row(c.name, c.kind, str(c.pid or ""), *([c.ref or ""] if refs else []), str(c.port or ""),
                      "yes" if c.running else "[red]no[/]", h)
    out.print(table)
    logs = {str(Path(c.log).parent) for c in st.components if c.log}
    if logs:
        out.print(f"logs in {', '.join(sorted(logs))} (`loadgen logs COMPONENT`)", highlight=False)
    if st.config_entries:
        t2 = Table("config entry", "name", "in Consul", "modify index")
        for e in st.config_entries:
            t2.add_row(str(e["kind"]), str(e["name"]), "yes" if e["present"] else "[red]no[/]",
                       str(e.get("modify_index") or ""))
        out.print(t2)
    if borrowers:
        out.print(f"in use by {describe_borrowers(borrowers)}", highlight=False)
    stopped = [c.name for c in st.components if not c.running]
    for line in ([f"not running: {', '.join(stopped)}"] if stopped else []) + st.problems:
        out.print(f"[red]half up:[/red] {escape(line)}", highlight=False)
    return ExitCode.OK if st.up else ExitCode.UNREACHABLE


@click.command()
@click.argument("component")
@click.option("-n", "--lines", default=40, show_default=True, help="How many lines from the end.")
def logs(component: str, lines: int) -> int:
    """Print the last lines of COMPONENT's log (names as in `loadgen status`)."""
    click.echo(_runtime().logs(component, lines))
    return ExitCode.OK


@click.command()
def stages() -> int:
    """List the stages defined in consul/stages.toml."""
    from rich.table import Table

    from loadgen.mesh.stages import load_stages

    out = _out()
    table = Table("stage", "what it deploys", "config entries", "from")
    book = load_stages()
    for st in book.stages.values():
        table.add_row(st.name, st.summary, "\n".join(e.path.name for e in st.config_entries) or "-",
                      "the original notes" if st.origin == "seed" else "loadgen")
    out.print(table)
    own = [st.name for st in book.stages.values() if st.origin != "seed"]
    if own:
        out.print(f"{', '.join(own)}: loadgen's own stages, not from the original notes (real L7 configs to "
                  "verify: a header route, a nested splitter)", style="dim", highlight=False)
    return ExitCode.OK


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def doctor(as_json: bool) -> int:
    """Check the real parts: Consul, Envoy, Nomad (and Go, to build them).

    Exits 5 when a required part is missing or incompatible.
    """
    import dataclasses

    from rich.table import Table

    from loadgen.mesh.doctor import check_parts

    out = _out()
    rows = check_parts()
    bad = [r for r in rows if r.required and not r.compatible]
    agent = _consul_agent()
    if as_json:
        _print_json({"ok": not bad, "parts": [dataclasses.asdict(r) for r in rows], "consul_agent": agent})
    else:
        table = Table("part", "version", "wanted", "usable")
        table.add_column("found at", overflow="fold")
        for r in rows:
            ok = "[green]yes[/]" if r.compatible else ("[red]NO[/]" if r.required else "[yellow]no[/]")
            where = f"{_home(r.found)} ({r.source})" if r.found else "[red]missing[/]"
            table.add_row(r.part, str(r.version or "-"), r.wanted, ok, where)
        out.print(table)
        for r in rows:
            for p in r.problems:
                out.print(f"  [dim]{r.part}: {p}[/dim]", highlight=False)
            if r.fix:
                out.print(f"  {r.part}: fix with: {r.fix}", highlight=False)
        state = "answers" if agent["reachable"] else f"does not answer ({agent['why']})"
        out.print(f"Consul agent at {agent['address']} ({agent['whose']}): {state}"
                  + (f"; {agent['security']}" if agent["security"] else ""), highlight=False)
    return ExitCode.ENVIRONMENT if bad else ExitCode.OK


def _consul_agent() -> dict[str, object]:
    """The agent loadgen would use: the running local mesh's, else the consul CLI's environment's."""
    import os

    from loadgen.errors import LoadgenError
    from loadgen.mesh.consul_api import DEFAULT_CONSUL, ConsulClient, ConsulSettings
    from loadgen.mesh.runtime.select import runtime_for

    try:
        runtime_ = runtime_for()
        state = runtime_.run.load()
        whose = "the local mesh's" if not state.empty else "CONSUL_HTTP_ADDR" if os.environ.get(
            "CONSUL_HTTP_ADDR") else "the default address"
        settings = runtime_.consul_settings(state, "read") if not state.empty else ConsulSettings.from_env()
    except LoadgenError as exc:
        return {"address": os.environ.get("CONSUL_HTTP_ADDR", DEFAULT_CONSUL), "whose": "CONSUL_HTTP_ADDR",
                "reachable": False, "why": exc.message, "security": None}
    with ConsulClient(timeout=2.0, settings=settings) as consul:
        try:
            consul.leader()
        except LoadgenError as exc:
            return {"address": consul.address, "whose": whose, "reachable": False, "why": exc.message,
                    "security": None}
        return {"address": consul.address, "whose": whose, "reachable": True, "why": None,
                "security": consul.describe_security()}


@click.group()
def toolchain_group() -> None:
    """Build and cache the pinned Consul and Nomad binaries."""


@toolchain_group.command("install")
@click.option("--nomad/--no-nomad", default=True, show_default=True, help="Also build Nomad.")
def toolchain_install(nomad: bool) -> int:
    """Build Consul (and Nomad) from tools/ into ~/.cache/loadgen/bin once; reuse on a warm machine.

    A compatible binary already on PATH (or in LOADGEN_CONSUL / LOADGEN_NOMAD) is used as is.
    """
    from loadgen.mesh import toolchain

    err = _err()
    for name in ("consul", "nomad") if nomad else ("consul",):
        found = toolchain.find(name)
        if found.ok:
            err.print(f"{name} {found.version}: using {found.path} ({found.source})", highlight=False)
            continue
        toolchain.build(name, log=lambda m: err.print(m, highlight=False))
    toolchain.require("envoy")
    return ExitCode.OK


@click.command()
@click.option("-n", "--requests", default=300, show_default=True, type=click.IntRange(1, 100_000),
              help="How many sequential requests to send.")
@click.option("--url", default=SERVICE_A_URL, show_default=True, help="service-a's /hello_a.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def split(requests: int, url: str, as_json: bool) -> int:
    """Send N requests through service-a and show how service-b's APP_IDs shared them.

    A quick look only; `loadgen canary` judges the split statistically. Exit 0 when at least one
    answer named its backend (an APP_ID); 4 when nothing answered HTTP (refused, timed out, not
    HTTP); 1 when answers came but none named a backend (all errors, no APP_ID): there was no
    split to show. The table (or --json) is printed in every case.
    """
    from collections import Counter

    from rich.table import Table
    from rich.text import Text

    from loadgen.errors import UnreachableError
    from loadgen.load.client import Endpoint
    from loadgen.mesh.liveness import get_hello_a
    from loadgen.report.brief import MAX_LISTED, brief_value
    from loadgen.url_userinfo import refuse_userinfo

    refuse_userinfo(url, "--url")  # httpx would send it as basic auth, and --json would echo it
    Endpoint.parse(url)  # ftp://x, no host, a bad port: one line, exit 2, before any request
    counts: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    answered = 0  # HTTP answers, whatever their status
    deadline = time.monotonic() + max(30.0, requests * 0.5)
    for _ in range(requests):
        if time.monotonic() > deadline:
            break
        obs = get_hello_a(url)
        answered += obs.status is not None
        if obs.status == 200 and obs.app_id:
            counts[obs.app_id] += 1
        else:
            errors[obs.error.split(":")[0] if obs.error else f"HTTP {obs.status}"] += 1
    total = sum(counts.values())
    if as_json:
        _print_json({"url": url, "requests": requests, "app_ids": dict(counts), "errors": dict(errors)})
    else:
        table = Table("APP_ID", "responses", "share")
        ranked = sorted(counts, key=lambda a: (-counts[a], a))
        for app_id in ranked[:MAX_LISTED] if len(ranked) > MAX_LISTED + 1 else ranked:
            n = counts[app_id]
            table.add_row(Text(brief_value(app_id, quoted=False)), str(n), f"{100 * n / total:.1f} %")
        if len(ranked) > MAX_LISTED + 1:
            rest = sum(counts[a] for a in ranked[MAX_LISTED:])
            table.add_row(f"{len(ranked) - MAX_LISTED:,} other APP_IDs", str(rest), f"{100 * rest / total:.1f} %")
        for kind, n in errors.items():
            table.add_row(f"[red]error: {kind}[/]", str(n), "")
        _out().print(table)
    if total:
        return ExitCode.OK
    if not answered:
        raise UnreachableError(f"{url} did not answer HTTP ({', '.join(errors) or 'nothing sent'}); is the mesh up? "
                               "`loadgen up --stage splitter`")
    _err().print(f"loadgen: no answer named its backend ({sum(errors.values()):,} of them: "
                 f"{', '.join(f'{k} x{v}' for k, v in errors.items())}): there is no split to show", highlight=False,
                 markup=False)
    return ExitCode.FAIL


COMMANDS = [up, down, status, logs, stages, doctor, split]
GROUPS = {"toolchain": toolchain_group}


@click.group("images")
def images_group() -> None:
    """Container images for the docker runtime (built locally, no registry)."""


@images_group.command("build")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def images_build(as_json: bool) -> int:
    """Build the base, service-a, service-b, consul-envoy and pause images and loadgen's own
    (loadgen/loadgen, the CLI as entry point, FROM loadgen/loadgen-packages); images whose inputs did
    not change are reused (tags are hashes of the inputs)."""
    from rich.table import Table

    from loadgen.mesh.images import build_all

    results = build_all(lambda m: None if as_json else _err().print(m, highlight=False), loadgen_image=True)
    if as_json:
        click.echo(json.dumps([r.__dict__ for r in results], indent=2))
        return ExitCode.OK
    table = Table("image", "tag", "built now", "seconds")
    for r in results:
        table.add_row(r.name, r.tag, "yes" if r.built else "no (inputs unchanged)", f"{r.seconds:.1f}")
    _out().print(table)
    return ExitCode.OK


GROUPS["images"] = images_group
