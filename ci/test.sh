#!/usr/bin/env bash
# The whole test suite: lint of the infra, workflow and Kubernetes files,
# `runbook check` and `runbook test` of the playbooks, then every Rust unit and integration test
# (the binary against real local servers and stand-in processes).
# Installs the external test programs first when they are missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

venv="${RUNBOOK_CI_VENV:-$HOME/.cache/runbook-ci-venv}"

# Whether anything ci/install-deps.sh installs for the lints and tests is
# missing. A test whose program is absent fails (it does not skip), so look
# for each one: the registry, Prometheus (tests/it/gates), jq (bench),
# `script` (tests/it/progress), GNU time (tests/it/hostile), kubectl (the
# kustomize lint), the Debian linters, and the venv's tools and packages
# (kubernetes_validate is also tests/it/job_manifest.rs's schema lint).
deps_missing() {
  local tool
  for tool in docker-registry prometheus jq script /usr/bin/time kubectl yamllint shellcheck python3; do
    command -v "$tool" >/dev/null 2>&1 || return 0
  done
  [ -x "$venv/bin/actionlint" ] && [ -x "$venv/bin/hadolint" ] || return 0
  "$venv/bin/python" -c 'import kubernetes_validate, helm_python, hcl2, yaml' 2>/dev/null || return 0
  return 1
}
if deps_missing; then
  bash ci/install-deps.sh
fi
export PATH="$venv/bin:$PATH"

bash ci/lint-infra.sh
bash ci/lint-k8s.sh
# Proves each lint-k8s check can fail (breaks a copy of the tree ~20 ways);
# each lint run inside is bounded too. About 30 s on 2 cores.
timeout 600 python3 ci/lint_k8s_selftest.py

# Not --quiet: a first build is minutes on 2 cores, and cargo's progress
# (and this line's timing) says it is working.
echo "== building runbook (debug; the first build takes minutes on 2 cores)"
build_start=$SECONDS
cargo build
echo "== built in $((SECONDS - build_start)) s"
# Where cargo put it (CARGO_TARGET_DIR, when a runner shares one).
runbook="${CARGO_TARGET_DIR:-target}/debug/runbook"
"$runbook" check playbooks stdlib
# The playbooks' own test suites (stubbed primitives, offline, well under 1 s).
"$runbook" test playbooks

# Last, so its summary is the run's closing line.
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --no-fail-fast
else
  cargo test --no-fail-fast
fi
