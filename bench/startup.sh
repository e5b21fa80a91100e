#!/usr/bin/env bash
# Whole-process figures: a trivial playbook (validate one endpoint) run cold
# by runbook, vs the same check in bash and in ansible-playbook, in one
# hyperfine run; plus peak memory, the ratio to bash (issue 21's goal:
# at most 2x) and, when valgrind is installed, the instructions a run
# executes (callgrind: repeatable on a noisy machine, unlike wall time).
# Needs hyperfine and GNU time (Debian), installs ansible-core into a venv
# (NO_ANSIBLE=1 leaves it out). BEFORE=/path/to/an/older/runbook adds it
# as a row (e.g. a release build of the previous main), for before/after
# figures from the same run. RB=/path/to/runbook skips the build.
# The ratio to bash is then measured again in ROUNDS (default 7) short
# hyperfine runs of runbook and bash side by side, their order swapped
# every round: on a shared machine the load drifts within a minute, and
# one long run per command measures the drift as much as the programs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

venv="${RUNBOOK_BENCH_VENV:-$HOME/.cache/runbook-bench-venv}"
ansible=()
if [ -z "${NO_ANSIBLE:-}" ]; then
  [ -x "$venv/bin/ansible-playbook" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q -r bench/requirements.txt; }
  ansible=(-n ansible-playbook "$venv/bin/ansible-playbook -i localhost, bench/validate.yml")
fi
if [ -z "${RB:-}" ]; then
  cargo build --release --quiet
fi
rb="${RB:-./target/release/runbook}"
export ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_INVENTORY_UNPARSED_WARNING=false NO_COLOR=1

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
before=()
[ -n "${BEFORE:-}" ] && before=(-n runbook-before "$BEFORE bench/validate.rhai")
hyperfine --warmup 3 --runs "${RUNS:-30}" -N --export-json "$out/startup.json" \
  -n runbook "$rb bench/validate.rhai" "${before[@]}" \
  -n bash "bash bench/validate.sh" \
  "${ansible[@]}" >/dev/null

peak() { /usr/bin/time -f %M "$@" >/dev/null 2>"$out/time" || true; tail -1 "$out/time"; }
# Instructions of one run (all threads), or "" without valgrind.
instr() {
  command -v valgrind >/dev/null || return 0
  valgrind --tool=callgrind --callgrind-out-file="$out/cg" "$@" >/dev/null 2>"$out/cg.log" || true
  sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$out/cg.log" | tail -1
}
rss_before="" ins_before=""
if [ -n "${BEFORE:-}" ]; then
  rss_before=$(peak "$BEFORE" bench/validate.rhai)
  ins_before=$(instr "$BEFORE" bench/validate.rhai)
fi
rss_ansible=""
[ -n "${NO_ANSIBLE:-}" ] || rss_ansible=$(peak "$venv/bin/ansible-playbook" -i localhost, bench/validate.yml)
python3 - "$out/startup.json" "$(peak "$rb" bench/validate.rhai)" "$(peak bash bench/validate.sh)" "$rss_ansible" "$rss_before" \
  "$(instr "$rb" bench/validate.rhai)" "$(instr bash bench/validate.sh)" "$ins_before" <<'PY'
import json, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
names = ["runbook", "bash", "ansible-playbook", "runbook-before"]
rss = dict(zip(names, sys.argv[2:6]))
ins = dict(zip(["runbook", "bash", "runbook-before"], sys.argv[6:9]))
base, bash = res["runbook"]["median"], res["bash"]["median"]
print(f"{'command':18} {'median':>10} {'mean ± sd':>18} {'peak RSS':>10} {'instructions':>13} {'vs bash':>8}")
for name in ["runbook", "runbook-before", "bash", "ansible-playbook"]:
    if name not in res:
        continue
    r = res[name]
    mem = f"{int(rss[name]) / 1024:8.1f}MiB" if rss.get(name) else f"{'-':>11}"
    n = ins.get(name) or ""
    n = f"{int(n) / 1e6:11.2f} M" if n else f"{'-':>13}"
    print(f"{name:18} {r['median']*1000:8.2f}ms {r['mean']*1000:9.2f} ± {r['stddev']*1000:5.2f}ms {mem} {n} {r['median']/bash:7.1f}x")
print(f"runbook / bash (medians): {base / bash:.2f}x")
PY

rounds="${ROUNDS:-7}"
for i in $(seq "$rounds"); do
  pair=(-n runbook "$rb bench/validate.rhai" -n bash "bash bench/validate.sh")
  [ $((i % 2)) -eq 0 ] && pair=(-n bash "bash bench/validate.sh" -n runbook "$rb bench/validate.rhai")
  hyperfine --warmup 10 --runs "${ROUND_RUNS:-60}" -N --export-json "$out/round$i.json" "${pair[@]}" >/dev/null 2>&1
done
python3 - "$out" "$rounds" <<'PY'
import json, statistics, sys
ratios = []
for i in range(1, int(sys.argv[2]) + 1):
    res = {r["command"]: r["median"] for r in json.load(open(f"{sys.argv[1]}/round{i}.json"))["results"]}
    ratios.append(res["runbook"] / res["bash"])
    print(f"round {i}: runbook {res['runbook']*1000:.2f} ms, bash {res['bash']*1000:.2f} ms: {ratios[-1]:.2f}x")
print(f"runbook / bash, median of {len(ratios)} rounds: {statistics.median(ratios):.2f}x (goal: at most 2x)")
PY
