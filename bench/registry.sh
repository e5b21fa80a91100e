#!/usr/bin/env bash
# Registry figures, one run against one local registry: the Debian
# `docker-registry` (distribution 2.8.2) on 127.0.0.1 behind a Bearer-token
# issuer (bench/token_issuer.py), filled by bench/registry_setup.py with 50
# images of one repository (tags = 50 distinct 40-hex SHAs) and a cosign
# signature of the first.
#
# 1. 100 tag checks (the 50 present tags and 50 absent ones), whole
#    processes in one hyperfine run: `runbook bench/tags.rhai`
#    (ghcr_has_tags), a bash loop of `skopeo inspect --raw`, a bash loop of
#    `curl -sI` with a token fetched once; plus the in-process floor
#    (benches/registry.rs: 100 keep-alive HEADs with reqwest) and the token
#    requests the issuer saw during one runbook run.
# 2. One signature check of IMAGE@DIGEST: `runbook bench/verify.rhai`
#    (cosign_soft_verify) vs the sigstore crate (bench/sigstore-peer, built
#    here only), the registry requests each made (counted in the registry's
#    access log) and their times in one hyperfine run.
#
# Needs docker-registry, skopeo, hyperfine, curl, jq (Debian) and installs
# the pinned Python `cryptography` into the bench venv. Every server binds
# 127.0.0.1 and stops by itself after 30 minutes at the latest; the trap
# stops them and removes the temp dir. RUNS (default 10) and SIG_RUNS
# (default 30) set the hyperfine runs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

for tool in docker-registry skopeo hyperfine curl jq; do
  command -v "$tool" >/dev/null || { echo "bench/registry.sh needs $tool (apt-get install -y docker-registry skopeo hyperfine curl jq)" >&2; exit 1; }
done
venv="${RUNBOOK_BENCH_VENV:-$HOME/.cache/runbook-bench-venv}"
want_crypto=$(grep '^cryptography==' bench/requirements.txt | cut -d= -f3)
if ! "$venv/bin/python" -c "import cryptography, sys; sys.exit(cryptography.__version__ != '$want_crypto')" 2>/dev/null; then
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r bench/requirements.txt
fi
py="$venv/bin/python"

target="${CARGO_TARGET_DIR:-target}"
cargo build --release --quiet
# RUNBOOK_BIN measures another build (e.g. the previous main's) in the same setup;
# BEFORE=/path/to/an/older/runbook adds it as a row beside this build's, for
# before/after figures from one run.
rb="${RUNBOOK_BIN:-$target/release/runbook}"
echo "building the in-process floor (cargo bench --bench registry --no-run) and bench/sigstore-peer (sigstore crate; minutes on a cold cache)..." >&2
cargo bench --bench registry --no-run --quiet
CARGO_TARGET_DIR=bench/sigstore-peer/target cargo build --release --quiet --manifest-path bench/sigstore-peer/Cargo.toml
peer=bench/sigstore-peer/target/release/sigstore-peer

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the token issuer and the registry --------------------------------------
"$py" bench/token_issuer.py "$tmp" --lifetime 1800 &
pids+=($!)
for _ in $(seq 200); do [ -s "$tmp/issuer.port" ] && break; sleep 0.05; done
[ -s "$tmp/issuer.port" ] || { echo "the token issuer did not start" >&2; exit 1; }
realm="http://127.0.0.1:$(cat "$tmp/issuer.port")/token"

port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$tmp/registry.yml" <<EOF
version: 0.1
log: {level: error}
storage:
  filesystem: {rootdirectory: $tmp/data}
  cache: {blobdescriptor: inmemory}
http: {addr: 127.0.0.1:$port, secret: bench-secret}
auth:
  token:
    realm: $realm
    service: bench-registry
    issuer: bench-issuer
    rootcertbundle: $tmp/rootbundle.pem
EOF
# stdout is the access log (one combined-format line per request).
timeout 1800 docker-registry serve "$tmp/registry.yml" >"$tmp/access.log" 2>"$tmp/registry.err" &
pids+=($!)
up=
for _ in $(seq 200); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v2/")" = 401 ] && { up=1; break; }
  sleep 0.05
done
[ -n "$up" ] || { echo "the registry did not start:" >&2; cat "$tmp/registry.err" >&2; exit 1; }

host="127.0.0.1:$port"
repo=bench/app
image="$host/$repo"
"$py" bench/registry_setup.py "$host" "$repo" "$realm" \
  tests/data/cosign/lab-generated-distribution-2.8.2/TEST-ONLY-signer.key "$tmp" >&2
jq -r '.[]' "$tmp/tags.json" >"$tmp/tags.txt"
digest=$(jq -r .digest "$tmp/signed.json")
unsigned_digest=$(jq -r .unsigned_digest "$tmp/signed.json")
present=$(wc -l <"$tmp/present.txt")

# --- the peers of the tag check ---------------------------------------------
cat >"$tmp/skopeo.sh" <<'EOF'
# 100 tag checks, one `skopeo inspect --raw` process each (skopeo does the
# token challenge itself, anonymously).
set -u
image=$1 tags=$2 want=$3
n=0 a=0
while read -r t; do
  if err=$(skopeo inspect --raw --tls-verify=false "docker://$image:$t" 2>&1 >/dev/null); then
    n=$((n + 1))
  else
    case $err in *"manifest unknown"*) a=$((a + 1)) ;; *) echo "$t: $err" >&2; exit 1 ;; esac
  fi
done <"$tags"
[ "$n" = "$want" ] || { echo "skopeo loop: $n present, want $want" >&2; exit 1; }
EOF
cat >"$tmp/curl.sh" <<'EOF'
# 100 tag checks, one `curl -sI` process each, with a token fetched once
# (the realm known in advance: no challenge round trip).
set -u
host=$1 repo=$2 realm=$3 tags=$4 want=$5
tok=$(curl -sf "$realm?service=bench-registry&scope=repository:$repo:pull" | jq -r .token)
n=0
while read -r t; do
  code=$(curl -sI -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $tok" \
    -H 'Accept: application/vnd.oci.image.index.v1+json' \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    -H 'Accept: application/vnd.docker.distribution.manifest.list.v2+json' \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://$host/v2/$repo/manifests/$t")
  case $code in 200) n=$((n + 1)) ;; 404) ;; *) echo "$t: HTTP $code" >&2; exit 1 ;; esac
done <"$tags"
[ "$n" = "$want" ] || { echo "curl loop: $n present, want $want" >&2; exit 1; }
EOF

cmd_rb="$rb bench/tags.rhai --image $image --tags-file $tmp/tags.json --expect-present $present"
cmd_skopeo="bash $tmp/skopeo.sh $image $tmp/tags.txt $present"
cmd_curl="bash $tmp/curl.sh $host $repo $realm $tmp/tags.txt $present"
export NO_COLOR=1

# Once each, outside the timing: they must agree (each asserts 50 present),
# and the issuer's and the registry's counts for one runbook run.
clients() { grep -c '^client' "$tmp/tokens.log" || true; }
lines() { wc -l <"$tmp/access.log"; }
$cmd_skopeo && $cmd_curl
t0=$(clients) a0=$(lines)
$cmd_rb 2>"$tmp/rb-tags.log"
sleep 0.2
tags_tokens=$(($(clients) - t0))
sed -n "$((a0 + 1)),\$p" "$tmp/access.log" >"$tmp/access-tags.log"

# --- 1. hyperfine: 100 tag checks --------------------------------------------
before_tags=()
[ -n "${BEFORE:-}" ] && before_tags=(-n runbook-before "${cmd_rb/#$rb/$BEFORE}")
hyperfine -N --warmup 2 --runs "${RUNS:-10}" --export-json "$tmp/hf-tags.json" \
  -n runbook "$cmd_rb" "${before_tags[@]}" -n skopeo-loop "$cmd_skopeo" -n curl-loop "$cmd_curl" >/dev/null

# --- the in-process floor ------------------------------------------------------
RUNBOOK_BENCH_IMAGE=$image RUNBOOK_BENCH_TAGS=$tmp/tags.json RUNBOOK_BENCH_PRESENT=$present \
  CRITERION_HOME="$tmp/criterion" cargo bench --quiet --bench registry >"$tmp/criterion.log" 2>&1 \
  || { cat "$tmp/criterion.log" >&2; exit 1; }

# --- 2. the signature check -------------------------------------------------
key="$tmp/signer.pub"
wrong=tests/data/cosign/lab-generated-distribution-2.8.2/wrong-key.pub
cmd_rb_sig="$rb bench/verify.rhai --image $image --digest $digest --key $key"
cmd_peer="$peer $image@$digest $key"
# Both must say verified for the signed image, and not for a wrong key or an
# unsigned image (so neither passes by default).
t0=$(clients) a0=$(lines)
[ "$($cmd_rb_sig 2>"$tmp/rb-sig.log")" = verified ] || { echo "runbook did not verify $image@$digest:" >&2; cat "$tmp/rb-sig.log" >&2; exit 1; }
sleep 0.2
rb_sig_tokens=$(($(clients) - t0))
sed -n "$((a0 + 1)),\$p" "$tmp/access.log" >"$tmp/access-rb-sig.log"
t0=$(clients) a0=$(lines)
[ "$($cmd_peer)" = verified ] || { echo "the sigstore peer did not verify $image@$digest" >&2; exit 1; }
sleep 0.2
peer_tokens=$(($(clients) - t0))
sed -n "$((a0 + 1)),\$p" "$tmp/access.log" >"$tmp/access-peer.log"
while read -r ref pub; do
  if $rb bench/verify.rhai --image "${ref%@*}" --digest "${ref#*@}" --key "$pub" >/dev/null 2>&1; then
    echo "runbook verified $ref with $pub" >&2; exit 1
  fi
  if "$peer" "$ref" "$pub" >/dev/null 2>&1; then echo "the sigstore peer verified $ref with $pub" >&2; exit 1; fi
done <<EOF
$image@$digest $wrong
$image@$unsigned_digest $key
EOF

before_sig=()
[ -n "${BEFORE:-}" ] && before_sig=(-n runbook-before "${cmd_rb_sig/#$rb/$BEFORE}")
hyperfine -N --warmup 3 --runs "${SIG_RUNS:-30}" --export-json "$tmp/hf-sig.json" \
  -n runbook "$cmd_rb_sig" "${before_sig[@]}" -n sigstore-rs "$cmd_peer" >/dev/null

# --- the report ---------------------------------------------------------------
"$py" - "$tmp" "$tags_tokens" "$rb_sig_tokens" "$peer_tokens" "$present" "$image" "$digest" <<'PY'
import json, os, re, sys
tmp, tags_tokens, rb_sig_tokens, peer_tokens, present, image, digest = sys.argv[1:8]
tags_tokens, rb_sig_tokens, peer_tokens = int(tags_tokens), int(rb_sig_tokens), int(peer_tokens)

def access(name):
    reqs = []
    for line in open(os.path.join(tmp, name)):
        m = re.search(r'"(\S+) (\S+) HTTP/[\d.]+" (\d+)', line)
        if m:
            reqs.append((m.group(1), m.group(2), int(m.group(3))))
    return reqs

def crit(name):
    p = os.path.join(tmp, "criterion", "registry_floor", name, "new", "estimates.json")
    return json.load(open(p))["median"]["point_estimate"] / 1e9

res = {r["command"]: r for r in json.load(open(os.path.join(tmp, "hf-tags.json")))["results"]}
n = len(json.load(open(os.path.join(tmp, "tags.json"))))
base = res["runbook"]["median"]
print(f"\n## {n} tag checks ({present} present), {image}, Bearer-token auth")
print(f"{'what':44} {'median':>10} {'per check':>10} {'vs runbook':>11}")
rows = [(name, res[name]["median"]) for name in ["runbook", "runbook-before", "skopeo-loop", "curl-loop"] if name in res]
rows += [("in-process floor: sequential keep-alive HEADs", crit("sequential_keepalive")),
         ("in-process floor: 16 concurrent, keep-alive", crit("concurrent16_keepalive"))]
for name, med in rows:
    label = {"runbook": "runbook bench/tags.rhai (ghcr_has_tags)",
             "skopeo-loop": "bash loop of skopeo inspect --raw",
             "runbook-before": "the same, BEFORE's build",
             "curl-loop": "bash loop of curl -sI, token fetched once"}.get(name, name)
    print(f"{label:44} {med*1000:8.1f}ms {med*1000/n:8.2f}ms {med/base:10.2f}x")
reqs = access("access-tags.log")
print(f"token requests the issuer saw during one runbook run: {tags_tokens}")
print(f"registry requests during that run: {len(reqs)} "
      f"({sum(1 for r in reqs if r[2] == 401)} answered 401, {sum(1 for r in reqs if r[2] == 200)} 200, "
      f"{sum(1 for r in reqs if r[2] == 404)} 404)")
skopeo_x = res["skopeo-loop"]["median"] / base
floor_x = base / crit("sequential_keepalive")
ok = lambda c: "met" if c else "MISSED"
print(f"target >= 10x faster than the skopeo loop: {skopeo_x:.1f}x, {ok(skopeo_x >= 10)}")
print(f"target within 2x of the in-process keep-alive floor (sequential): {floor_x:.2f}x, {ok(floor_x <= 2)}"
      f" (vs the 16-concurrent floor: {base / crit('concurrent16_keepalive'):.2f}x)")
print(f"target exactly 1 token request per repository per run: {tags_tokens}, {ok(tags_tokens == 1)}")

sig = {r["command"]: r for r in json.load(open(os.path.join(tmp, "hf-sig.json")))["results"]}
print(f"\n## one signature check of {image}@{digest[:19]}… (cosign .sig layout, key), both verified")
print(f"{'what':48} {'median':>10} {'mean ± sd':>18} {'registry requests':>18} {'401s':>5} {'tokens':>7}")
for name, log, tok in [("runbook", "access-rb-sig.log", rb_sig_tokens), ("sigstore-rs", "access-peer.log", peer_tokens)]:
    r, a = sig[name], access(log)
    label = {"runbook": "runbook bench/verify.rhai (cosign_soft_verify)", "sigstore-rs": "sigstore 0.15 (bench/sigstore-peer)"}[name]
    print(f"{label:48} {r['median']*1000:8.1f}ms {r['mean']*1000:9.1f} ± {r['stddev']*1000:5.1f}ms {len(a):18} "
          f"{sum(1 for x in a if x[2] == 401):5} {tok:7}")
for name, log in [("runbook", "access-rb-sig.log"), ("sigstore-rs", "access-peer.log")]:
    short = lambda p: p.split("/", 4)[-1][:30] if p.count("/") > 3 else p
    print(f"  {name}: " + ", ".join(f"{m} {short(p)} {s}" for m, p, s in access(log)))
rb_after = sum(1 for x in access("access-rb-sig.log") if x[2] != 401)
ratio = sig["sigstore-rs"]["median"] / sig["runbook"]["median"]
print(f"target <= 3 registry requests per verification after the token: {rb_after}, {ok(rb_after <= 3)}")
print(f"target >= 5x faster than the sigstore crate: {ratio:.1f}x, {ok(ratio >= 5)}")
if "runbook-before" in sig:
    b = sig["runbook-before"]
    print(f"BEFORE's build, same check: {b['median']*1000:.1f}ms (mean {b['mean']*1000:.1f} ± {b['stddev']*1000:.1f}ms), "
          f"this build {sig['runbook']['median'] / b['median']:.2f}x its time")
PY
