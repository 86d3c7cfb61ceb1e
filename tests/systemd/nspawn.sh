#!/usr/bin/env bash
# Runs tests/systemd under real systemd as PID 1: a Debian bookworm root file system made with
# debootstrap (from the Debian registry, once, cached), booted with systemd-nspawn; the
# project and its Python are bind-mounted at the same paths, and pytest runs inside the
# container (nsenter into its namespaces) where `appliance apply` deploys to "/" with
# service_manager systemd. `make test-systemd`; needs root. Not part of `make test`.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
MACHINE=py-rt-systemd-$$
LOG=${PYRT_NSPAWN_LOG:-$REPO/state/nspawn/boot.log}
PY_PREFIX=$("$REPO/.venv/bin/python" -c 'import sys; print(sys.base_prefix)')

# shellcheck source=tests/systemd/rootfs.sh
. "$REPO/tests/systemd/rootfs.sh"

mkdir -p "$(dirname "$LOG")"
# --register=no --keep-unit: this machine has no systemd (no system bus, no machined) outside.
# --ephemeral: the tests deploy to "/" in a throw-away copy; the cached root stays as
# debootstrap made it (the fleet's containers are copies of it).
systemd-nspawn -D "$ROOTFS" --ephemeral -b --register=no --keep-unit --console=passive \
  -M "$MACHINE" \
  --bind="$REPO" --bind-ro="$PY_PREFIX" >"$LOG" 2>&1 &
NSPAWN=$!
cleanup() {
  if [ -n "${LEADER:-}" ]; then
    nsenter -t "$LEADER" -a systemctl poweroff >/dev/null 2>&1 || true
  fi
  for _ in $(seq 1 100); do
    kill -0 "$NSPAWN" 2>/dev/null || break
    sleep 0.2
  done
  kill "$NSPAWN" 2>/dev/null || true
  wait "$NSPAWN" 2>/dev/null || true
}
trap cleanup EXIT

# The container's PID 1 is the child of systemd-nspawn whose command is systemd.
LEADER=
for _ in $(seq 1 150); do
  for pid in $(pgrep -P "$NSPAWN" || true); do
    if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = systemd ]; then LEADER=$pid; fi
  done
  [ -n "$LEADER" ] && break
  sleep 0.2
done
if [ -z "$LEADER" ]; then
  echo "nspawn.sh: systemd did not start in the container (log $LOG):" >&2
  tail -20 "$LOG" >&2
  exit 1
fi
for _ in $(seq 1 300); do
  nsenter -t "$LEADER" -a test -S /run/systemd/private && break
  sleep 0.2
done
state=$(timeout 120 nsenter -t "$LEADER" -a systemctl is-system-running --wait || true)
echo "nspawn.sh: systemd is PID 1 in $MACHINE (leader pid $LEADER), system $state"

# The working directory is set inside the container's mount namespace (sh -c cd).
nsenter -t "$LEADER" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
  LANG=C.UTF-8 PYRT_SYSTEMD=1 RT_ENGINE_BIN="$REPO/target/debug/rt-engine" \
  /bin/sh -c 'cd "$0" && exec "$@"' "$REPO" \
  "$REPO/.venv/bin/python" -m pytest -q -p no:cacheprovider "$REPO/tests/systemd/test_systemd_host.py" "$@"
