# loadgen itself, for controllers that run a container (Argo Rollouts' Job provider, Flagger's
# load tester, CI jobs): `docker run --network host IMAGE canary --expect 85/15 --target ...`.
# BASE is loadgen/loadgen-packages:<hash> (docker/loadgen-packages.Dockerfile: a trimmed Debian
# python3 and loadgen's Python packages), so a change to loadgen's code rebuilds these small layers only.
# SSL_CERT_FILE: the base has no CA certificates; certifi's bundle (httpx's) verifies https:// targets.
ARG BASE
FROM ${BASE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PYTHONPATH=/opt/loadgen/site:/opt/loadgen \
    HOME=/tmp LOADGEN_PROJECT=/opt/loadgen SSL_CERT_FILE=/opt/loadgen/site/certifi/cacert.pem
COPY loadgen /opt/loadgen/loadgen
COPY consul /opt/loadgen/consul
# Byte code for loadgen's own modules (nobody cannot write __pycache__ at run time).
RUN ["python3", "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash", "/opt/loadgen/loadgen"]
WORKDIR /tmp
USER nobody
ENTRYPOINT ["python3", "-m", "loadgen.cli"]
