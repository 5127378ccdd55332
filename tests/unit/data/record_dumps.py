"""Record the Envoy config dumps the unit tests parse, from a live local mesh.

Run: loadgen up --stage splitter && python tests/unit/data/record_dumps.py splitter
(and likewise intentions, l7-router). TLS material and the bootstrap are stripped.
"""

import json
import sys
from pathlib import Path

import httpx

PORTS = {"service-a": 19000, "service-b-1": 19001}


def strip(node):
    if isinstance(node, dict):
        return {k: strip(v) for k, v in node.items()
                if k not in ("transport_socket", "tls_certificates", "trusted_ca", "last_updated")}
    if isinstance(node, list):
        return [strip(v) for v in node]
    return node


def main(stage: str) -> None:
    for name, port in PORTS.items():
        dump = httpx.get(f"http://127.0.0.1:{port}/config_dump", timeout=5).json()
        dump["configs"] = [c for c in dump["configs"]
                           if not c["@type"].endswith(("BootstrapConfigDump", "SecretsConfigDump"))]
        out = Path(__file__).parent / f"{stage}-{name}.json"
        out.write_text(json.dumps(strip(dump), indent=1, sort_keys=True) + "\n")
        print(out, out.stat().st_size)


if __name__ == "__main__":
    main(sys.argv[1])
