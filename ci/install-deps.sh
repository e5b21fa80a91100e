#!/usr/bin/env bash
# Install what the test suite needs that cargo does not: Debian packages (a
# real OCI registry and skopeo for the registry tests, Prometheus for the
# health-gate tests, GNU time for the
# memory bounds of tests/it/hostile, yamllint/shellcheck for the lint checks,
# kubectl for the kustomize check, hyperfine for benchmarks) and the pinned
# Python lint tools in a virtualenv (kubernetes-validate is also the schema
# lint of tests/it/job_manifest.rs). Idempotent; needs root (or sudo) for apt-get.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

venv="${RUNBOOK_CI_VENV:-$HOME/.cache/runbook-ci-venv}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends \
  docker-registry prometheus bsdutils skopeo yamllint shellcheck hyperfine time jq python3 python3-venv >/dev/null

# kubectl, for ci/lint-k8s.sh's `kubectl kustomize k8s/base` (Debian's
# kubernetes-client, whose kustomize builds our plain kustomization). Only
# when there is none: another kubectl package (Google's) may own
# /usr/bin/kubectl already, and the two cannot both be installed.
if ! command -v kubectl >/dev/null 2>&1; then
  $sudo apt-get install -y -qq --no-install-recommends kubernetes-client >/dev/null
fi

# The docker-registry package may start a service on its default port; the
# tests start their own registries on 127.0.0.1 and need nothing else.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker-registry 2>/dev/null; then
  $sudo systemctl stop docker-registry || true
fi

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q --disable-pip-version-check \
  -r ci/requirements-lint.txt -r ci/requirements-k8s.txt
echo "install-deps: ok (Python tools in $venv)"
