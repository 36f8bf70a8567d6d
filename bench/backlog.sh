#!/usr/bin/env bash
# A huge backlog: BENCH_KEYS (1,000,000) small CSV files on SeaweedFS,
# put by loader/examples/s3_backlog.rs (not timed). BENCH_REPS (3)
# repetitions, the median, of:
#   listing pace   one full listing of incoming/, keys/s (the three take
#                  turns going first):
#                  s3loader (`s3loader status`, which lists every page);
#                  `aws s3api list-objects-v2` (the CLI pages through all);
#                  raw ListObjectsV2 requests over one kept-alive
#                  connection, reading only the continuation token (the
#                  server's pace; the goal's reference). Signed (botocore's
#                  SigV4 signer, no SDK): SeaweedFS refuses anonymous
#                  requests once it has an identity, as here;
#   first dispatch `s3loader tick` with the default tick.list_max_secs (8)
#                  into PostgreSQL: the tick's listing time, after which it
#                  dispatches the oldest max_files it saw;
#   drain          files/s over that tick (list + load + move of 1,000
#                  files), beside the small-files case's rate.
#
#   tests/services.sh bench/backlog.sh     (bench/run.sh runs every case)
set -euo pipefail
source "$(dirname "$0")/common.sh"
keys=${BENCH_KEYS:-1000000}
peers=$(bench/peers.sh)
cargo build --release -q -p s3loader-loader --example s3_backlog
bucket="backlog-$(date +%s)"
log "putting $keys objects into s3://$bucket/incoming/ ..."
log "$("$CARGO_TARGET_DIR/release/examples/s3_backlog" "$bucket" "$keys" 128)"
export BENCH_PG; BENCH_PG=$(new_db ", note text")
pg_config "$bucket" "" > "$work/c.toml"
pg_config "$bucket" "max_files = 10000
move_concurrency = 32" > "$work/c10k.toml"

raw_list() {
  python3 - "$S3LOADER_TEST_SEAWEEDFS" "$bucket" <<'PY'
import http.client, os, re, sys, urllib.parse
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
endpoint, bucket = sys.argv[1], sys.argv[2]
creds = Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
host = urllib.parse.urlparse(endpoint).netloc
conn = http.client.HTTPConnection(host)
token, n = None, 0
while True:
    q = {"list-type": "2", "prefix": "incoming/", "max-keys": "1000"}
    if token:
        q["continuation-token"] = token
    path = f"/{bucket}?" + urllib.parse.urlencode(q, quote_via=urllib.parse.quote)
    req = AWSRequest("GET", endpoint + path)
    S3SigV4Auth(creds, "s3", "us-east-1").add_auth(req)
    conn.request("GET", path, headers=dict(req.headers))
    r = conn.getresponse()
    body = r.read()
    if r.status != 200:
        sys.exit(f"raw ListObjectsV2: HTTP {r.status}: {body[:300]!r}")
    n += body.count(b"<Key>")
    m = re.search(rb"<NextContinuationToken>([^<]*)</NextContinuationToken>", body)
    if not m:
        break
    token = m.group(1).decode()
print(n)
PY
}

declare -A r
for rep in $(seq 1 "$reps"); do
  echo "== backlog, repetition $rep of $reps" >&2
  # The three listings take turns going first: the first listing of a
  # repetition may warm (or find cold) SeaweedFS's filer.
  order=(s3l cli raw s3l cli)
  for who in "${order[@]:$(((rep - 1) % 3)):3}"; do
    t0=$(now)
    case $who in
      s3l) n=$("$bin" --config "$work/c.toml" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["backlog"]["files"])') ;;
      cli) n=$("$peers/aws" --endpoint-url "$S3LOADER_TEST_SEAWEEDFS" s3api list-objects-v2 --bucket "$bucket" --prefix incoming/ --query 'Contents[].[Key]' --output text | wc -l) ;;
      raw) n=$(raw_list) ;;
    esac
    s=$(since "$t0")
    log "listing ($who): $n keys in $s s"; r[$who]+="$(div "$n" "$s")"$'\n'
  done
  t0=$(now)
  "$bin" --config "$work/c.toml" tick --json > "$work/t.json"
  s=$(since "$t0")
  read -r list_s loaded seen complete < <(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["list_ms"] / 1000, r["loaded"], r["backlog"]["files"], r["backlog"]["complete"])' "$work/t.json")
  log "tick: listed $seen keys (complete: $complete) in $list_s s, loaded $loaded, $s s in all"
  r[first]+="$list_s"$'\n'; r[drain]+="$(div "$loaded" "$s")"$'\n'; r[seen]+="$seen"$'\n'
  # The same with a tick's worth of files (max_files = 10,000).
  t0=$(now)
  "$bin" --config "$work/c10k.toml" tick --json > "$work/t.json"
  s=$(since "$t0")
  loaded=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["loaded"])' "$work/t.json")
  log "tick with max_files = 10000: loaded $loaded in $s s"
  r[drain10k]+="$(div "$loaded" "$s")"$'\n'
done
drop_db "$BENCH_PG"

m() { printf '%s' "${r[$1]}" | median; }
s3l=$(m s3l); cli=$(m cli); raw=$(m raw)
section <<MD
## Huge backlog: $keys keys on SeaweedFS ($(date -u +%Y-%m-%d), median of $reps)

| | median | raw (each repetition) |
|---|---|---|
| listing: s3loader (\`status\`, every page), keys/s | $(printf %.0f "$s3l") | $(printf '%s' "${r[s3l]}" | raw %.0f) |
| listing: \`aws s3api list-objects-v2\`, keys/s | $(printf %.0f "$cli") | $(printf '%s' "${r[cli]}" | raw %.0f) |
| listing: raw ListObjectsV2, signed, one connection (the server's pace), keys/s | $(printf %.0f "$raw") | $(printf '%s' "${r[raw]}" | raw %.0f) |
| tick: time to first dispatch (its listing, the default list_max_secs = 8), s | $(printf %.2f "$(m first)") | $(printf '%s' "${r[first]}" | raw %.2f) |
| tick: keys it listed before dispatching | $(printf %.0f "$(m seen)") | $(printf '%s' "${r[seen]}" | raw %.0f) |
| tick: files/s over the whole tick (defaults: 1,000 files listed, loaded, moved) | $(printf %.0f "$(m drain)") | $(printf '%s' "${r[drain]}" | raw %.0f) |
| tick: files/s over the whole tick (max_files = 10,000, move_concurrency = 32) | $(printf %.0f "$(m drain10k)") | $(printf '%s' "${r[drain10k]}" | raw %.0f) |

Ratios: s3loader listing / raw = $(printf %.2f "$(div "$s3l" "$raw")") (goal ≥ 0.8); s3loader listing / aws s3api = $(printf %.1f "$(div "$s3l" "$cli")")×. First dispatch goal: ≤ 10 s. The drain rate compares with the small-files case's files/s above (every tick here carries a listing of up to list_max_secs before its first dispatch).
MD
