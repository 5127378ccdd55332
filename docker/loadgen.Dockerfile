# loadgen itself, for controllers that run a container (Argo Rollouts' Job provider, Flagger's
# load tester, CI jobs): `docker run --network host IMAGE canary --expect 85/15 --target ...`.
# BASE is loadgen/loadgen-packages:<hash> (docker/loadgen-packages.Dockerfile: the base image and
# loadgen's Python packages), so a change to loadgen's code rebuilds this small layer only.
ARG BASE
FROM ${BASE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PYTHONPATH=/opt/loadgen/site:/opt/loadgen \
    HOME=/tmp LOADGEN_PROJECT=/opt/loadgen
COPY loadgen /opt/loadgen/loadgen
COPY consul /opt/loadgen/consul
WORKDIR /tmp
USER nobody
ENTRYPOINT ["python3", "-m", "loadgen.cli"]
