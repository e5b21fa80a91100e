#!/usr/bin/env bash
# The same check as bench/validate.rhai, in bash, as CI glue writes it.
set -euo pipefail
ep="provider.europlots.com:31877"
host="${ep%:*}"
port="${ep##*:}"
[[ "$ep" == *:* ]] || { echo "no :port" >&2; exit 1; }
[[ "$host" =~ ^[a-z0-9.-]+$ ]] || { echo "bad host" >&2; exit 1; }
[[ "$host" =~ [a-z-] ]] || { echo "bare dotted number" >&2; exit 1; }
[[ "$port" =~ ^[0-9]+$ ]] || { echo "port not an integer" >&2; exit 1; }
(( port >= 1024 && port <= 65535 )) || { echo "port out of range" >&2; exit 1; }
