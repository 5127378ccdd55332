"""report/junit.py: the one JUnit XML writer (canary, shift, intentions)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from loadgen.report.junit import TestCase, TestSuite, render


def test_a_suite_counts_its_failures_and_skips_and_keeps_each_case_as_given():
    suite = TestSuite("loadgen x", [
        TestCase("passed", "loadgen x", time_s=1.23456, system_out="seen <ok> & fine"),
        TestCase("failed", "loadgen x", failure="it broke", failure_type="Broke", failure_text="details"),
        TestCase("skipped", "loadgen x", skipped="not decided"),
    ], time_s=2.0, properties={"expected": "85/15"})
    text = render(suite)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n') and text.endswith("</testsuite>\n")
    root = ET.fromstring(text)
    assert {k: root.get(k) for k in ("name", "time", "tests", "failures", "errors", "skipped")} == {
        "name": "loadgen x", "time": "2.000", "tests": "3", "failures": "1", "errors": "0", "skipped": "1"}
    assert [(p.get("name"), p.get("value")) for p in root.iter("property")] == [("expected", "85/15")]
    passed, failed, skipped = root.findall("testcase")
    assert passed.get("time") == "1.235" and passed.find("system-out").text == "seen <ok> & fine"
    assert passed.find("failure") is None and passed.find("skipped") is None
    failure = failed.find("failure")
    assert (failure.get("message"), failure.get("type"), failure.text) == ("it broke", "Broke", "details")
    assert failed.get("time") is None and failed.find("system-out") is None
    assert skipped.find("skipped").get("message") == "not decided" and skipped.find("failure") is None


def test_no_time_and_no_properties_leave_their_attributes_out():
    root = ET.fromstring(render(TestSuite("s", [TestCase("c", "s", time_s=-0.5)])))
    assert root.get("time") is None and root.find("properties") is None
    assert root.find("testcase").get("time") == "0.000"  # a clock step back is no negative duration


def test_a_case_cannot_both_fail_and_be_skipped():
    with pytest.raises(ValueError, match="both"):
        TestCase("c", "s", failure="x", skipped="y")
