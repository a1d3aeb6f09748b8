#!/usr/bin/env bash
# Starts a private dockerd for shipit's tests, unless one already answers on its socket. It uses
# vfs storage and no networking setup (no iptables, no bridge), so it runs inside a VM or container
# without touching the host's firewall. Then reports whether `docker buildx` exists and whether a
# BuildKit build of a FROM-scratch image works. Last line: DOCKER_HOST=unix:///run/shipit-docker.sock
# Usage: scripts/start-dockerd.sh            (stop it: kill "$(cat /run/shipit-docker.pid)")
set -euo pipefail

SOCK=/run/shipit-docker.sock
HOST=unix://$SOCK
PIDFILE=/run/shipit-docker.pid
LOG=/var/log/shipit-dockerd.log
WAIT_SECONDS=30

die() { printf 'start-dockerd.sh: %s\n' "$*" >&2; exit 1; }
docker_() { docker -H "$HOST" "$@"; }

command -v dockerd >/dev/null || die "dockerd is not installed; run scripts/setup.sh (Debian package docker.io)"
command -v docker >/dev/null || die "docker CLI is not installed; run scripts/setup.sh (Debian package docker.io)"

if docker_ info >/dev/null 2>&1; then
  echo "dockerd: already answering on $HOST, skipped"
else
  [[ $(id -u) -eq 0 ]] || die "dockerd needs root"
  # A stale pidfile from a killed daemon makes dockerd refuse to start.
  if [[ -f $PIDFILE ]] && ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    rm -f "$PIDFILE"
  fi
  mkdir -p /var/lib/shipit-docker /run/shipit-docker-exec
  started=$(date +%s%N)
  setsid dockerd --iptables=false --bridge=none --storage-driver=vfs \
    --data-root /var/lib/shipit-docker --exec-root /run/shipit-docker-exec \
    -H "$HOST" --pidfile "$PIDFILE" >>"$LOG" 2>&1 </dev/null &
  pid=$!
  deadline=$((SECONDS + WAIT_SECONDS))
  until docker_ info >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$LOG" >&2
      die "dockerd exited during startup; full log: $LOG"
    fi
    ((SECONDS < deadline)) || die "dockerd (pid $pid) did not answer on $HOST within ${WAIT_SECONDS}s; log: $LOG"
    sleep 0.2
  done
  echo "dockerd: started (pid $pid) in $((($(date +%s%N) - started) / 1000000)) ms, log $LOG"
fi
echo "dockerd: server $(docker_ version --format '{{.Server.Version}}' 2>/dev/null || echo '?'), client $(docker_ version --format '{{.Client.Version}}' 2>/dev/null || echo '?')"

if docker_ buildx version >/dev/null 2>&1; then
  echo "buildx: $(docker_ buildx version)"
else
  echo "buildx: absent"
fi

# Smoke test: a FROM-scratch image with one file, built with BuildKit, then removed again. A
# docker CLI >= 23 without the buildx plugin refuses DOCKER_BUILDKIT=1 (this machine has such a
# CLI in /usr/local/bin in front of Debian's 20.10 CLI, whose BuildKit is built in), so every CLI
# on the machine is tried and the working one named.
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
echo "shipit dockerd smoke test" >"$ctx/hello.txt"
printf 'FROM scratch\nCOPY hello.txt /hello.txt\n' >"$ctx/Dockerfile"
buildkit_cli=
for cli in $(type -ap docker | awk '!seen[$0]++') /usr/bin/docker; do
  [[ -x $cli ]] || continue
  [[ -z $buildkit_cli ]] || break
  if out=$(DOCKER_BUILDKIT=1 "$cli" -H "$HOST" build -q --platform linux/arm64 -t shipit-smoke:latest "$ctx" 2>&1); then
    buildkit_cli=$cli
    echo "buildkit: DOCKER_BUILDKIT=1 $cli build --platform linux/arm64 works (FROM scratch, image ${out##*:})"
    "$cli" -H "$HOST" rmi -f shipit-smoke:latest >/dev/null 2>&1 || true
  else
    echo "buildkit: DOCKER_BUILDKIT=1 $cli build fails: $(head -n 1 <<<"$out")"
  fi
done
if [[ -z $buildkit_cli ]]; then
  if DOCKER_BUILDKIT=0 docker_ build -q -t shipit-smoke:latest "$ctx" >/dev/null 2>&1; then
    echo "buildkit: unavailable; the legacy builder (DOCKER_BUILDKIT=0 docker build) works"
    docker_ rmi -f shipit-smoke:latest >/dev/null 2>&1 || true
  else
    echo "buildkit: unavailable, and the legacy builder fails too"
  fi
else
  echo "DOCKER=$buildkit_cli"
fi
echo "DOCKER_HOST=$HOST"
