"""Issue 25's hostile sweep, replayed: bad options per command, odd environments, replay files,
identity forms, faulty targets and output failures, each run as a user would run it (a
subprocess with a bounded time), its outcome classified against what the issue says it should be.

Needs no local mesh: every target and every Consul is a stand-in on a loopback port 0
(bench/standins.py), CONSUL_HTTP_ADDR and --consul point at the case's own stand-in Consul,
NOMAD_ADDR at a closed port, and LOADGEN_RUN_DIR at the case's own directory (so `down` and
`status` see no mesh). A case is *right* when every check holds:

- the exit code is one the issue expects (bad input: 2; never 70, a hang, or an abort);
- no traceback on stderr; stdout + stderr below a size when an input was huge;
- the secret of the case (a token, a password) appears nowhere: stdout, stderr, output files;
- no request reached the stand-in Consul (or target) when the options were bad: validation
  comes before the first request;
- the outputs asked for exist when the issue says they must (every output, whatever the exit).

    .venv/bin/python bench/hostile_sweep.py              # all cases, 3 at a time
    .venv/bin/python bench/hostile_sweep.py -k locust --jobs 2 --json /tmp/sweep.json

Prints one table per category (cases, right, wrong) and every wrong case with what was seen.
Exit status: 0 when every case is right, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from standins import StandIn

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = ROOT / "locustfiles" / "mesh.py"
SECRET = "s3cr3t"  # every secret of the sweep contains it: any rendering of it gives it away
TRACEBACK = "Traceback (most recent call last)"
BAD = 2  # errors.ExitCode.USAGE
VERDICTS = {0, 1, 3}
NOT_ZERO = set(range(1, 256)) - {70, 134}


@dataclass
class Case:
    category: str
    name: str
    argv: list[str]  # loadgen's arguments (or locust's, with program="locust"); {target} {consul} {tmp} filled in
    expect: str  # what the issue says should happen, for the list of wrong cases
    codes: set[int] | None = None  # accepted exit codes (None: any but 70 / 134 / a hang)
    target: str = "ok"  # the stand-in behind {target}
    consul: str = "consul500"  # the stand-in behind {consul} and CONSUL_HTTP_ADDR
    env: dict[str, str] = field(default_factory=dict)
    unset: tuple[str, ...] = ()  # variables removed from the environment
    untouched: tuple[str, ...] = ()  # "consul" / "target": must not get one request
    files: dict[str, bytes] = field(default_factory=dict)  # written under {tmp} first
    outputs: tuple[str, ...] = ()  # files under {tmp} that must exist afterwards
    stdout: str = "pipe"  # pipe | closed | full | reader-quits
    max_output: int | None = None  # stdout + stderr at most this many characters
    forbid: tuple[str, ...] = ()  # substrings that must not appear in stdout + stderr
    require: tuple[str, ...] = ()  # substrings that must appear in stdout + stderr
    ascii_requests: bool = False  # the target must only see ASCII request lines
    code_matches_json: str | None = None  # the exit code must be the verdict's in this --json file
    json_forbid: tuple[str, str] | None = None  # (key, inner key) that must not be in out.json
    require_any: tuple[str, ...] = ()  # at least one of these in stdout + stderr
    stdout_json: bool = False  # stdout must be one JSON document
    timeout: float = 40.0
    max_s: float | None = None  # must end within this (e.g. before Locust's -t)
    program: str = "loadgen"
    secret: bool = False  # SECRET must appear nowhere


@dataclass
class Outcome:
    case: Case
    code: int | None  # None: killed at the timeout
    seconds: float
    problems: list[str]
    said: str  # the last lines of stderr, for reading why

    @property
    def right(self) -> bool:
        return not self.problems


# -- the cases -----------------------------------------------------------------------------------
TARGET = ["--target", "{target}"]
CANARY = ["canary", *TARGET, "--map", "1=v1,2=v2", "--consul", "{consul}"]
LOUD = ["--expect", "85/15", "--tolerance", "5", "--rate", "200", "--max-time", "8s"]  # with the progress display
LIVE = [*LOUD, "-q"]
PROBE = ["--target", "{target}", "--consul", "{consul}", "--envoy-admin", "127.0.0.1:1"]
SHIFT = ["shift", *PROBE, "--subset", "v2", "--steps", "50,100"]
LOCUST = ["-f", str(LOCUSTFILE), "--headless", "-u", "2", "-r", "2", "-t", "30s", "--host", "{target_base}",
          "--consul", "{consul}", "--only-summary"]
NOTHING_SENT = ("consul", "target")


def _replay(lines: Iterable[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def _row(t: object, app_id: object, **extra: object) -> str:
    """One sample as `--record` writes it (every field a replay needs)."""
    return json.dumps({"t": t, "status": 200, "app_id": app_id, "latency_ms": 1.0, "error": None, **extra})


def _good_replay(n: int = 400, extra: Iterable[str] = ()) -> list[str]:
    return [*(_row(i * 0.01, "1" if i % 7 else "2") for i in range(n)), *extra]


def cases() -> list[Case]:
    out: list[Case] = []

    def bad(category: str, name: str, argv: list[str], **kw: object) -> None:
        """Bad input: exit 2, one line, nothing sent to Consul or the target."""
        kw.setdefault("untouched", NOTHING_SENT)
        out.append(Case(category, name, argv, kw.pop("expect", "exit 2 before any request"),  # type: ignore[arg-type]
                        codes={BAD}, **kw))  # type: ignore[arg-type]

    # canary
    c = "options: canary"
    for expect in ("85/1", "nan/nan", "-50/150", "", "85/15/0/x"):
        bad(c, f"--expect {expect!r}", [*CANARY, "--expect", expect])
    bad(c, "--expect v1=85,v3=15 with --map 1=v1,2=v2 (v3 has no APP_ID)",
        [*CANARY, "--expect", "v1=85,v3=15", "--max-time", "5s"])
    for tol in ("nan", "inf", "-1", "60"):
        bad(c, f"--tolerance {tol}", [*CANARY, "--expect", "85/15", "--tolerance", tol])
    for rate in ("0", "-5", "nan", "1e30"):
        bad(c, f"--rate {rate}", [*CANARY, "--expect", "85/15", "--rate", rate])
    bad(c, "--max-time 0.0001s (nothing left to judge)", [*CANARY, "--expect", "85/15", "--max-time", "0.0001s"])
    bad(c, "--warmup 10s --max-time 2s", [*CANARY, "--expect", "85/15", "--warmup", "10s", "--max-time", "2s"])
    bad(c, "--max-requests 10", [*CANARY, "--expect", "85/15", "--max-requests", "10"])
    bad(c, "--target ftp://x/hello_a", ["canary", "--target", "ftp://x/hello_a", "--map", "1=v1,2=v2",
                                        "--consul", "{consul}", "--expect", "85/15"])
    bad(c, "--expect of 100k characters (echoed whole?)", [*CANARY, "--expect", "8" * 100_000],
        max_output=2_000)
    bad(c, "-X GÉT", [*CANARY, *LIVE, "-X", "GÉT"])
    bad(c, "--stage with --target", [*CANARY, *LIVE, "--stage", "basic"],
        expect="exit 2: --stage means the local mesh, --target another")
    bad(c, "--replay with --target", [*CANARY, "--expect", "85/15", "--replay", "{tmp}/r.jsonl"],
        files={"r.jsonl": _replay(_good_replay())}, expect="exit 2: a replay sends nothing to --target")
    bad(c, "--record and --replay", [*CANARY, "--expect", "85/15", "--replay", "{tmp}/r.jsonl", "--record",
                                     "{tmp}/o.jsonl"], files={"r.jsonl": _replay(_good_replay())})
    out.append(Case(c, "--target /héllo (non-ASCII path)", ["canary", "--target", "{target_base}/héllo", "--map",
                                                            "1=v1,2=v2", "--consul", "{consul}", *LIVE],
                    "refused (exit 2) or sent percent-encoded, never as raw latin-1", ascii_requests=True))
    out.append(Case(c, "CONSUL_HTTP_ADDR='' with --expect consul", ["canary", *TARGET, "--expect", "consul"],
                    "exit 2: an empty CONSUL_HTTP_ADDR is an error, not 127.0.0.1:8500", codes={BAD},
                    env={"CONSUL_HTTP_ADDR": ""}, untouched=("target",)))

    # run
    c = "options: run"
    RUN = ["run", *TARGET, "--no-plots", "-q", "--out", "{tmp}/reports"]
    for rate in ("1e30", "1e30:1s", "1..1e30", "0", "nan"):
        bad(c, f"--rate {rate}", [*RUN, "--rate", rate, "--duration", "2s"], timeout=25,
            expect="exit 2 at once (no spin ignoring signals)")
    bad(c, "--duration ''", [*RUN, "--duration", ""])
    bad(c, "--duration -1s", [*RUN, "--duration", "-1s"])
    bad(c, "--rate with --concurrency", [*RUN, "--rate", "100", "--concurrency", "5", "--duration", "2s"],
        expect="exit 2: --rate is ignored in closed loop")
    bad(c, "--out /dev/null", ["run", *TARGET, "--no-plots", "-q", "--duration", "2s", "--out", "/dev/null"],
        expect="exit 2 before the load")
    bad(c, "--record into a directory", [*RUN, "--duration", "2s", "--record", "{tmp}"])
    bad(c, "--target ftp://x", ["run", "--target", "ftp://x/hello_a", "--duration", "2s", "-q"])
    bad(c, "--header with CR LF", [*RUN, "--duration", "2s", "--header", "X-A: 1\r\nX-B: 2"])
    bad(c, "--timeout 0s", [*RUN, "--duration", "2s", "--timeout", "0s"])

    # shift
    c = "options: shift"
    bad(c, "--service ''", [*SHIFT, "--service", ""], expect="exit 2 before Consul is asked")
    bad(c, "--service '../../x y'", [*SHIFT, "--service", "../../x y"], expect="exit 2 (not 70 from the lock path)")
    bad(c, "--max-p99-ratio nan", [*SHIFT, "--max-p99-ratio", "nan"])
    bad(c, "--max-p99 inf", [*SHIFT, "--max-p99", "inf"])
    bad(c, "--steps 50,abc", ["shift", *PROBE, "--subset", "v2", "--steps", "50,abc"])
    bad(c, "--json and --junit on one path", [*SHIFT, "--json", "{tmp}/o", "--junit", "{tmp}/o"])

    # intentions
    c = "options: intentions"
    bad(c, "--target ftp://x/hello_b", ["intentions", "--target", "ftp://x/hello_b", "--consul", "{consul}",
                                        "--envoy-admin", "b1=127.0.0.1:1", "--repeat", "1"],
        expect="exit 2 before any intention is written")
    bad(c, "--repeat 0", ["intentions", *PROBE, "--repeat", "0"])
    bad(c, "--rate nan", ["intentions", *PROBE, "--rate", "nan"])
    bad(c, "--json and --junit on one path", ["intentions", *PROBE, "--json", "{tmp}/o", "--junit", "{tmp}/o"])

    # propagation
    c = "options: propagation"
    for split in ("50/40", "", "nan/nan", "-50/150"):
        bad(c, f"--splitter {split!r}", ["propagation", *PROBE, "--splitter", split],
            expect="exit 2 before Consul is written")

    # split
    c = "options: split"
    bad(c, "--url ftp://x", ["split", "--url", "ftp://x/hello_a", "-n", "5"], untouched=())
    bad(c, "-n 0", ["split", "--url", "{target}", "-n", "0"])

    # status, up, down, report
    c = "options: status/up/down/report"
    bad(c, "status --bogus", ["status", "--bogus"])
    bad(c, "up --stage nosuch", ["up", "--stage", "nosuch", "-q"])
    bad(c, "up --runtime bogus", ["up", "--runtime", "bogus", "-q"])
    bad(c, "down --bogus", ["down", "--bogus"])
    bad(c, "status with a state.json holding []", ["status"], files={"run/state.json": b"[]"},
        expect="exit 2 naming the file (not 70)", untouched=())
    bad(c, "down with a state.json holding []", ["down", "-q"], files={"run/state.json": b"[]"},
        expect="exit 2 naming the file (not 70)", untouched=())
    bad(c, "report of a missing directory", ["report", "{tmp}/nothing"])
    bad(c, "report of a directory without summaries", ["report", "{tmp}/empty"], files={"empty/x.txt": b"x"})
    out.append(Case(c, "status --json with a Consul that 500s", ["status", "--json"],
                    "JSON on stdout whatever Consul says", stdout_json=True, codes=None))
    out.append(Case(c, "status names the Consul it asks (CONSUL_HTTP_ADDR)", ["status"],
                    "says which Consul is used (not always 127.0.0.1:8500)", require=("{consul}",), codes=None))

    # the Locust plugin
    c = "options: locust plugin"
    for name, args in (("--expect 85/1", ["--expect", "85/1", "--map", "1=v1,2=v2"]),
                       ("--map 1:v1", ["--expect", "85/15", "--map", "1:v1"]),
                       ("--tolerance nan", ["--expect", "85/15", "--map", "1=v1,2=v2", "--tolerance", "nan"]),
                       ("--confidence 100", ["--expect", "85/15", "--map", "1=v1,2=v2", "--confidence", "100"]),
                       ("--canary-json a directory", ["--expect", "85/15", "--map", "1=v1,2=v2", "--canary-json",
                                                      "{tmp}"]),
                       ("--envoy-admin garbage", ["--expect", "85/15", "--map", "1=v1,2=v2", "--envoy-admin", "x"])):
        bad(c, name, [*LOCUST, *args], program="locust", max_s=25, timeout=60,
            expect="exit 2 before the first user spawns (not after -t 30s)")

    # environment variables
    c = "environment"
    token_cmds = {"canary --expect consul": ["canary", *TARGET, "--expect", "consul", "--consul", "{consul}"],
                  "shift": SHIFT, "intentions": ["intentions", *PROBE, "--repeat", "1"],
                  "propagation": ["propagation", *PROBE, "--splitter", "50/50"]}
    for cmd, argv in token_cmds.items():
        out.append(Case(c, f"{cmd}: CONSUL_HTTP_TOKEN with a trailing newline", argv,
                        "stripped like Consul's CLI; the token never printed",
                        env={"CONSUL_HTTP_TOKEN": f"{SECRET}-tok\n"}, secret=True, timeout=40))
        bad(c, f"{cmd}: CONSUL_HTTP_TOKEN with an inner newline", argv, env={"CONSUL_HTTP_TOKEN": f"{SECRET}\ntok"},
            secret=True, expect="exit 2 naming CONSUL_HTTP_TOKEN, never its value")
        bad(c, f"{cmd}: non-ASCII CONSUL_HTTP_TOKEN", argv, env={"CONSUL_HTTP_TOKEN": f"{SECRET}-tök"},
            secret=True, expect="exit 2 naming CONSUL_HTTP_TOKEN, never its value")
    bad(c, "token file with a NUL", token_cmds["canary --expect consul"],
        env={"CONSUL_HTTP_TOKEN_FILE": "{tmp}/tok"}, files={"tok": f"{SECRET}\x00tok".encode()}, secret=True,
        expect="exit 2 naming the file, never its content")
    bad(c, "binary token file", token_cmds["canary --expect consul"], env={"CONSUL_HTTP_TOKEN_FILE": "{tmp}/tok"},
        files={"tok": SECRET.encode() + b"\xff\xfe\x80"}, secret=True)
    bad(c, "token file with an inner newline", token_cmds["shift"], env={"CONSUL_HTTP_TOKEN_FILE": "{tmp}/tok"},
        files={"tok": f"{SECRET}\ntok\n".encode()}, secret=True)
    bad(c, "missing token file", token_cmds["canary --expect consul"],
        env={"CONSUL_HTTP_TOKEN_FILE": "{tmp}/nothing"})
    bad(c, "empty CONSUL_HTTP_ADDR (canary --target, no --consul)", ["canary", *TARGET, "--map", "1=v1,2=v2", *LIVE],
        env={"CONSUL_HTTP_ADDR": ""}, expect="exit 2: an empty CONSUL_HTTP_ADDR is an error, not 127.0.0.1:8500")
    bad(c, "empty CONSUL_HTTP_ADDR (status)", ["status"], env={"CONSUL_HTTP_ADDR": ""},
        expect="exit 2: an empty CONSUL_HTTP_ADDR is an error, not 127.0.0.1:8500")
    out.append(Case(c, "canary --target http://user:pass@...", ["canary", "--target",
                                                                f"http://user:{SECRET}-pw@{{target_addr}}/hello_a",
                                                                "--map", "1=v1,2=v2", "--consul", "{consul}", *LIVE,
                                                                "--json", "{tmp}/out.json"],
                    "the password used (basic auth) or refused (exit 2); never printed or stored", secret=True))
    out.append(Case(c, "run --target http://user:pass@...", ["run", "--target",
                                                             f"http://user:{SECRET}-pw@{{target_addr}}/hello_a",
                                                             "--duration", "2s", "--no-plots", "-q", "--out",
                                                             "{tmp}/reports", "--json"],
                    "the password used or refused; never printed or stored", secret=True))

    # replay files
    c = "replay files"
    REPLAY = ["canary", "--replay", "{tmp}/r.jsonl", "--expect", "85/15", "--map", "1=v1,2=v2", "--tolerance", "5",
              "--json", "{tmp}/out.json"]
    bad(c, "malformed line", REPLAY, files={"r.jsonl": _replay([*_good_replay(10), "{not json"])},
        require=("r.jsonl:11",), untouched=())
    bad(c, "negative t", REPLAY, files={"r.jsonl": _replay(_good_replay(10, [_row(-5, "1")]))}, untouched=())
    bad(c, "app_id true", REPLAY, files={"r.jsonl": _replay(_good_replay(10, [_row(1, True)]))}, untouched=())
    bad(c, "empty replay with --map", REPLAY, files={"r.jsonl": b""}, untouched=(),
        expect="exit 2 (an input error, not INCONCLUSIVE)")
    epoch = [_row(1.7e9 + i * 0.01, "1" if i % 7 else "2") for i in range(400)]
    out.append(Case(c, "epoch-second t", REPLAY, "judged at once (no ~95 s a jump)", files={"r.jsonl": _replay(epoch)},
                    codes=VERDICTS | {BAD}, timeout=20))
    out.append(Case(c, "t 1e300", REPLAY, "refused or judged at once (never endless)",
                    files={"r.jsonl": _replay(_good_replay(10, [_row(1e300, "1")]))}, codes=VERDICTS | {BAD},
                    timeout=20))
    out.append(Case(c, 'app_id ""', REPLAY, "an empty app_id is no APP_ID, as an empty header",
                    files={"r.jsonl": _replay(_good_replay(400, [_row(5, "")]))}, codes=VERDICTS,
                    outputs=("out.json",), json_forbid=("app_id_counts", "")))
    out.append(Case(c, "app_id of 100k characters", REPLAY, "bounded output (not echoed whole)",
                    files={"r.jsonl": _replay(_good_replay(400, [_row(5, "9" * 100_000)]))},
                    codes=VERDICTS | {BAD}, max_output=5_000))
    many = [_row(5 + i * 0.001, f"req-{i:06d}") for i in range(2000)]
    out.append(Case(c, "2,000 distinct unknown APP_IDs", REPLAY, "the unknown APP_IDs summarised, not listed",
                    files={"r.jsonl": _replay(_good_replay(400, many))}, codes=VERDICTS | {BAD}, max_output=5_000))

    # identity forms
    c = "identity forms"
    for rule in ("json:", "json:a..b", "header:", "bogus", "header:X App"):
        bad(c, f"--subset-from {rule!r}", [*CANARY, *LIVE, "--subset-from", rule])
    bad(c, "--subset-from envoy without --envoy-admin", [*CANARY, *LIVE, "--subset-from", "envoy"])
    for rule in ("header:x-app-id", "json:app_id"):
        out.append(Case(c, f"--subset-from {rule} (valid)", [*CANARY, *LIVE, "--subset-from", rule],
                        "a verdict", codes={0, 3}))

    # faulty targets
    c = "faulty targets"
    OUTS = ["--json", "{tmp}/out.json", "--junit", "{tmp}/out.xml"]
    halfcut = ("a verdict on the answers (reachability is several attempts, not exit 4 in half the runs); both "
               "outputs written", {1, 3})
    faults = [("500", "500", "exit 4 or a FAIL; both outputs written", {1, 4}),
              ("garbage", "garbage", "exit 4 or a FAIL; both outputs written", {1, 4}),
              ("hang", "hang", "bounded by --timeout; both outputs written; not 'generator too slow'", {1, 3, 4}),
              *((f"halfcut (run {i})", "halfcut", *halfcut) for i in (1, 2, 3)),
              ("slow", "slow", "a verdict or INCONCLUSIVE; both outputs written", {0, 1, 3})]
    for name, mode, expect, codes in faults:
        out.append(Case(c, f"canary, target {name}", [*CANARY, *LIVE, "--timeout", "2s", *OUTS], expect,
                        codes=codes, target=mode, outputs=("out.json", "out.xml"),
                        forbid=("generator too slow",) if mode == "hang" else ()))
    for mode in ("500", "garbage", "hang"):
        out.append(Case(c, f"split, target {mode}", ["split", "--url", "{target}", "-n", "5"],
                        "non-zero: no answer identified a backend", codes=NOT_ZERO, target=mode, timeout=60))
    out.append(Case(c, "run, target 500", ["run", *TARGET, "--duration", "2s", "--no-plots", "-q", "--out",
                                           "{tmp}/reports"], "a report; no traceback", target="500"))
    out.append(Case(c, "Consul's 500 with control bytes in its body", ["canary", *TARGET, "--expect", "consul",
                                                                        "--consul", "{consul}"],
                    "Consul's error named, its body never echoed raw (no control bytes)", codes={4},
                    forbid=("\x1b",)))
    out.append(Case(c, "canary https:// to a plain-HTTP server", ["canary", "--target", "https://{target_addr}/hello_a",
                                                                 "--insecure", "--map", "1=v1,2=v2", "--consul",
                                                                 "{consul}", *LIVE],
                    "a TLS error named as such (not connect_timeout)", codes={4}, forbid=("connect_timeout",)))

    # output failures
    c = "output failures"
    out.append(Case(c, "--json /dev/full", [*CANARY, *LOUD, "--json", "/dev/full", "--junit", "{tmp}/out.xml"],
                    "the verdict printed, --junit written, the verdict's code (or the documented output code)",
                    outputs=("out.xml",), require_any=("PASS", "FAIL", "INCONCLUSIVE"), codes=None))
    out.append(Case(c, "stdout on a full device", [*CANARY, *LOUD, "--json", "{tmp}/out.json"],
                    "--json written; not 70", stdout="full", outputs=("out.json",)))
    out.append(Case(c, "stdout closed", [*CANARY, *LOUD, "--json", "{tmp}/out.json"],
                    "--json written; no abort (134)", stdout="closed", outputs=("out.json",)))
    out.append(Case(c, "a reader that closes the pipe", [*CANARY, "--expect", "85/15", "--tolerance", "5", "--rate",
                                                         "200", "--max-time", "8s", "--json", "{tmp}/out.json"],
                    "the verdict's code (never FAIL's 1 for another verdict)", stdout="reader-quits",
                    outputs=("out.json",), code_matches_json="out.json"))
    out.append(Case(c, "PYTHONIOENCODING=ascii", [*CANARY, *LOUD, "--json", "{tmp}/out.json"],
                    "not 70", env={"PYTHONIOENCODING": "ascii"}, codes=VERDICTS, outputs=("out.json",)))
    bad(c, "--junit a directory", [*CANARY, *LIVE, "--junit", "{tmp}"])
    bad(c, "--json, --junit, --record on one path", [*CANARY, *LIVE, "--json", "{tmp}/o", "--junit", "{tmp}/o",
                                                     "--record", "{tmp}/o"])
    bad(c, "--json a directory", [*CANARY, *LIVE, "--json", "{tmp}"])
    return out


# -- running and judging one case -----------------------------------------------------------------
def run_case(case: Case) -> Outcome:
    target, consul = StandIn(case.target), StandIn(case.consul)
    try:
        with tempfile.TemporaryDirectory(prefix="sweep-") as tmp:
            return _run(case, Path(tmp), target, consul)
    finally:
        target.close()
        consul.close()


def _fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


def _run(case: Case, tmp: Path, target: StandIn, consul: StandIn) -> Outcome:
    values = {"target": target.url(), "target_addr": target.address, "target_base": f"http://{target.address}",
              "consul": consul.address, "tmp": str(tmp)}
    for rel, data in case.files.items():
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp / rel).write_bytes(data)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONSUL_", "NOMAD_", "LOADGEN_"))}
    env.update({"PYTHONPATH": str(ROOT), "CONSUL_HTTP_ADDR": consul.address, "NOMAD_ADDR": "http://127.0.0.1:1",
                "LOADGEN_RUN_DIR": str(tmp / "run"), "LOADGEN_RUNTIME": "process", "COLUMNS": "120"})
    env.update({k: _fill(v, values) for k, v in case.env.items()})
    for k in case.unset:
        env.pop(k, None)
    argv = [_fill(a, values) for a in case.argv]
    if case.program == "locust":
        cmd = [str(Path(sys.executable).with_name("locust")), *argv]
    else:
        cmd = [sys.executable, "-m", "loadgen.cli", *argv]
    started = time.monotonic()
    code, out, err = _execute(cmd, env, tmp, case)
    seconds = time.monotonic() - started
    problems = _judge(case, code, out, err, seconds, tmp, target, consul, values)
    return Outcome(case, code, seconds, problems, _clip(err[-600:], 300))


def _execute(cmd: list[str], env: dict[str, str], cwd: Path, case: Case) -> tuple[int | None, str, str]:
    """Run one case; (exit code or None when it had to be killed, stdout, stderr)."""
    stdout_file = None
    if case.stdout == "full":
        stdout_file = open("/dev/full", "wb")  # noqa: SIM115
    if case.stdout == "closed":
        cmd = ["sh", "-c", 'exec "$@" >&-', "sh", *cmd]
    stdout = stdout_file if stdout_file is not None else subprocess.PIPE
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env,
                            cwd=cwd, start_new_session=True)
    try:
        if case.stdout == "reader-quits":
            assert proc.stdout is not None
            proc.stdout.read(1)  # one byte, and the reader goes away (like `| head -c1`)
            proc.stdout.close()
            proc.stdout = None
        out_b, err_b = proc.communicate(timeout=case.timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out_b, err_b = proc.communicate()
        code = None
    finally:
        if stdout_file is not None:
            stdout_file.close()
    if code is not None and code < 0:
        code = 128 - code  # killed by a signal, as a shell reports it
    return code, (out_b or b"").decode("utf-8", "replace"), (err_b or b"").decode("utf-8", "replace")


def _judge(case: Case, code: int | None, out: str, err: str, seconds: float, tmp: Path, target: StandIn,
           consul: StandIn, values: dict[str, str]) -> list[str]:
    problems = []
    if code is None:
        problems.append(f"hang: killed after {case.timeout:g} s")
    elif code == 70:
        problems.append("exit 70 (internal error)")
    elif code == 134:
        problems.append("exit 134 (abort)")
    elif case.codes is not None and code not in case.codes:
        problems.append(f"exit {code}, expected {_codes(case.codes)}")
    if case.max_s is not None and seconds > case.max_s:
        problems.append(f"took {seconds:.0f} s (should end within {case.max_s:g} s)")
    if TRACEBACK in err:
        problems.append("traceback on stderr")
    both = out + err
    if case.max_output is not None and len(both) > case.max_output:
        problems.append(f"{len(both):,} characters of output (huge input echoed?)")
    for text in case.forbid:
        if text in both:
            problems.append(f"says {text!r}")
    for text in case.require:
        if _fill(text, values) not in both:
            problems.append(f"does not say {_fill(text, values)!r}")
    if case.require_any and not any(text in both for text in case.require_any):
        problems.append(f"says none of {', '.join(case.require_any)}")
    if case.stdout_json:
        try:
            json.loads(out)
        except ValueError:
            problems.append("stdout is not JSON")
    if case.secret:
        where = [name for name, text in (("stdout", out), ("stderr", err)) if SECRET in text]
        where += [str(p.relative_to(tmp)) for p in tmp.rglob("*")
                  if p.is_file() and str(p.relative_to(tmp)) not in case.files and SECRET.encode() in p.read_bytes()]
        if where:
            problems.append(f"the secret appears in {', '.join(sorted(where))}")
    for name, server in (("consul", consul), ("target", target)):
        if name in case.untouched and server.requests:
            problems.append(f"{server.requests} request(s) reached the stand-in {name} before the refusal")
    if case.ascii_requests and any(not line.isascii() for line in target.request_lines):
        problems.append("raw non-ASCII bytes sent in a request line")
    for rel in case.outputs:
        if not (tmp / rel).exists():
            problems.append(f"{rel} not written")
    if case.json_forbid is not None:
        key, inner = case.json_forbid
        try:
            if inner in (json.loads((tmp / "out.json").read_text()).get(key) or {}):
                problems.append(f"out.json's {key} holds {inner!r}")
        except (OSError, ValueError):
            pass  # its absence is reported by `outputs`
    if case.code_matches_json and code is not None:
        try:
            verdict = json.loads((tmp / case.code_matches_json).read_text())["verdict"]
            wanted = {"PASS": 0, "FAIL": 1, "INCONCLUSIVE": 3}.get(verdict)
            if code == 1 and wanted != 1:
                problems.append(f"exit 1 (FAIL's code) for a {verdict} verdict")
        except (OSError, ValueError, KeyError):
            pass  # its absence is reported by `outputs`
    return problems


# -- the table ----------------------------------------------------------------------------------------
def _table(outcomes: list[Outcome]) -> str:
    lines = ["| category | cases | right | wrong |", "|---|---|---|---|"]
    categories: dict[str, list[Outcome]] = {}
    for o in outcomes:
        categories.setdefault(o.case.category, []).append(o)
    for category, group in categories.items():
        right = sum(o.right for o in group)
        lines.append(f"| {category} | {len(group)} | {right} | {len(group) - right} |")
    right = sum(o.right for o in outcomes)
    lines.append(f"| **all** | {len(outcomes)} | {right} | {len(outcomes) - right} |")
    return "\n".join(lines)


def _codes(codes: set[int]) -> str:
    return "non-zero" if codes == NOT_ZERO else "/".join(map(str, sorted(codes)))


def _clip(text: str, n: int = 160) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= n else text[: n - 1] + "…"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=3, help="cases run at once (default 3)")
    parser.add_argument("-k", default="", help="only the cases whose category or name contains this")
    parser.add_argument("--json", type=Path, help="write every outcome here")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    args = parser.parse_args()
    chosen = [c for c in cases() if args.k.lower() in f"{c.category} {c.name}".lower()]
    if args.list:
        for c in chosen:
            print(f"{c.category}: {c.name} -- {c.expect}")
        return 0
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        outcomes = []
        for o in pool.map(run_case, chosen):
            outcomes.append(o)
            mark = "right" if o.right else "WRONG"
            print(f"[{len(outcomes)}/{len(chosen)}] {mark} {o.case.category}: {o.case.name} (exit {o.code}, "
                  f"{o.seconds:.1f} s)", file=sys.stderr, flush=True)
    print(f"\n{len(chosen)} cases in {time.monotonic() - started:.0f} s, {args.jobs} at a time\n")
    print(_table(outcomes))
    wrong = [o for o in outcomes if not o.right]
    if wrong:
        print("\nWrong cases:")
        for o in wrong:
            print(f"- {o.case.category}: {o.case.name} -- {'; '.join(o.problems)} (expected: {o.case.expect})")
    if args.json:
        rows = [{"category": o.case.category, "name": o.case.name, "expected": o.case.expect, "exit": o.code,
                 "seconds": round(o.seconds, 2), "right": o.right, "problems": o.problems, "stderr_tail": o.said}
                for o in outcomes]
        args.json.write_text(json.dumps(rows, indent=1, ensure_ascii=False))
    return 0 if not wrong else 1


if __name__ == "__main__":
    sys.exit(main())
