#!/usr/bin/env bash
# Lint the split-deploy infrastructure: YAML, GitHub workflows, Terraform and
# the Akash SDL files. Runs every check, then fails if any failed.
#
# Needs (see ci/requirements-lint.txt):
#   apt-get install -y yamllint shellcheck
#   pip install -r ci/requirements-lint.txt
# Optional: terraform (>= 1.8) on PATH adds fmt/validate/`terraform test` of
# both stacks; without it that check says SKIPPED (never ok), or fails when
# REQUIRE_TERRAFORM=1. Terraform is not in Debian and ci/install-deps.sh does
# not install it, so CI=true alone does not make its absence fail; every tool
# install-deps does install is required above (a missing one exits 1).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

passed=0
failed=0
skipped=0
failures=()

# Fold each check's output in GitHub's log; plain lines elsewhere.
group() {
  if [[ "${GITHUB_ACTIONS:-}" == true ]]; then echo "::group::$*"; else echo "== $*"; fi
}
endgroup() {
  if [[ "${GITHUB_ACTIONS:-}" == true ]]; then echo "::endgroup::"; fi
}

run_check() {
  local name=$1
  shift
  group "lint-infra: ${name}"
  if "$@"; then
    echo "lint-infra: ok: ${name}"
    passed=$((passed + 1))
  else
    echo "lint-infra: FAILED: ${name}" >&2
    failed=$((failed + 1))
    failures+=("${name}")
  fi
  endgroup
}

need() {
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "lint-infra: FAIL: '$1' is not on PATH (install: $2)" >&2
    exit 1
  fi
}

need yamllint "apt-get install -y yamllint"
need shellcheck "apt-get install -y shellcheck"
need actionlint "pip install -r ci/requirements-lint.txt"
need python3 "python3"

yamllint_all() {
  yamllint -s .
}

actionlint_workflows() {
  # Every workflow, named explicitly (works in a tree without .git too):
  # runbook's own, and the consuming repository's worked example.
  # With shellcheck given explicitly, every `run:` script is checked too.
  local workflows=()
  shopt -s nullglob
  workflows=(.github/workflows/*.yml .github/workflows/*.yaml examples/*/workflows/*.yml examples/*/workflows/*.yaml)
  shopt -u nullglob
  if ((${#workflows[@]} == 0)); then
    echo "lint-infra: no workflow files under .github/workflows" >&2
    return 1
  fi
  actionlint -no-color -shellcheck "$(command -v shellcheck)" "${workflows[@]}"
}

shellcheck_ci() {
  shellcheck ci/lint-infra.sh
}

terraform_stacks() {
  local stack tmp rc=0
  for stack in infra/akash-banano infra/akash-api; do
    # Work on a copy: init and test write .terraform/ and state files that
    # have no place in the tree.
    tmp=$(mktemp -d)
    cp -R "${stack}/." "${tmp}/"
    if ! (
      cd "${tmp}"
      export TF_IN_AUTOMATION=1 TF_INPUT=0 CHECKPOINT_DISABLE=1
      # A CLI config path that points nowhere only adds a warning per call.
      if [[ -n "${TF_CLI_CONFIG_FILE:-}" && ! -e "${TF_CLI_CONFIG_FILE}" ]]; then
        unset TF_CLI_CONFIG_FILE
      fi
      # `set -e` does not apply inside an `if` condition: chain explicitly.
      terraform fmt -check -diff -recursive . &&
        terraform init -backend=false -no-color >/dev/null &&
        terraform validate -no-color &&
        terraform test -no-color
    ); then
      echo "lint-infra: terraform checks failed for ${stack}" >&2
      rc=1
    fi
    rm -rf "${tmp}"
  done
  return "${rc}"
}

run_check "yamllint -s ." yamllint_all
run_check "actionlint + shellcheck (.github/workflows, examples/*/workflows)" actionlint_workflows
run_check "shellcheck (ci/lint-infra.sh)" shellcheck_ci
run_check "Terraform structure (ci/check_hcl.py)" python3 ci/check_hcl.py
run_check "Akash SDL contract (ci/check_sdl.py)" python3 ci/check_sdl.py

terraform_check="terraform fmt/validate/test (infra/*)"
if command -v terraform >/dev/null 2>&1; then
  run_check "${terraform_check}" terraform_stacks
elif [[ "${REQUIRE_TERRAFORM:-0}" == 1 ]]; then
  echo "lint-infra: FAIL: REQUIRE_TERRAFORM=1 but terraform is not on PATH" >&2
  failed=$((failed + 1))
  failures+=("terraform (missing)")
else
  echo "lint-infra: SKIPPED ${terraform_check}: terraform is not on PATH (install: https://developer.hashicorp.com/terraform/install, >= 1.8; REQUIRE_TERRAFORM=1 makes its absence fail)"
  skipped=$((skipped + 1))
fi

if ((failed > 0)); then
  printf 'lint-infra: failed check: %s\n' "${failures[@]}" >&2
fi
echo "lint-infra: ${passed} passed, ${skipped} skipped, ${failed} failed"
((failed == 0))
