# loadgen itself, for controllers that run a container (Argo Rollouts' Job provider, Flagger's
# load tester, CI jobs): `docker run --network host IMAGE canary --expect 85/15 --target ...`.
# BASE is loadgen/base:<hash> (debootstrap + docker import, see loadgen/mesh/images.py). The Python
# packages are the ones loadgen runs with on the building machine, copied into the context by
# images.py (site/): the build itself reaches no registry.
ARG BASE
FROM ${BASE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PYTHONPATH=/opt/loadgen/site:/opt/loadgen \
    HOME=/tmp LOADGEN_PROJECT=/opt/loadgen
COPY site /opt/loadgen/site
COPY loadgen /opt/loadgen/loadgen
COPY consul /opt/loadgen/consul
WORKDIR /tmp
USER nobody
ENTRYPOINT ["python3", "-m", "loadgen.cli"]
