#!/usr/bin/env bash
# Memory: peak RSS (GNU time's maximum resident set size of the whole
# `s3loader tick` process, release) for
#   - a gzip CSV of BENCH_GZIP_MB (1,024) MB of rows, SeaweedFS ->
#     PostgreSQL, BENCH_REPS (3) repetitions (goal < 64 MB);
#   - each hostile input of the safety work alone in a tick (goal < 256 MB):
#     2 GiB of zeros in gzip (one endless record), 2 GiB of newlines in
#     gzip (a decompression bomb, limits.max_decompressed_bytes = 256 MiB
#     as in scheduler/tests/cli.rs), one 200 MB JSON line, and a netCDF
#     file declaring 2^32 forecast times (into moto's DynamoDB).
#
#   tests/services.sh bench/memory.sh     (bench/run.sh runs every case)
set -euo pipefail
source "$(dirname "$0")/common.sh"
: "${S3LOADER_TEST_MOTO:?run through tests/services.sh}"
gzip_mb=${BENCH_GZIP_MB:-1024}

gen_csv 1 $((gzip_mb * 1024 * 1024 / 92)) "$work/gz"
gzip -1 "$work/gz/000000.csv"
plain_mb=$((gzip_mb)); gz_mb=$(du -m "$work/gz/000000.csv.gz" | cut -f1)
bucket="mem-gz-$(date +%s)"; upload "$work/gz" "$bucket"
rm -rf "$work/gz"
declare -a rss secs
for rep in $(seq 1 "$reps"); do
  [ "$rep" -eq 1 ] || back_to_incoming "$bucket"
  export BENCH_PG; BENCH_PG=$(new_db ", note text")
  pg_config "$bucket" "deadline_secs = 3000
lease_ttl_secs = 3600" > "$work/gz.toml"
  t0=$(now)
  /usr/bin/time -f "%M" -o "$work/rss" "$bin" --config "$work/gz.toml" tick --json > "$work/gz.json"
  secs+=("$(since "$t0")")
  rss+=("$(div "$(cat "$work/rss")" 1024)")
  log "gzip CSV: $(psql_ "$BENCH_PG" "SELECT count(*) FROM orders") rows in ${secs[-1]} s, peak RSS ${rss[-1]} MB"
  drop_db "$BENCH_PG"
done

# The hostile inputs, each in a bucket of its own.
mkdir -p "$work/h"
python3 - "$work/h" <<'PY'
import gzip, sys
out = sys.argv[1]
def members(byte, n):  # n bytes as 1 MiB gzip members (as scheduler/tests/cli.rs)
    m = gzip.compress(bytes([byte]) * (1 << 20), 9)
    with open(f"{out}/{'zeros' if byte == 0 else 'bomb'}.csv.gz", "wb") as f:
        for _ in range(n >> 20):
            f.write(m)
members(0, 2 << 30)
members(ord("\n"), 2 << 30)
with open(f"{out}/line.jsonl", "wb") as f:
    f.write(b'{"a":"' + b"x" * 200_000_000 + b'"}\n')
PY
cp tests/data/hostile/huge_time_dimension.nc "$work/h/huge.nc"
table="mem-forecasts-$(date +%s)"
new_forecast_table "$table"
export AWS_ENDPOINT_URL_DYNAMODB="$S3LOADER_TEST_MOTO"
export BENCH_PG; BENCH_PG=$(new_db ", note text")
rows=""
for f in zeros.csv.gz bomb.csv.gz line.jsonl huge.nc; do
  b="mem-h-$(date +%s%N | cut -c1-13)"
  mkdir -p "$work/one"; rm -f "$work/one"/*; mv "$work/h/$f" "$work/one/"
  upload "$work/one" "$b"
  cat > "$work/h.toml" <<TOML
[source]
url = "s3://$b"
[limits]
max_decompressed_bytes = 268435456
[destinations.pg]
kind = "postgres"
url = "env:BENCH_PG"
[destinations.index]
kind = "dynamodb"
[[route]]
pattern = "*.csv*"
destination = "pg"
table = "orders"
[[route]]
pattern = "*.jsonl"
destination = "pg"
table = "orders"
format = "jsonl"
[[route]]
pattern = "*.nc"
destination = "index"
table = "$table"
format = "netcdf"
TOML
  t0=$(now)
  /usr/bin/time -f "%M" -o "$work/rss" "$bin" --config "$work/h.toml" tick --json > "$work/h.json"
  s=$(since "$t0")
  reason=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); f=r["files"][0]; print(f["result"] + ": " + (f.get("reason") or ""))' "$work/h.json")
  log "$f: $reason; $(cat "$work/rss") KB in $s s"
  rows+="| \`$f\` ($(du -h "$work/one/$f" 2>/dev/null | cut -f1 || echo moved)) | $(printf %.0f "$(div "$(cat "$work/rss")" 1024)") | $(printf %.1f "$s") | ${reason//|/\\|} |"$'\n'
done
drop_db "$BENCH_PG"

med_rss=$(printf '%s\n' "${rss[@]}" | median)
section <<MD
## Memory: peak RSS of one \`s3loader tick\` ($(date -u +%Y-%m-%d))

| input | peak RSS, MB | seconds | result |
|---|---|---|---|
| gzip CSV, $plain_mb MB of rows ($gz_mb MB gzip), SeaweedFS → PostgreSQL, median of $reps (raw: $(printf '%s\n' "${rss[@]}" | raw %.1f)MB) | $(printf %.1f "$med_rss") | $(printf '%s\n' "${secs[@]}" | median | xargs printf %.1f) | loaded |
${rows%$'\n'}

Goals: < 64 MB for the gzip CSV, < 256 MB for each hostile input (limits at their defaults but max_decompressed_bytes = 256 MiB).
MD
