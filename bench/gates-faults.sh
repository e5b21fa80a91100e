#!/usr/bin/env bash
# Fault injection for guarded deploys (issue 19): N (default 100) runs of
# bench/gates-faults.rhai, a guarded "deploy" of local files (budget 4 s,
# rollback_reserve 2 s, so deploy + verification must end by 2 s), each
# with faults drawn at random:
#   - the deploy takes 0–3 s (past 2 s it is cut and rolled back);
#   - the gate fails (30 %);
#   - SIGTERM or SIGINT at a random moment in 0–3 s (50 %).
# Each run is checked: when the deploy started and did not both finish and
# pass its gate, the rollback must have run to its end (not skipped),
# within its 2 s reserve (not starved), started by 2 s + slack (the deploy
# phase was bounded), leaving state v1; and the exit code must match
# (0 passed, 3 rolled back, 130/143 signalled). Every run is bounded by
# `timeout 15`. Then the cost of a passing gate round: a real Prometheus
# (Debian's, on 127.0.0.1, scraping itself every 1 s) asked one instant
# query by `curl`, by a runbook playbook verifying one prometheus gate, and
# a runbook playbook doing nothing (process + engine start), with hyperfine.
#
#   bench/gates-faults.sh                 # 100 runs, seed 19, then the gate round
#   N=20 SEED=7 bench/gates-faults.sh
#   RB=target/release/runbook bench/...   # default: target/debug/runbook (cargo build)
#   SKIP_ROUND=1 bench/...                # the fault runs only
#
# Needs bash, coreutils `timeout`, python3; for the round, prometheus,
# curl and hyperfine. Nothing binds beyond 127.0.0.1; the trap stops
# Prometheus and removes the temp dir.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-100}
RANDOM=${SEED:-19}
if [ -z "${RB:-}" ]; then
  cargo build --quiet
  RB=$PWD/target/debug/runbook
fi
RB=$(readlink -f "$RB")
SUBJECT=$PWD/bench/gates-faults.rhai
TMP=$(mktemp -d)
PROM_PID=
cleanup() {
  if [ -n "$PROM_PID" ]; then kill "$PROM_PID" 2>/dev/null || true; wait "$PROM_PID" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT

# A marker's time (seconds since the playbook started), or "".
at() { [ -f "$1" ] && python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["at"])' "$1" || true; }

bad=0 rolled=0 passed=0 signalled=0 before=0 late=0 maxrb=0 maxstart=0
declare -A codes=()
start_all=$(date +%s.%N)
for i in $(seq 1 "$N"); do
  d="$TMP/run$i"; mkdir -p "$d"; cp "$SUBJECT" "$d/"
  delay=$((RANDOM % 3001))
  fail=$((RANDOM % 100 < 30))
  sig=; sig_ms=
  if [ $((RANDOM % 2)) -eq 1 ]; then
    sig=$([ $((RANDOM % 2)) -eq 1 ] && echo TERM || echo INT)
    sig_ms=$((RANDOM % 3001))
  fi
  flags=(--delay-ms "$delay")
  [ "$fail" = 1 ] && flags+=(--fail)
  ( cd "$d" && exec timeout -s KILL 15 "$RB" gates-faults.rhai "${flags[@]}" >out 2>err ) &
  pid=$!
  if [ -n "$sig" ]; then
    sleep "$(printf '%d.%03d' $((sig_ms / 1000)) $((sig_ms % 1000)))"
    # The runbook process itself (timeout's child), as a runner signals it.
    child=$(pgrep -P "$pid" -f gates-faults.rhai | head -1 || true)
    [ -z "$child" ] && child=$(pgrep -P "$(pgrep -P "$pid" | head -1)" 2>/dev/null | head -1 || true)
    [ -n "$child" ] && kill -s "$sig" "$child" 2>/dev/null || true
  fi
  set +e; wait "$pid"; rc=$?; set -e
  codes[$rc]=$(( ${codes[$rc]:-0} + 1 ))
  ds=$(at "$d/deploy_start.json"); dd=$(at "$d/deploy_done.json")
  rs=$(at "$d/rollback_start.json"); rd=$(at "$d/rollback_done.json")
  gate_ok=$([ -f "$d/gate.json" ] && python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ok"])' "$d/gate.json" || echo none)
  state=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["deployed"])' "$d/state.json" 2>/dev/null || echo none)
  why=
  if [ -z "$ds" ]; then
    before=$((before + 1))
    [ -n "$rs" ] && why="a rollback without a deploy"
  elif [ -n "$dd" ] && [ "$gate_ok" = True ] && { [ -z "$rs" ] || [ -z "$sig" ]; }; then
    passed=$((passed + 1))
    [ -n "$rs" ] && why="rolled back after the gate passed"
    [ -z "$sig" ] && [ "$rc" != 0 ] && why="passed but exit $rc"
  else
    # Here too: a signal after the gate measured but before guarded
    # concluded (a signal starts the rollback until then).
    [ -n "$dd" ] && [ "$gate_ok" = True ] && late=$((late + 1))
    rolled=$((rolled + 1))
    if [ -z "$rd" ]; then why="rollback skipped or starved (started: ${rs:-never})"
    else
      took=$(python3 -c "print(round($rd - $rs, 3))")
      maxrb=$(python3 -c "print(max($maxrb, $took))")
      maxstart=$(python3 -c "print(max($maxstart, $rs))")
      python3 -c "import sys; sys.exit(0 if $took <= 2.0 else 1)" || why="rollback took ${took}s, past its 2 s reserve"
      python3 -c "import sys; sys.exit(0 if $rs <= 2.5 else 1)" || why="rollback started at ${rs}s, past budget - reserve (2 s) + 0.5 s"
      [ "$state" = v1 ] || why="state is $state after the rollback"
      if [ -z "$sig" ]; then [ "$rc" = 3 ] || why="rolled back but exit $rc"
      else case $rc in 3|130|143) ;; *) why="rolled back but exit $rc";; esac; fi
    fi
  fi
  [ -n "$sig" ] && signalled=$((signalled + 1))
  if [ -n "$why" ]; then
    bad=$((bad + 1))
    echo "run $i BAD: $why (delay ${delay} ms, fail $fail, signal ${sig:-none} at ${sig_ms:-} ms, exit $rc)"
    tail -5 "$d/err" | sed 's/^/    /'
  fi
done
elapsed=$(python3 -c "import time; print(round($(date +%s.%N) - $start_all, 1))")
echo "fault runs: $N in ${elapsed}s (seed ${SEED:-19}); signalled $signalled"
echo "  signal before the deploy started: $before; deploy passed its gate: $passed; needed a rollback: $rolled (of which signalled after the gate passed, before guarded concluded: $late)"
echo "  exit codes: $(for k in "${!codes[@]}"; do printf '%s×%s ' "$k" "${codes[$k]}"; done)"
echo "  longest rollback: ${maxrb}s of a 2 s reserve (each takes 0.3 s); latest rollback start: ${maxstart}s (deploy phase ends at 2 s)"
echo "  runs with a rollback skipped, starved, late or a wrong exit: $bad"
[ "${SKIP_ROUND:-}" = 1 ] && exit $((bad > 0))

# ---- a passing gate round against a real Prometheus -----------------------
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$TMP/prometheus.yml" <<YML
global: { scrape_interval: 1s, evaluation_interval: 1s }
scrape_configs:
  - job_name: self
    static_configs: [ { targets: ["127.0.0.1:$PORT"] } ]
YML
prometheus --config.file="$TMP/prometheus.yml" --web.listen-address="127.0.0.1:$PORT" \
  --storage.tsdb.path="$TMP/tsdb" >"$TMP/prometheus.log" 2>&1 &
PROM_PID=$!
Q='sum(up) - 1'
URL="http://127.0.0.1:$PORT/api/v1/query"
for _ in $(seq 1 60); do
  curl -fsS --get --data-urlencode "query=$Q" "$URL" 2>/dev/null | grep -q '"value":\[' && break
  sleep 0.5
done
curl -fsS --get --data-urlencode "query=$Q" "$URL" | grep -q '"value":\[' || { echo "prometheus did not answer $Q"; exit 1; }
cat > "$TMP/round.rhai" <<RHAI
//! One passing gate round: one instant query, judged.
let r = verify([gate("error-rate", #{ prometheus: #{ url: "http://127.0.0.1:$PORT", query: "$Q" }, success: "value < 0.01", count: 1 })]);
if r.status != "passed" { fail(\`the round did not pass: \${r}\`); }
RHAI
printf '//! Nothing: process and engine start.\n' > "$TMP/empty.rhai"
cd "$TMP"
hyperfine --warmup 3 --runs "${RUNS:-30}" -N \
  -n "curl instant query" "curl -fsS --get --data-urlencode 'query=$Q' $URL" \
  -n "runbook: empty playbook" "$RB empty.rhai" \
  -n "runbook: verify one prometheus gate" "$RB round.rhai"
exit $((bad > 0))
