#!/usr/bin/env bash
# The main job, end to end, with no cloud account: the real split-deploy
# playbook against a local stand-in of the Akash Console API (127.0.0.1,
# replaying the API's real response shapes). The node's forwarded RPC port
# appears only after a few polls, as on a real provider.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# RUNBOOK_BIN: a runbook binary to use instead of building one (the
# prebuilt release binary, or the test suite's own build).
if [ -n "${RUNBOOK_BIN:-}" ]; then
  runbook="$RUNBOOK_BIN"
else
  echo "== building runbook (release; the first build takes minutes on 2 cores)"
  cargo build --release
  runbook=./target/release/runbook
fi

work=$(mktemp -d)
cleanup() {
  if [ -n "${server_pid:-}" ]; then kill "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# Two existing deployments, as the Console API would hold them.
python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
state = {
    "deployments": {
        "1001": {"sdl": open("infra/akash-banano/deploy.yaml").read()},
        "1002": {"sdl": open("infra/akash-api/deploy.yaml").read()},
    },
    "scenario": "late",
    "ready_after": 2,
}
json.dump(state, open(f"{work}/state.json", "w"))
PY
export STANDIN_API_KEY="demo-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
python3 tests/standins/akash_console.py --dir "$work" --api-key-env STANDIN_API_KEY --max-seconds 300 &
server_pid=$!
for _ in $(seq 1 200); do [ -s "$work/port" ] && break; sleep 0.05; done
port=$(cat "$work/port")
echo "== Akash Console API stand-in on http://127.0.0.1:$port (deployments 1001: Banano node, 1002: API)"

export AKASH_CONSOLE_API_URL="http://127.0.0.1:$port"
export AKASH_CONSOLE_API_KEY="$STANDIN_API_KEY"
# The API's image is given: a fresh clone has no ledger recording one.
"$runbook" playbooks/split-deploy.rhai --stack both --banano-dseq 1001 --api-dseq 1002 \
  --api-image ghcr.io/mconstant/pay2slay-api:4f1c2a9d0b8e7c6f5a4b3c2d1e0f9a8b7c6d5e4f

echo
echo "== endpoint.json (the artifact joining the stacks)"
cat endpoint.json
echo "== the API deployment now runs with:"
python3 - "$work" <<'PY'
import json, sys
state = json.load(open(f"{sys.argv[1]}/state.json"))
for line in state["deployments"]["1002"]["sdl"].splitlines():
    if "BANANO_RPC_ENDPOINT" in line or "image:" in line:
        print("  " + line.strip())
PY
