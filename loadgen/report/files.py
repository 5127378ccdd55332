"""Writing machine-readable results: JSON and JUnit XML (for CI systems to show natively)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from loadgen.errors import UsageError
from loadgen.stats import Verdict, VerdictState
from loadgen.stats.bands import format_band


def write_json(path: Path, data: dict[str, Any]) -> None:
    _write(path, json.dumps(data, indent=2, default=str) + "\n")


def junit_xml(verdict: Verdict, suite: str = "loadgen canary", duration_s: float = 0.0,
              properties: dict[str, str] | None = None) -> str:
    """One testcase per subset (its share within the band) plus one for the verdict."""
    cases = ET.Element("testsuite", name=suite, time=f"{duration_s:.3f}")
    if properties:
        props = ET.SubElement(cases, "properties")
        for k, v in properties.items():
            ET.SubElement(props, "property", name=k, value=v)
    failures = skipped = 0
    for s in verdict.subsets:
        case = ET.SubElement(cases, "testcase", classname=suite, name=f"subset {s.name}")
        text = (f"expected {s.expected * 100:.4g} %, band {format_band(s.band)}; observed "
                f"{s.share * 100:.2f} % of n={verdict.n}; true share {s.lower * 100:.2f}-{s.upper * 100:.2f} %")
        if s.status == "outside":
            ET.SubElement(case, "failure", message=f"{s.name} outside its band", type="SplitMismatch").text = text
            failures += 1
        elif s.status == "undecided":
            ET.SubElement(case, "skipped", message=f"{s.name} not decided: {text}")
            skipped += 1
        else:
            ET.SubElement(case, "system-out").text = text
    case = ET.SubElement(cases, "testcase", classname=suite, name="verdict")
    if verdict.state is VerdictState.FAIL:
        kind = "SplitChanged" if verdict.change is not None and verdict.change.detected else "FAIL"
        ET.SubElement(case, "failure", message=verdict.reason, type=kind).text = verdict.reason
        failures += 1
    elif verdict.state is not VerdictState.PASS:
        ET.SubElement(case, "skipped", message=f"{verdict.state.value}: {verdict.reason}")
        skipped += 1
    else:
        ET.SubElement(case, "system-out").text = verdict.reason
    cases.set("tests", str(len(verdict.subsets) + 1))
    cases.set("failures", str(failures))
    cases.set("errors", "0")
    cases.set("skipped", str(skipped))
    ET.indent(cases)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(cases, encoding="unicode") + "\n"


def write_junit(path: Path, verdict: Verdict, **kwargs: Any) -> None:
    _write(path, junit_xml(verdict, **kwargs))


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
