#!/usr/bin/env bash
# Runs every test (or one group: unit | lab). Lab tests need root and Open vSwitch
# (scripts/setup.sh installs it); they skip loudly otherwise, except under CI (CI=true) where
# they fail. Exits non-zero when any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
shopt -s globstar nullglob
group="${1:-all}"
# The lab group: test/lab, test/ovs, and any other file that needs the lab (root, namespaces,
# real OVS), which is every file asking labSkipReason. The rest needs nothing and is the unit group.
unit=()
lab=()
for f in test/**/*.test.ts; do
  case "$f" in
    test/lab/* | test/ovs/*) lab+=("$f") ;;
    *) if grep -q labSkipReason "$f"; then lab+=("$f"); else unit+=("$f"); fi ;;
  esac
done
case "$group" in
  unit) files=("${unit[@]}") ;;
  lab) files=("${lab[@]}") ;;
  all) files=("${unit[@]}" "${lab[@]}") ;;
  *) echo "usage: scripts/test.sh [unit|lab|all]" >&2; exit 2 ;;
esac
# With no files node --test would go looking for tests on its own: never let that pass silently.
if ((${#files[@]} == 0)); then
  echo "scripts/test.sh: no test files for group $group" >&2
  exit 1
fi
echo "scripts/test.sh: $group: ${#files[@]} files (lab: ${lab[*]})" >&2
# Lab tests share one machine's namespaces and CPU: run files one at a time. The spec reporter
# ends with the summary (tests, pass, fail, duration) and repeats every failure there; the
# default timeout bounds a test that hangs without a timeout of its own.
exec node --import tsx --test --test-concurrency=1 --test-reporter=spec --test-timeout=600000 \
  "${files[@]}"
