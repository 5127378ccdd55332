"""Locust entry point for the mesh: `locust -f locustfiles/mesh.py` (web UI at http://127.0.0.1:8089).

Headless CI gate, exit code 0 PASS / 1 FAIL / 3 INCONCLUSIVE:

    locust -f locustfiles/mesh.py --headless -u 50 -r 10 -t 60s --expect 85/15 --stop-on-verdict \\
        --canary-json reports/locust-canary.json --canary-junit reports/locust-canary.xml

Distributed: `locust -f locustfiles/mesh.py --master --expect 85/15` plus
`locust -f locustfiles/mesh.py --worker` (or `--processes N`).
"""

from locust import constant

from loadgen.locust import MeshUser


class Mesh(MeshUser):
    # No think time: each user sends its next request when the previous one answered.
    wait_time = constant(0)
