#!/usr/bin/env bash
# Prepare a Debian 12 machine for svcflow's lab: OVS userspace tools, iproute2, nftables,
# then the npm dependencies. Safe to run repeatedly. Must run as root.
set -euo pipefail

cd "$(dirname "$0")/.."

if [[ $(id -u) -ne 0 ]]; then
  echo "setup.sh: must run as root (installs packages)" >&2
  exit 1
fi

# Debian 12's own nodejs is 18; the test runner flags scripts/test.sh uses need 20.11 or later.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "setup.sh: Node.js >= 20.11 with npm is required and was not found" >&2
  exit 1
fi
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 11) ? 0 : 1)'; then
  echo "setup.sh: Node.js >= 20.11 is required, found $(node --version)" >&2
  exit 1
fi

# sysctl (procps) is used by the host plan; openvswitch-switch pulls it in, but a machine that
# already has OVS from elsewhere may lack it.
packages=(openvswitch-switch iproute2 ethtool nftables curl procps)
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

retry() {
  local n
  for n in 1 2 3; do
    "$@" && return 0
    echo "setup.sh: '$*' failed (attempt $n)" >&2
    sleep $((n * 5))
  done
  return 1
}

if ((${#missing[@]} > 0)); then
  echo "setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # The package's postinst would start the distribution's OVS, which loads the openvswitch kernel
  # module; where that is impossible (containers) the install fails. The lab runs its own
  # userspace daemons, so deny service starts for the install, unless a policy already exists.
  policy=/usr/sbin/policy-rc.d
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  # a fresh machine has no package lists yet
  retry apt-get update
  retry apt-get install -y --no-install-recommends "${missing[@]}"
fi

# The lab runs one private ovsdb-server/ovs-vswitchd per simulated node; the distribution's
# service would only compete for nothing and open the default socket, so keep it stopped. Its
# daemons use the default pidfiles, never the lab's.
if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
  systemctl stop openvswitch-switch.service ovs-vswitchd.service ovsdb-server.service \
    >/dev/null 2>&1 || true
  systemctl disable openvswitch-switch.service >/dev/null 2>&1 || true
elif [[ -x /etc/init.d/openvswitch-switch ]]; then
  /etc/init.d/openvswitch-switch stop >/dev/null 2>&1 || true
fi

# npm ci fails when package-lock.json is out of step with package.json: CI must see that.
if [[ -f package-lock.json ]]; then
  npm ci --no-audit --no-fund
else
  npm install --no-audit --no-fund
fi

# tsx runs every test through esbuild's native binary (an optional, per-platform package): an
# install that skipped it fails here, not in the middle of the tests.
if ! node -e 'require("esbuild").transformSync("let x: number = 1", { loader: "ts" })'; then
  echo "setup.sh: esbuild (used by tsx) does not run; reinstall with: npm ci --include=optional" >&2
  exit 1
fi

echo "setup.sh: ready ($(ovs-vswitchd --version | head -n1), node $(node --version))"
