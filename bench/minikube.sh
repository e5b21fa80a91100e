#!/usr/bin/env bash
# The Minikube flow's own overhead: playbooks/minikube.rhai run whole by
# runbook vs the same steps as bash (bench/minikube-equivalent.sh), both
# calling the same stand-ins (tests/standins/bin: helm, kubectl, minikube)
# that answer at once, against the fake Kubernetes API of the tests
# (tests/it/support/kube.rs, Deployments already rolled out), in one hyperfine
# run; plus peak RSS (GNU time). Needs hyperfine, GNU time, jq, curl
# (Debian: apt-get install -y hyperfine time jq curl).
#
#   bash bench/minikube.sh            # RUNS=30 by default
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
for tool in hyperfine jq curl; do
  command -v "$tool" >/dev/null || { echo "bench/minikube.sh needs $tool (apt-get install -y $tool)" >&2; exit 2; }
done
[ -x /usr/bin/time ] || { echo "bench/minikube.sh needs GNU time (apt-get install -y time)" >&2; exit 2; }

target="${CARGO_TARGET_DIR:-target}"
cargo build --release --quiet
rb="$PWD/$target/release/runbook"
[ -x "$rb" ] || rb="$target/release/runbook"

work=$(mktemp -d)
server_pid=""
cleanup() {
  touch "$work/stop"
  [ -n "$server_pid" ] && wait "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The fake Kubernetes API (Rust, from the test suite), ready at once.
mkdir -p "$work/standin"
BENCH_DIR="$work" cargo test --quiet --test it -- --ignored --exact minikube::serve_fake_cluster_for_the_benchmark \
  >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 1200); do [ -f "$work/ready" ] && break; sleep 0.1; done
[ -f "$work/ready" ] || { cat "$work/server.log" >&2; echo "the fake Kubernetes API did not start" >&2; exit 1; }

export KUBECONFIG="$work/kubeconfig" STANDIN_DIR="$work/standin"
# The stand-ins' interpreter straight, not through a version-manager shim.
mkdir -p "$work/py"
ln -s "$(python3 -c 'import sys; print(sys.executable)')" "$work/py/python3"
export PATH="$PWD/tests/standins/bin:$work/py:$PATH"
export DATABASE_URL="postgresql://app:bench-db-password@db.example:5432/app" JWT_SECRET="bench-jwt-secret" GEMINI_API_KEY="bench-gemini-key"
unset GITHUB_OUTPUT GITHUB_STEP_SUMMARY GITHUB_ACTIONS
echo '{"ip": "127.0.0.1"}' >"$STANDIN_DIR/minikube.json"
echo "{\"node_port\": $(cat "$work/node_port")}" >"$STANDIN_DIR/kubectl.json"

# Both must succeed before they are timed.
"$rb" playbooks/minikube.rhai --log-format json >"$work/rb.out" 2>&1 || { cat "$work/rb.out" >&2; exit 1; }
bash bench/minikube-equivalent.sh >"$work/sh.out" 2>&1 || { cat "$work/sh.out" >&2; exit 1; }

calls() { wc -l <"$STANDIN_DIR/calls.jsonl"; }
before=$(calls); "$rb" playbooks/minikube.rhai >/dev/null 2>&1; rb_calls=$(( $(calls) - before ))
before=$(calls); bash bench/minikube-equivalent.sh >/dev/null 2>&1; sh_calls=$(( $(calls) - before ))

hyperfine --warmup 2 --runs "${RUNS:-30}" -N --export-json "$work/minikube.json" \
  -n runbook "$rb playbooks/minikube.rhai" \
  -n bash "bash bench/minikube-equivalent.sh" \
  -n "one stand-in call" "helm version --short" >/dev/null

# runbook's own share: the run's elapsed time minus the time its children
# (the stand-ins) ran, from its JSON log (exec events carry elapsed_ms).
for i in $(seq 1 10); do "$rb" playbooks/minikube.rhai --log-format json 2>"$work/own-$i.log" >/dev/null; done
own=$(python3 - "$work" <<'PY'
import json, sys, glob, statistics
vals = []
for f in glob.glob(sys.argv[1] + "/own-*.log"):
    ev = [json.loads(l) for l in open(f) if l.startswith("{")]
    total = next(e["elapsed_ms"] for e in ev if e.get("outcome") == "finished")
    children = sum(e.get("elapsed_ms", 0) for e in ev if e.get("primitive") == "exec")
    vals.append(total - children)
print(f"{statistics.median(vals):.0f}")
PY
)

# runbook's own peak RSS (GNU time's figure is the largest of it and its
# children): its VmHWM, polled from /proc until it exits.
own_rss=$(python3 - "$rb" <<'PY'
import subprocess, sys, time
p = subprocess.Popen([sys.argv[1], "playbooks/minikube.rhai"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
hwm = 0
while p.poll() is None:
    try:
        for line in open(f"/proc/{p.pid}/status"):
            if line.startswith("VmHWM:"):
                hwm = max(hwm, int(line.split()[1]))
    except OSError:
        pass
    time.sleep(0.002)
print(hwm)
PY
)

peak() { /usr/bin/time -v "$@" >/dev/null 2>"$work/time" || true; awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$work/time"; }
# GNU time reports the largest of the process and the children it waited for.
python3 - "$work/minikube.json" "$(peak "$rb" playbooks/minikube.rhai)" "$(peak bash bench/minikube-equivalent.sh)" "$rb_calls" "$sh_calls" "$own" "$own_rss" <<'PY'
import json, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
rss = {"runbook": int(sys.argv[2]), "bash": int(sys.argv[3])}
calls = {"runbook": sys.argv[4], "bash": sys.argv[5]}
print(f"{'command':9} {'median':>10} {'mean ± sd':>20} {'min':>9} {'peak RSS*':>10} {'stand-in calls':>15}")
for name in ["runbook", "bash"]:
    r = res[name]
    print(f"{name:9} {r['median']*1000:8.1f}ms {r['mean']*1000:10.1f} ± {r['stddev']*1000:5.1f}ms {r['min']*1000:7.1f}ms {rss[name]/1024:8.1f}MiB {calls[name]:>15}")
print("* GNU time: the largest of the process and the children it waited for")
ratio = res["runbook"]["median"] / res["bash"]["median"]
print(f"ratio runbook/bash (median wall time): {ratio:.2f}x")
one = res["one stand-in call"]["median"]
print(f"one stand-in call (helm version --short): {one*1000:.1f}ms median")
print(f"runbook's own peak RSS (VmHWM, without its children): {int(sys.argv[7])/1024:.1f}MiB")
print(f"runbook's own time (run minus its stand-in children, from its JSON log; median of 10): {sys.argv[6]}ms")
PY
