#!/usr/bin/env bash
# Start the Docker engine for the docker runtime when none answers: Debian's docker.io, host
# networking only (no bridge, no iptables rules), as the project's network rules require.
# Root only. Idempotent: does nothing when `docker info` already works.
set -euo pipefail
if docker info >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "dockerd.sh: the Docker engine is not running and starting it needs root" >&2
  exit 5
fi
log=/var/log/loadgen-dockerd.log
echo "dockerd.sh: starting dockerd --bridge=none --iptables=false --ip-masq=false (log: $log)"
# A daemon keeps none of its caller's descriptors: a `flock LOCK scripts/test.sh` around the caller
# would otherwise stay locked for dockerd's whole life (every later flock on it waits forever).
(
  for fd in /proc/$BASHPID/fd/*; do
    fd=${fd##*/}
    if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
  done
  exec nohup dockerd --bridge=none --iptables=false --ip-masq=false >"$log" 2>&1
) &
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    exit 0
  fi
  sleep 0.5
done
echo "dockerd.sh: dockerd did not answer within 30s; last lines of $log:" >&2
tail -n 20 "$log" >&2
exit 5
