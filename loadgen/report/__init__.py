"""Reporters: turn results into files and screens (JSON, JUnit XML, terminal tables)."""
