"""JUnit XML, the report CI systems show natively, from plain test cases.

Every ``--junit`` goes through :func:`render`: the canary (a case per subset, per extra check
and the verdict), the shift (a case per phase) and the intention probes (a case per change
measured). The command decides what its cases are; this module only knows the format, so it
imports nothing but the standard library.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

__all__ = ["TestCase", "TestSuite", "render"]


@dataclass(frozen=True)
class TestCase:
    """One ``<testcase>``: passed (``system_out`` says what was seen), failed or skipped."""

    __test__ = False  # not a pytest test class, whatever its name says

    name: str
    classname: str
    time_s: float | None = None  # None: no time attribute
    failure: str | None = None  # the failure's message; None: not failed
    failure_type: str = "Failure"
    failure_text: str | None = None  # the failure's body
    skipped: str | None = None  # why it was skipped; None: not skipped
    system_out: str | None = None

    def __post_init__(self) -> None:
        if self.failure is not None and self.skipped is not None:
            raise ValueError(f"test case {self.name!r} cannot both fail and be skipped")


@dataclass(frozen=True)
class TestSuite:
    """One ``<testsuite>`` with its cases; the counts are worked out from them."""

    __test__ = False

    name: str
    cases: list[TestCase]
    time_s: float | None = None  # None: no time attribute
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def failures(self) -> int:
        return sum(c.failure is not None for c in self.cases)

    @property
    def skipped(self) -> int:
        return sum(c.skipped is not None for c in self.cases)


def render(suite: TestSuite) -> str:
    """The suite as an indented UTF-8 JUnit XML document, ending in a newline."""
    root = ET.Element("testsuite", name=suite.name)
    if suite.time_s is not None:
        root.set("time", _seconds(suite.time_s))
    if suite.properties:
        props = ET.SubElement(root, "properties")
        for key, value in suite.properties.items():
            ET.SubElement(props, "property", name=key, value=value)
    for case in suite.cases:
        element = ET.SubElement(root, "testcase", classname=case.classname, name=case.name)
        if case.time_s is not None:
            element.set("time", _seconds(case.time_s))
        if case.failure is not None:
            ET.SubElement(element, "failure", message=case.failure, type=case.failure_type).text = case.failure_text
        elif case.skipped is not None:
            ET.SubElement(element, "skipped", message=case.skipped)
        if case.system_out is not None:
            ET.SubElement(element, "system-out").text = case.system_out
    root.set("tests", str(len(suite.cases)))
    root.set("failures", str(suite.failures))
    root.set("errors", "0")
    root.set("skipped", str(suite.skipped))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _seconds(t: float) -> str:
    return f"{max(0.0, t):.3f}"
