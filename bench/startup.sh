#!/usr/bin/env bash
# Whole-process figures: a trivial playbook (validate one endpoint) run cold
# by runbook, vs the same check in bash and in ansible-playbook, in one
# hyperfine run; plus peak memory. Needs hyperfine and GNU time (Debian),
# installs ansible-core into a venv. BEFORE=/path/to/an/older/runbook adds
# it as a fourth row (e.g. a release build of the previous main), for
# before/after figures from the same run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

venv="${RUNBOOK_BENCH_VENV:-$HOME/.cache/runbook-bench-venv}"
[ -x "$venv/bin/ansible-playbook" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q -r bench/requirements.txt; }
cargo build --release --quiet
rb=./target/release/runbook
export ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_INVENTORY_UNPARSED_WARNING=false NO_COLOR=1

out=$(mktemp -d)
before=()
[ -n "${BEFORE:-}" ] && before=(-n runbook-before "$BEFORE bench/validate.rhai")
hyperfine --warmup 3 --runs "${RUNS:-30}" -N --export-json "$out/startup.json" \
  -n runbook "$rb bench/validate.rhai" "${before[@]}" \
  -n bash "bash bench/validate.sh" \
  -n ansible-playbook "$venv/bin/ansible-playbook -i localhost, bench/validate.yml" >/dev/null

peak() { /usr/bin/time -f %M "$@" >/dev/null 2>"$out/time" || true; tail -1 "$out/time"; }
before_rss=""
[ -n "${BEFORE:-}" ] && before_rss=$(peak "$BEFORE" bench/validate.rhai)
python3 - "$out/startup.json" "$(peak $rb bench/validate.rhai)" "$(peak bash bench/validate.sh)" "$(peak "$venv/bin/ansible-playbook" -i localhost, bench/validate.yml)" "$before_rss" <<'PY'
import json, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
rss = dict(zip(["runbook", "bash", "ansible-playbook", "runbook-before"], sys.argv[2:6]))
base = res["runbook"]["median"]
print(f"{'command':18} {'median':>10} {'mean ± sd':>18} {'peak RSS':>10} {'vs runbook':>11}")
for name in ["runbook", "runbook-before", "bash", "ansible-playbook"]:
    if name not in res:
        continue
    r = res[name]
    print(f"{name:18} {r['median']*1000:8.2f}ms {r['mean']*1000:9.2f} ± {r['stddev']*1000:5.2f}ms {int(rss[name])/1024:8.1f}MiB {r['median']/base:10.1f}x")
PY
rm -rf "$out"
