#!/usr/bin/env bash
# Runs every test (or one group: unit | lab). Lab tests need root and Open vSwitch
# (scripts/setup.sh installs it); they skip loudly otherwise, except under CI where they must run.
set -euo pipefail
cd "$(dirname "$0")/.."
shopt -s globstar nullglob
group="${1:-all}"
unit=(test/pipeline/*.test.ts test/cluster/*.test.ts test/sim/*.test.ts test/host/*.test.ts test/agent/*.test.ts test/openflow/*.test.ts)
lab=(test/ovs/*.test.ts test/lab/*.test.ts)
case "$group" in
  unit) files=("${unit[@]}") ;;
  lab) files=("${lab[@]}") ;;
  all) files=("${unit[@]}" "${lab[@]}") ;;
  *) echo "usage: scripts/test.sh [unit|lab|all]" >&2; exit 2 ;;
esac
# Lab tests share one machine's namespaces and CPU: run files one at a time.
exec node --import tsx --test --test-concurrency=1 "${files[@]}"
