#!/usr/bin/env bash
# The deployment ledger at scale: a file of N (default 100,000) records
# shaped like a deploy's (~330 bytes each), then `runbook history --limit 20`
# (table and --json) against `tail -n 20 | jq -c .`, the floor for "the
# newest 20", with hyperfine; then each one's peak RSS (/usr/bin/time).
# The reader scans from the file's end, so both should be flat in N.
# Needs hyperfine, jq and GNU time (Debian). RB names the binary (default:
# a release build).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ -z "${RB:-}" ]; then
  cargo build --release --quiet
  RB=$PWD/target/release/runbook
fi
RB=$(realpath "$RB")
N=${N:-100000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/.runbook/ledger"
file=$work/.runbook/ledger/app.jsonl
awk -v n="$N" 'BEGIN {
  for (i = 0; i < n; i++) {
    r = (i % 3 == 2) ? "failed" : "ok";
    printf "{\"event\":\"run\",\"target\":\"app\",\"playbook\":\"playbooks/deploy.rhai\",\"params\":{\"sha\":\"%07x\",\"dseq\":\"123456\",\"dry_run\":false},\"actor\":\"ci-bot\",\"run_url\":\"https://github.com/o/r/actions/runs/%d\",\"start\":\"2025-01-01T00:00:00Z\",\"end\":\"2025-01-01T00:03:10Z\",\"result\":\"%s\",\"token\":%d,\"previous_image\":\"ghcr.io/o/app:%07x\",\"sha\":\"%040x\",\"image\":\"ghcr.io/o/app:%07x\",\"digest\":\"sha256:%064x\"}\n", i, i, r, i, (i > 0 ? i - 1 : 0), i, i, i
  }
}' > "$file"
echo "ledger: $N records, $(du -h "$file" | cut -f1), $(( $(wc -c < "$file") / N )) bytes a record"
cd "$work"
export RUNBOOK_LOG=warn NO_COLOR=1
hyperfine --warmup 3 --runs "${RUNS:-30}" -N \
  -n "runbook history --limit 20" "$RB history app --limit 20" \
  -n "runbook history --json --limit 20" "$RB history app --json --limit 20" \
  -n "tail -n 20 | jq -c ." "bash -c 'tail -n 20 $file | jq -c .'"
# Peak RSS: GNU time reports the largest of the process and the children
# it waited for (for the pipeline: bash, tail or jq).
rss() {
  { /usr/bin/time -f %M "$@" >/dev/null; } 2>&1 | tail -n 1
}
echo "peak RSS (KiB):"
printf '  %8s  %s\n' "$(rss "$RB" history app --limit 20)" "runbook history --limit 20"
printf '  %8s  %s\n' "$(rss "$RB" history app --json --limit 20)" "runbook history --json --limit 20"
printf '  %8s  %s\n' "$(rss bash -c "tail -n 20 $file | jq -c .")" "tail -n 20 | jq -c ."

# --sha previous over the same N records: the shipped release::previous_sha
# (ledger_history with #{limit: 200, result: "ok", has: "sha"}, read from the
# end), through the real playbook library.
cp "$file" .runbook/ledger/akash-123456.jsonl
cp -r "$OLDPWD/playbooks/lib" lib
printf 'import "lib/release" as release;\nprint(release::previous_sha(123456, #{ hash: () }, (), false));\n' > prev.rhai
echo "--sha previous resolves to: $("$RB" prev.rhai 2>/dev/null | tail -n 1)"
hyperfine --warmup 3 --runs "${RUNS:-30}" -N -n "release::previous_sha over $N records" "$RB prev.rhai"
printf '  %8s  %s\n' "$(rss "$RB" prev.rhai)" "peak RSS (KiB) of release::previous_sha"
