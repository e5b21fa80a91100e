#!/usr/bin/env bash
# The rollback workflow's critical path, replayed on this machine as CI runs
# it (examples/pay2slay/workflows/rollback-api.yml): from "roll back"
# pressed to the Akash deployment update (the Console's PUT), two ways:
#
#   action:  action.yml's own two step scripts (read from action.yml, run
#            with bash as a runner does): download the release binary from
#            a mirror (python3 -m http.server on 127.0.0.1 serving a
#            release build + SHA256SUMS), verify it against the pinned
#            SHA-256, then run playbooks/rollback.rhai;
#   cargo install:  `cargo install --locked --path .` into an empty
#            CARGO_HOME and target dir (what the old workflows did on a
#            cold cache), then the same rollback. Minutes on 2 cores: only
#            with CARGO_INSTALL=1, once.
#
# The rollback runs for real against local stand-ins: the Debian
# `docker-registry` (anonymous, 127.0.0.1) holding the image of the SHA,
# and the Akash Console stand-in (tests/standins/akash_console.py), whose
# request log timestamps the deployment update. Locks and ledger: the file
# backends in a temp dir (CI uses the github ones: their round trips are
# not in these figures).
#
#   bench/rollback-critical-path.sh              # RUNS (default 5) action runs
#   RB=/path/to/release/runbook bench/...        # serve that build (default: cargo build --release)
#   CARGO_INSTALL=1 bench/...                    # add the one cold cargo install run
#
# Needs docker-registry, curl, python3 with PyYAML (Debian python3-yaml, or
# the CI venv). Every server binds 127.0.0.1 and exits by itself within 30
# minutes; the trap stops them and removes the temp dir.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

for tool in docker-registry curl python3 sha256sum; do
  command -v "$tool" >/dev/null || { echo "bench/rollback-critical-path.sh needs $tool" >&2; exit 1; }
done
py=python3
if ! "$py" -c 'import yaml' 2>/dev/null; then
  py="${RUNBOOK_CI_VENV:-$HOME/.cache/runbook-ci-venv}/bin/python"
  "$py" -c 'import yaml' 2>/dev/null || { echo "needs PyYAML: apt-get install python3-yaml, or bash ci/install-deps.sh" >&2; exit 1; }
fi

if [ -z "${RB:-}" ]; then
  cargo build --release --locked --quiet --bin runbook
  RB="${CARGO_TARGET_DIR:-target}/release/runbook"
fi
RB=$(realpath "$RB")
RUNS="${RUNS:-5}"

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }

# --- the mirror: a release build and its SHA256SUMS ---------------------------
case "$(uname -m)" in x86_64) arch=amd64 ;; aarch64 | arm64) arch=arm64 ;; *) echo "no arch" >&2; exit 1 ;; esac
mkdir "$tmp/mirror"
cp "$RB" "$tmp/mirror/runbook-linux-$arch"
(cd "$tmp/mirror" && sha256sum "runbook-linux-$arch" >SHA256SUMS)
pinned=$(cut -d' ' -f1 "$tmp/mirror/SHA256SUMS")
mport=$(free_port)
timeout 1800 "$py" -m http.server "$mport" --bind 127.0.0.1 --directory "$tmp/mirror" >"$tmp/mirror.log" 2>&1 &
pids+=($!)
for _ in $(seq 200); do curl -sf -o /dev/null "http://127.0.0.1:$mport/SHA256SUMS" && break; sleep 0.05; done
mirror="http://127.0.0.1:$mport"

# --- the registry, with the image of the SHA to roll back to -----------------
rport=$(free_port)
cat >"$tmp/registry.yml" <<EOF
version: 0.1
log: {level: error}
storage:
  filesystem: {rootdirectory: $tmp/registry}
http: {addr: 127.0.0.1:$rport, secret: bench-secret}
EOF
timeout 1800 docker-registry serve "$tmp/registry.yml" >/dev/null 2>"$tmp/registry.err" &
pids+=($!)
for _ in $(seq 200); do curl -sf -o /dev/null "http://127.0.0.1:$rport/v2/" && break; sleep 0.05; done
host="127.0.0.1:$rport"
SHA=4f1c2a9d0b8e7c6f5a4b3c2d1e0f9a8b7c6d5e4f
OLD_SHA=1111111111111111111111111111111111111111
"$py" - "$host" mconstant/pay2slay-api "$SHA" "$OLD_SHA" <<'EOF'
# Push one small OCI image per tag (blob uploads, then the manifest).
import hashlib, http.client, json, sys
host, repo, tags = sys.argv[1], sys.argv[2], sys.argv[3:]
def req(method, path, body=b"", headers=None):
    c = http.client.HTTPConnection(host, timeout=10)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse(); r.read(); c.close()
    if r.status >= 300: sys.exit(f"{method} {path}: HTTP {r.status}")
    return r
def blob(data):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    loc = req("POST", f"/v2/{repo}/blobs/uploads/").getheader("Location")
    loc = loc.split(host, 1)[-1]
    req("PUT", f"{loc}{'&' if '?' in loc else '?'}digest={d}", data, {"Content-Type": "application/octet-stream"})
    return d, len(data)
for tag in tags:
    layer = f"layer of {repo}:{tag}".encode()
    ld, ls = blob(layer)
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {}, "rootfs": {"type": "layers", "diff_ids": [ld]}}).encode()
    cd, cs = blob(cfg)
    m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
                    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": ls}]}).encode()
    req("PUT", f"/v2/{repo}/manifests/{tag}", m, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
EOF

# --- the Akash Console stand-in: deployment 1002 runs OLD_SHA ---------------
mkdir "$tmp/console"
console_state() {
  "$py" - "$root/infra/akash-api/deploy.yaml" "$host/mconstant/pay2slay-api:$OLD_SHA" "$tmp/console" <<'EOF'
import json, os, sys
sdl = open(sys.argv[1]).read().replace("ghcr.io/mconstant/pay2slay-api:4f1c2a9d0b8e7c6f5a4b3c2d1e0f9a8b7c6d5e4f", sys.argv[2])
d = sys.argv[3]
for f in ("requests.jsonl", "counters.json"):
    try: os.remove(os.path.join(d, f))
    except FileNotFoundError: pass
open(os.path.join(d, "state.json.tmp"), "w").write(json.dumps({"deployments": {"1002": {"sdl": sdl}}, "scenario": "ready"}))
os.replace(os.path.join(d, "state.json.tmp"), os.path.join(d, "state.json"))
EOF
}
console_state
export STANDIN_API_KEY=bench-console-key
timeout 1800 "$py" tests/standins/akash_console.py --dir "$tmp/console" --api-key-env STANDIN_API_KEY --max-seconds 1800 >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 200); do [ -s "$tmp/console/port" ] && break; sleep 0.05; done
[ -s "$tmp/console/port" ] || { echo "the Console stand-in did not start" >&2; exit 1; }

# --- the action's scripts, and the rollback's arguments (one per line) ------
"$py" - "$root/action.yml" "$tmp" <<'EOF'
import sys, yaml
steps = yaml.safe_load(open(sys.argv[1]))["runs"]["steps"]
open(f"{sys.argv[2]}/fetch.sh", "w").write(steps[0]["run"])
open(f"{sys.argv[2]}/run.sh", "w").write(steps[1]["run"])
EOF
args=$(printf '%s\n' --sha "$SHA" --branch main --dseq 1002 --registry "$host" \
  --banano-rpc-endpoint provider.europlots.com:31877 \
  --cosign-key "$root/tests/data/cosign/lab-generated-distribution-2.8.2/test-signer.pub")

# One rollback with `runbook` first on PATH at $1 (empty: the action fetches it).
# Prints "seconds-to-update seconds-to-exit seconds-to-binary-ready" from $2
# (the start time; empty: now, once the checkout and the stand-in's state
# are ready, as when a runner reaches the action's step).
rollback() {
  local bin=$1 t0=$2 work
  work=$(mktemp -d "$tmp/run.XXXX")
  console_state
  mkdir -p "$work/proj" "$work/tmp" "$work/state"
  cp -R "$root/playbooks" "$root/infra" "$work/proj/"
  [ -n "$t0" ] || t0=$(now)
  (
    cd "$work/proj"
    export RUNNER_TEMP="$work/tmp" GITHUB_PATH="$work/github_path" GITHUB_OUTPUT="$work/github_output"
    AKASH_CONSOLE_API_URL="http://127.0.0.1:$(cat "$tmp/console/port")"
    export AKASH_CONSOLE_API_URL AKASH_CONSOLE_API_KEY="$STANDIN_API_KEY"
    export RUNBOOK_STATE_DIR="$work/state" RUNBOOK_LOCK_BACKEND=file RUNBOOK_LEDGER_BACKEND=file NO_COLOR=1
    if [ -z "$bin" ]; then
      VERSION=v0.0.0-bench WANT_SHA256="$pinned" REPOSITORY=acme/runbook DOWNLOAD_URL="$mirror" \
        bash -e "$tmp/fetch.sh"
      bin=$(cat "$GITHUB_PATH")
    fi
    now >"$work/t_ready"
    PATH="$bin:$PATH" PLAYBOOK=playbooks/rollback.rhai ARGS="$args" bash "$tmp/run.sh" >"$work/out" 2>&1 ||
      { echo "the rollback failed:" >&2; cat "$work/out" >&2; exit 1; }
  )
  local t_end
  t_end=$(now)
  "$py" - "$tmp/console/requests.jsonl" "$t0" "$t_end" "$(cat "$work/t_ready")" <<'EOF'
import json, sys
puts = [json.loads(l)["t"] for l in open(sys.argv[1]) if json.loads(l)["method"] == "PUT"]
if len(puts) != 1: sys.exit(f"want one deployment update, the Console saw {len(puts)}")
t0, end, ready = float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
print(f"{puts[0] - t0:.3f} {end - t0:.3f} {ready - t0:.3f}")
EOF
  rm -rf "$work"
}

echo "rollback critical path: release build $RB ($(du -h "$RB" | cut -f1)), mirror $mirror, registry $host" >&2
echo "action (download + verify + rollback), $RUNS runs: seconds to the deployment update / to the end / binary ready"
results=()
for i in $(seq "$RUNS"); do
  r=$(rollback "" "")
  results+=("${r%% *}")
  echo "  run $i: $r"
done
printf '%s\n' "${results[@]}" | sort -n | awk '{a[NR]=$1} END {printf "  median to the update: %.3f s (min %.3f, max %.3f)\n", a[int((NR+1)/2)], a[1], a[NR]}'

if [ "${CARGO_INSTALL:-0}" = 1 ]; then
  echo "cargo install --locked --path . (empty CARGO_HOME and target dir), then the rollback:"
  t0=$(now)
  CARGO_HOME="$tmp/cargo-home" CARGO_TARGET_DIR="$tmp/cargo-target" \
    cargo install --locked --quiet --path . --root "$tmp/cargo-root"
  t_built=$(now)
  r=$(rollback "$tmp/cargo-root/bin" "$t0")
  read -r to_update to_end _ <<<"$r"
  echo "  compile: $("$py" -c "print(f'{$t_built - $t0:.1f}')") s; to the update: $to_update s; to the end: $to_end s"
fi
