#!/usr/bin/env bash
# The steps of playbooks/minikube.rhai as a careful bash script, for
# bench/minikube.sh: the same programs (helm, kubectl, minikube, curl), the
# same checks, jq for JSON. What a team writes without runbook. Bounded
# waits come from the tools' own --timeout flags and curl's retries.
set -euo pipefail

ctx="${CONTEXT:-minikube}" ns="${NAMESPACE:-habit-tracker}" release="${RELEASE:-habit-tracker}"
chart="${CHART:-k8s/charts/habit-tracker}" values="${VALUES:-$chart/values-local.yaml}"
die() { echo "error: $*" >&2; exit 1; }

# Preflight: minikube status's exit code is a bit field.
set +e; minikube status -o json -p "$ctx" >/dev/null; code=$?; set -e
if [ "$code" -ne 0 ]; then
  why=""
  [ $((code & 1)) -ne 0 ] && why="$why host not running;"
  [ $((code & 2)) -ne 0 ] && why="$why kubelet not running;"
  [ $((code & 4)) -ne 0 ] && why="$why apiserver not running;"
  die "minikube is not ready (exit $code):$why run 'minikube start -p $ctx'"
fi
hv=$(helm version --short)
IFS=. read -r hmaj hmin _ <<<"${hv#v}"
{ [ "$hmaj" -gt 3 ] || { [ "$hmaj" -eq 3 ] && [ "$hmin" -ge 12 ]; }; } || die "helm $hv is too old"
kv=$(kubectl version --client -o json | jq -r .clientVersion.minor)
[ "${kv%%[!0-9]*}" -ge 28 ] || die "kubectl 1.$kv is too old"
sv=$(kubectl --context "$ctx" version -o json | jq -r .serverVersion.minor)
[ "${sv%%[!0-9]*}" -ge 28 ] || die "Kubernetes 1.$sv is too old"

# Capacity: allocatable minus requests of running pods vs the chart's requests.
to_m() { case "$1" in *m) echo "${1%m}";; "") echo 0;; *) echo $(( ${1%.*} * 1000 ));; esac; }
want=0
for cpu in $(grep -A2 'requests:' "$chart/values.yaml" | awk '/cpu:/ {print $2}'); do
  want=$(( want + $(to_m "$cpu") ))
done
alloc=$(kubectl --context "$ctx" get nodes -o json | jq -r '[.items[].status.allocatable.cpu] | .[0]')
used=$(kubectl --context "$ctx" get pods -A -o json | jq -r '[.items[].spec.containers[].resources.requests.cpu // "0"] | join(" ")')
free=$(to_m "$alloc"); for u in $used; do free=$(( free - $(to_m "$u") )); done
[ "$want" -le "$free" ] || die "no room: the chart requests ${want}m CPU, ${free}m free"

# Secrets in a 0600 values file, removed on exit (success, failure, signals).
umask 077
secrets=$(mktemp "${TMPDIR:-/tmp}/secrets-XXXXXX.yaml")
trap 'rm -f "$secrets"' EXIT INT TERM
jq -n --arg d "$DATABASE_URL" --arg j "$JWT_SECRET" --arg g "$GEMINI_API_KEY" \
  '{secrets: {DATABASE_URL: $d, JWT_SECRET: $j, GEMINI_API_KEY: $g}}' >"$secrets"

# Refuse a release stuck in pending-*.
if st=$(helm status "$release" -n "$ns" -o json 2>/dev/null); then
  case "$(jq -r .info.status <<<"$st")" in pending-*) die "release $release is pending: helm rollback or uninstall it first";; esac
fi
if [ "$hmaj" -ge 4 ]; then flags=(--wait=watcher --rollback-on-failure); else flags=(--wait --atomic); fi
helm upgrade --install "$release" "$chart" --namespace "$ns" --create-namespace --kube-context "$ctx" \
  --values "$values" --values "$secrets" "${flags[@]}" --timeout 300s >/dev/null
helm status "$release" -n "$ns" -o json | jq -r '"\(.info.status) revision \(.version)"' >/dev/null

for part in backend frontend; do
  kubectl --context "$ctx" -n "$ns" rollout status "deployment/$release-$part" --timeout=120s >/dev/null
done
ip=$(minikube ip -p "$ctx")
port=$(kubectl --context "$ctx" -n "$ns" get service "$release-frontend" -o jsonpath='{.spec.ports[0].nodePort}')
kubectl --context "$ctx" get --raw "/api/v1/namespaces/$ns/services/$release-backend:8000/proxy/health" >/dev/null
url="http://$ip:$port"
curl -fsS -o /dev/null --retry 10 --retry-connrefused --retry-max-time 60 --max-time 5 "$url/"
echo "habit-tracker is up: $url"
[ -n "${GITHUB_OUTPUT:-}" ] && echo "url=$url" >>"$GITHUB_OUTPUT"
exit 0
