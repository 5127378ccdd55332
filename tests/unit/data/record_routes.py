"""Record the route dumps, counters and discovery chains that test_envoy_routes.py parses.

Run on a live local mesh at the splitter stage (it changes config entries, then restores
the splitter stage's own; `loadgen down` afterwards anyway):

    flock /tmp/loadgen-mesh.lock sh -c \
      '.venv/bin/loadgen up --stage splitter && .venv/bin/python tests/unit/data/record_routes.py; \
       .venv/bin/loadgen down'

For each configuration of README-chains.md it writes ``dump_<name>.json`` (service-a's
sidecar /config_dump, TLS material, secrets and the bootstrap stripped) and
``chain_<name>.json`` (Consul's /v1/discovery-chain/service-a). For the splitter it also
writes service-a's sidecar /stats (JSON and text, cluster upstream_rq_* only) before and
after 200 requests through service-a.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).parent
CONSUL = "http://127.0.0.1:8500"
ADMIN = "http://127.0.0.1:19000"
STATS_FILTER = r"^cluster\..*\.upstream_rq_"

SUBSETS = {"v1": {"Filter": "Service.Meta.version == v1"}, "v2": {"Filter": "Service.Meta.version == v2"}}
RESOLVER = {"Kind": "service-resolver", "Name": "service-b", "DefaultSubset": "v1", "Subsets": SUBSETS}
SPLITTER_85_15 = {"Kind": "service-splitter", "Name": "service-b",
                  "Splits": [{"Weight": 85, "ServiceSubset": "v1"}, {"Weight": 15, "ServiceSubset": "v2"}]}
ROUTER_PLAIN = {"Kind": "service-router", "Name": "service-a",
                "Routes": [{"Match": {"HTTP": {"PathPrefix": "/hello_b"}},
                            "Destination": {"Service": "service-b"}}]}
ROUTER_HEADER = {
    "Kind": "service-router", "Name": "service-a",
    "Routes": [
        {"Match": {"HTTP": {"PathPrefix": "/hello_b", "Header": [{"Name": "x-canary", "Exact": "1"}]}},
         "Destination": {"Service": "service-b", "ServiceSubset": "v2"}},
        {"Match": {"HTTP": {"PathExact": "/hello_b/beta", "Methods": ["POST"],
                            "QueryParam": [{"Name": "beta", "Present": True}]}},
         "Destination": {"Service": "service-b", "ServiceSubset": "v1"}},
        {"Match": {"HTTP": {"PathRegex": "/hello_[bc]/.*",
                            "Header": [{"Name": "x-debug", "Present": True, "Invert": True}]}},
         "Destination": {"Service": "service-b", "ServiceSubset": "v1"}},
        {"Match": {"HTTP": {"PathPrefix": "/hello_b"}}, "Destination": {"Service": "service-b"}},
    ],
}
CANARY_DEFAULTS = {"Kind": "service-defaults", "Name": "service-b-canary", "Protocol": "http"}
CANARY_SPLITTER = {"Kind": "service-splitter", "Name": "service-b-canary",
                   "Splits": [{"Weight": 50, "Service": "service-b", "ServiceSubset": "v1"},
                              {"Weight": 50, "Service": "service-b", "ServiceSubset": "v2"}]}
SPLITTER_NESTED = {"Kind": "service-splitter", "Name": "service-b",
                   "Splits": [{"Weight": 50, "ServiceSubset": "v1"}, {"Weight": 50, "Service": "service-b-canary"}]}
SPLITTER_DECIMAL = {"Kind": "service-splitter", "Name": "service-b",
                    "Splits": [{"Weight": 66.67, "ServiceSubset": "v1"}, {"Weight": 33.33, "ServiceSubset": "v2"}]}
RESOLVER_V2 = {**RESOLVER, "DefaultSubset": "v2"}


def put(entry: dict[str, Any]) -> None:
    httpx.put(f"{CONSUL}/v1/config", json=entry, timeout=5).raise_for_status()


def delete(kind: str, name: str) -> None:
    httpx.delete(f"{CONSUL}/v1/config/{kind}/{name}", timeout=5).raise_for_status()


def strip(node: Any) -> Any:
    # TLS material never goes into the repository; last_updated is kept (it is what the
    # route parser reports next to version_info).
    if isinstance(node, dict):
        return {k: strip(v) for k, v in node.items()
                if k not in ("transport_socket", "transport_socket_matches", "tls_certificates",
                             "trusted_ca", "validation_context")}
    if isinstance(node, list):
        return [strip(v) for v in node]
    return node


def dump() -> dict[str, Any]:
    d = httpx.get(f"{ADMIN}/config_dump", timeout=5).json()
    d["configs"] = [c for c in d["configs"]
                    if not c["@type"].endswith(("BootstrapConfigDump", "SecretsConfigDump"))]
    return strip(d)


def routes_of(d: dict[str, Any]) -> str:
    sec = next(c for c in d["configs"] if c["@type"].endswith(".RoutesConfigDump"))
    clusters = next(c for c in d["configs"] if c["@type"].endswith(".ClustersConfigDump"))
    names = sorted(c["cluster"]["name"] for c in clusters.get("dynamic_active_clusters", []))
    return json.dumps([[r.get("route_config") for r in sec.get("dynamic_route_configs", [])], names],
                      sort_keys=True)


def settle(previous: str, timeout: float = 30.0) -> dict[str, Any]:
    """The dump once its routes and clusters changed from ``previous`` and held still 2 s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        d = dump()
        if routes_of(d) != previous:
            time.sleep(2)
            again = dump()
            if routes_of(again) == routes_of(d):
                return again
        time.sleep(0.5)
    raise SystemExit("service-a's sidecar did not pick up the change within 30 s")


def write(name: str, body: Any) -> None:
    out = HERE / name
    text = body if isinstance(body, str) else json.dumps(body, indent=1, sort_keys=True) + "\n"
    out.write_text(text)
    print(out.name, out.stat().st_size)


def record(name: str, d: dict[str, Any]) -> None:
    write(f"dump_{name}.json", d)
    write(f"chain_{name}.json", httpx.get(f"{CONSUL}/v1/discovery-chain/service-a", timeout=5).json())


def stats(suffix: str) -> None:
    body = httpx.get(f"{ADMIN}/stats", params={"format": "json", "filter": STATS_FILTER}, timeout=5).json()
    write(f"stats_splitter_{suffix}.json", body)
    text = httpx.get(f"{ADMIN}/stats", params={"filter": STATS_FILTER}, timeout=5).text
    write(f"stats_splitter_{suffix}.txt", text)


def main() -> None:
    d = dump()
    record("splitter", d)
    stats("before")
    for _ in range(200):
        httpx.get("http://127.0.0.1:3000/hello_a", timeout=5)
    stats("after")

    put(ROUTER_HEADER)
    d = settle(routes_of(d))
    record("header_route", d)

    put(ROUTER_PLAIN)
    d = settle(routes_of(d))
    put(CANARY_DEFAULTS)
    put(CANARY_SPLITTER)
    put(SPLITTER_NESTED)
    d = settle(routes_of(d))
    record("nested", d)

    put(SPLITTER_DECIMAL)
    delete("service-splitter", "service-b-canary")
    delete("service-defaults", "service-b-canary")
    d = settle(routes_of(d))
    record("decimal", d)

    delete("service-splitter", "service-b")
    put(RESOLVER_V2)
    d = settle(routes_of(d))
    record("default_subset_v2", d)

    # Back to the splitter stage's own entries.
    put(RESOLVER)
    put(SPLITTER_85_15)
    settle(routes_of(d))


if __name__ == "__main__":
    main()
