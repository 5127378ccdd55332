# The "pause" container Nomad's docker driver creates first in each allocation to own its
# network namespace (plugin "docker" { config { infra_image } }). Built on the local base
# image, because no registry is reachable: it only has to stay alive, doing nothing.
ARG BASE
FROM ${BASE}
ENTRYPOINT ["sleep", "infinity"]
