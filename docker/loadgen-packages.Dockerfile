# The Python packages loadgen runs with, for the loadgen image (docker/loadgen.Dockerfile is FROM
# this one). BASE is loadgen/base:<hash> (debootstrap + docker import, see loadgen/mesh/images.py);
# site/ holds the packages of the building machine's environment, copied into the context by
# images.py: the build itself reaches no registry. Tagged by the packages' names and versions.
ARG BASE
FROM ${BASE}
COPY site /opt/loadgen/site
