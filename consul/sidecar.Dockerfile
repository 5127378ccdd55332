# The seed's consul-envoy sidecar image: the pinned consul and envoy binaries on the base image.
# Run with the arguments of `consul connect envoy` (e.g. -sidecar-for service-a -admin-bind ...).
ARG BASE
FROM ${BASE}
COPY consul /usr/local/bin/consul
COPY envoy /usr/local/bin/envoy
ENTRYPOINT ["/usr/local/bin/consul", "connect", "envoy", "-envoy-binary", "/usr/local/bin/envoy"]
