#!/usr/bin/env bash
# Runs tests/systemd/test_systemd_fleet.py: three containers booted with systemd as PID 1
# from the cached Debian root (rootfs.sh), sshd in each on its own loopback port, and the
# controller (appliance, Ansible) here outside them. `make test-systemd-fleet`; needs root.
# Not part of `make test`.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=tests/systemd/rootfs.sh
. "$REPO/tests/systemd/rootfs.sh"

cd "$REPO"
PYRT_SYSTEMD_FLEET=1 PYRT_NSPAWN_ROOT="$ROOTFS" \
  RT_ENGINE_BIN="${RT_ENGINE_BIN:-$REPO/target/debug/rt-engine}" \
  .venv/bin/python -m pytest -q -p no:cacheprovider tests/systemd/test_systemd_fleet.py "$@"
