#!/usr/bin/env bash
# Prepare a Debian 12 machine for svcflow's lab: OVS userspace tools, iproute2, nftables,
# then the npm dependencies. Safe to run repeatedly. Must run as root.
set -euo pipefail

cd "$(dirname "$0")/.."

if [[ $(id -u) -ne 0 ]]; then
  echo "setup.sh: must run as root (installs packages)" >&2
  exit 1
fi

packages=(openvswitch-switch iproute2 ethtool nftables curl)
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} > 0)); then
  echo "setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends "${missing[@]}"
fi

# The lab runs one private ovsdb-server/ovs-vswitchd per simulated node; the distribution's
# service would only compete for nothing and open the default socket, so keep it stopped.
if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
  systemctl stop openvswitch-switch.service ovs-vswitchd.service ovsdb-server.service \
    >/dev/null 2>&1 || true
  systemctl disable openvswitch-switch.service >/dev/null 2>&1 || true
elif [[ -x /etc/init.d/openvswitch-switch ]]; then
  /etc/init.d/openvswitch-switch stop >/dev/null 2>&1 || true
fi

if [[ -f package-lock.json ]]; then
  npm ci
else
  npm install
fi

echo "setup.sh: ready ($(ovs-vswitchd --version | head -n1))"
