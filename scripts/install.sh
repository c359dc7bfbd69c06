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

# openssh-server for its sshd binary only: a lab host runs one of its own, with its own config,
# keys and address, inside its namespaces (lab/sshd.py, docs/labs.md "ssh into a lab host"). The
# package must not bring up a system sshd on the real host: while it installs, policy-rc.d forbids
# starting services (only if there is none already) and sshd_not_to_be_run keeps Debian's units
# from starting sshd; afterwards its units are disabled and masked. A machine that had
# openssh-server before keeps its own sshd as it was.
if ! dpkg-query -W -f='${Status}' openssh-server 2>/dev/null | grep -q "install ok installed"; then
  echo "Installing openssh-server (its sshd stays off on this machine)"
  own_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\n# virtops install.sh: no service starts while openssh-server installs\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  mkdir -p /etc/ssh
  touch /etc/ssh/sshd_not_to_be_run
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends openssh-server </dev/null
  if [ -n "$own_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
  if command -v systemctl >/dev/null; then
    systemctl --root=/ disable ssh.service ssh.socket >/dev/null 2>&1 || true
    systemctl --root=/ mask ssh.service ssh.socket
  fi
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
