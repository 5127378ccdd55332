"""How a response names the backend that answered it (``--subset-from``).

* ``auto``: the reference services' way -- an ``X-App-Id`` header, else a JSON body's ``app_id``;
* ``header:NAME``: a response header (any service; e.g. one the splitter adds with
  ``ResponseHeaders``), case-insensitive;
* ``json:PATH``: a dotted path into a JSON object body (``json:upstream.app_id``,
  ``json:items.0.id``);
* ``envoy``: no per-response identity; the canary counts the client sidecar's per-cluster
  requests instead, and each response is read as ``auto`` (for the record).

A response without the identity gets none (the engine counts it as ``no_app_id``): never a guess.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from loadgen.errors import UsageError

__all__ = ["AUTO", "IdentityRule"]

FORMS = "auto, header:NAME, json:PATH (dotted, like json:upstream.app_id) or envoy"


@dataclass(frozen=True)
class IdentityRule:
    """One way of reading a backend's identity; picklable (worker processes get it in the plan)."""

    kind: str  # auto | header | json | envoy
    name: str = ""  # the header's name, or the JSON path
    text: str = "auto"  # as the user gave it

    @classmethod
    def parse(cls, text: str) -> IdentityRule:
        spec = text.strip()
        kind, _, arg = spec.partition(":")
        kind = kind.lower()
        if spec.lower() in ("auto", "envoy"):
            return cls(spec.lower(), "", spec.lower())
        if kind == "header" and arg.strip() and all(c.isprintable() and not c.isspace() for c in arg.strip()):
            return cls("header", arg.strip(), f"header:{arg.strip()}")
        if kind == "json" and arg.strip() and all(arg.strip().split(".")):
            return cls("json", arg.strip(), f"json:{arg.strip()}")
        raise UsageError(f"--subset-from {text!r} is not understood: give {FORMS}")

    def of(self, headers: Mapping[str, str], body: bytes) -> str | None:
        """The identity in one response, or None when it has none (an empty or blank value, in a
        header or a JSON body alike, names no backend)."""
        value = self._raw(headers, body)
        return value if value is None or value.strip() else None

    def _raw(self, headers: Mapping[str, str], body: bytes) -> str | None:
        if self.kind == "header":
            wanted = self.name.lower()
            value = next((v for k, v in headers.items() if k.lower() == wanted), None)
            return value.strip() or None if value is not None else None
        if self.kind == "json":
            return _at_path(json_object(body), self.name)
        value = headers.get("X-App-Id") or headers.get("x-app-id")
        if value and value.strip():
            return value
        obj = json_object(body)
        return str(obj["app_id"]) if obj is not None and obj.get("app_id") is not None else None


AUTO = IdentityRule("auto")


def json_object(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or None (cheaply, without parsing what cannot be one)."""
    if not body or (body[:1] != b"{" and body.lstrip()[:1] != b"{"):  # the hot path: no copy for "{..."
        return None
    try:
        obj = json.loads(body)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def _at_path(obj: Any, path: str) -> str | None:
    for step in path.split("."):
        if isinstance(obj, dict):
            obj = obj.get(step)
        elif isinstance(obj, list) and step.isdigit() and int(step) < len(obj):
            obj = obj[int(step)]
        else:
            return None
        if obj is None:
            return None
    if isinstance(obj, dict | list):
        return None  # an object is not a name
    return str(obj).lower() if isinstance(obj, bool) else str(obj)
