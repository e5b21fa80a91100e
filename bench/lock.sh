#!/usr/bin/env bash
# The target lock's cost: acquire + release of a file lock, N times in one
# process (bench/lock.rhai), and whole runs of a playbook with and without a
# lock (hyperfine), so start-up of a playbook that takes no lock is seen
# unchanged. The kube backend's cost is its round trips: acquire = a read +
# a conditional write, release = one write (tests/it/lock_kube.rs asserts it).
# Needs hyperfine (Debian). RB names the binary (default: a release build).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ -z "${RB:-}" ]; then
  cargo build --release --quiet
  RB=./target/release/runbook
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp bench/lock.rhai bench/validate.rhai "$work/"
printf 'lock("bench");\nunlock("bench");\n' > "$work/once.rhai"
cd "$work"
export RUNBOOK_LOG=warn NO_COLOR=1
"$RB" lock.rhai --n "${N:-2000}"
hyperfine --warmup 5 --runs "${RUNS:-100}" -N \
  -n "no lock (validate.rhai)" "$RB validate.rhai" \
  -n "lock + unlock (once.rhai)" "$RB once.rhai"
