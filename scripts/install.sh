#!/usr/bin/env bash
# Installs what virtops needs on Debian 12, as root. Safe to re-run; quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(
  libvirt-daemon-system qemu-system-x86 qemu-utils dnsmasq-base libvirt-dev pkg-config
  linux-image-amd64 busybox-static
  iproute2 iptables nftables iputils-ping util-linux python3-venv python3-dev gcc
  nfs-ganesha nfs-ganesha-vfs rpcbind nfs-common
  libnfs13 libfuse3-3
  chromium fonts-dejavu-core
)

if [ "$(id -u)" -ne 0 ]; then
  echo "error: run this as root: lab hosts need network and mount namespaces." >&2
  exit 1
fi

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "Installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
fi

# A daemon that a package installation started on the real host is none of virtops' business:
# virtops runs its tests and demo on lab hosts with their own libvirtd.

# install_held_down "UNITS" PACKAGE...: install packages whose services must not run on the real
# host. While they install, policy-rc.d forbids starting services (only if there is none already);
# afterwards their systemd units are disabled and masked.
install_held_down() {
  local units=$1
  shift
  local own_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\n# virtops install.sh: no service starts while %s install\nexit 101\n' "$*" >/usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "$@" </dev/null
  if [ -n "$own_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
  if command -v systemctl >/dev/null; then
    # shellcheck disable=SC2086  # a list of unit names
    systemctl --root=/ disable $units >/dev/null 2>&1 || true
    # shellcheck disable=SC2086
    systemctl --root=/ mask $units
  fi
}

installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

# openssh-server for its sshd binary only: a lab host runs one of its own, with its own config,
# keys and address, inside its namespaces (lab/sshd.py, docs/labs.md "ssh into a lab host"). The
# package must not bring up a system sshd on the real host: besides install_held_down,
# sshd_not_to_be_run keeps Debian's units from starting sshd. A machine that had openssh-server
# before keeps its own sshd as it was.
if ! installed openssh-server; then
  echo "Installing openssh-server (its sshd stays off on this machine)"
  mkdir -p /etc/ssh
  touch /etc/ssh/sshd_not_to_be_run
  install_held_down "ssh.service ssh.socket" openssh-server
fi

# lvm2 and parted for their commands only: libvirt's logical pools run pvcreate, vgcreate, lvcreate
# and vgremove, its disk pools parted. Lab hosts run them with an LVM configuration of their own
# that sees only the lab's loop devices (tests/lab/test_lvm_pools.py); the machine's LVM needs no
# monitoring, polling or event daemon from virtops, so lvm2's units stay masked. A machine that
# had lvm2 before keeps its own units as they were.
if ! installed lvm2; then
  echo "Installing lvm2 (its monitoring and event daemons stay off on this machine)"
  install_held_down "lvm2-monitor.service lvm2-lvmpolld.service lvm2-lvmpolld.socket dm-event.service \
dm-event.socket blk-availability.service" lvm2
fi
if ! installed parted; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends parted </dev/null
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.virtops-installed
want=$(cat pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[test]'
  echo "$want" > "$stamp"
fi

# The web console's browser-side packages (xterm.js), from the npm registry, as the lock file pins them.
if ! command -v npm >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends npm </dev/null
fi
web=src/virtops/web
want=$(sha256sum "$web/package-lock.json" | cut -d' ' -f1)
if [ ! -f "$web/node_modules/.virtops-installed" ] || [ "$(cat "$web/node_modules/.virtops-installed")" != "$want" ]; then
  (cd "$web" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" > "$web/node_modules/.virtops-installed"
fi

# The tiny test guest (Debian's kernel + busybox), cached by the hash of its inputs.
.venv/bin/virtops lab guest-image >/dev/null
