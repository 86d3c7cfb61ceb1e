# Sourced by tests/systemd/nspawn.sh and fleet.sh: the tools, and a Debian bookworm root file
# system made with debootstrap from the Debian registry (once, cached at $ROOTFS) with systemd,
# python3 and openssh-server (the fleet's containers are reached over SSH like real hosts).
# A root cached before openssh-server was on the list gets it with apt inside the root.
ROOTFS=${PYRT_NSPAWN_ROOT:-/var/tmp/py-rt-nspawn/bookworm}

if [ "$(id -u)" != 0 ]; then
  echo "$0: systemd-nspawn needs root" >&2
  exit 1
fi
if ! command -v systemd-nspawn >/dev/null || ! command -v debootstrap >/dev/null \
  || ! command -v ssh >/dev/null || ! command -v ssh-keygen >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd-container debootstrap \
    openssh-client
fi
if [ ! -x "$ROOTFS/usr/lib/systemd/systemd" ]; then
  mkdir -p "$(dirname "$ROOTFS")"
  debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,python3,openssh-server \
    bookworm "$ROOTFS" http://deb.debian.org/debian
fi
if [ ! -x "$ROOTFS/usr/sbin/sshd" ]; then
  systemd-nspawn -q -D "$ROOTFS" --register=no --keep-unit /bin/sh -c \
    'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server'
fi
