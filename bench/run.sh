#!/usr/bin/env bash
# Benchmarks against the design's targets (DESIGN.md, "Performance targets").
# Measures; asserts nothing. Run it through the services script:
#
#   tests/services.sh bench/run.sh            # small files + a 1 GiB gzip file
#   BENCH_FILES=500 BENCH_LARGE_MB=100 tests/services.sh bench/run.sh
#   BENCH_LARGE_MB=0 ...                      # small files only
#
# 1. small files: BENCH_FILES CSV files of ~2 KB on SeaweedFS, loaded into
#    PostgreSQL and moved, tick after tick until drained: files/s for the
#    whole cycle (list, load, move). Target: >= 3x dlt's 120 files/s.
# 2. large file: one gzip CSV of BENCH_LARGE_MB MB (uncompressed) on
#    SeaweedFS into PostgreSQL in one tick: MB/s against `psql \copy` of the
#    same rows from local disk (target >= 0.85x), and peak RSS (target
#    < 64 MB).
set -euo pipefail
source "$(dirname "$0")/common.sh"
files=${BENCH_FILES:-2000}
large_mb=${BENCH_LARGE_MB:-1024}


python3 - "$work" "$files" "$large_mb" <<'PY'
import gzip, os, sys, random
work, files, large_mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(f"{work}/small", exist_ok=True)
header = "id,customer,amount,ordered_at,note\n"
def row(i):
    return f"{i},customer-{i % 977},{(i * 37) % 100000 / 100:.2f},2026-11-01T{i % 24:02d}:{i % 60:02d}:00Z,note for row {i} with some padding text\n"
for f in range(files):
    with open(f"{work}/small/{f:06d}.csv", "w") as out:
        out.write(header)
        for i in range(f * 20, f * 20 + 20):
            out.write(row(i))
target = large_mb * 1024 * 1024
if target == 0:
    sys.exit(0)
with open(f"{work}/large.csv", "w") as plain:
    plain.write(header)
    i, size = 0, 0
    while size < target:
        chunk = "".join(row(j) for j in range(i, i + 10000))
        plain.write(chunk)
        size += len(chunk)
        i += 10000
PY
[ "$large_mb" = 0 ] || gzip -1 -k "$work/large.csv"

upload() { # dir-or-file, bucket, key-prefix
  python3 - "$@" <<'PY'
import boto3, botocore.config, os, sys
from concurrent.futures import ThreadPoolExecutor
src, bucket, prefix = sys.argv[1:4]
s3 = boto3.client("s3", endpoint_url=os.environ["S3LOADER_TEST_SEAWEEDFS"], config=botocore.config.Config(s3={"addressing_style": "path"}, max_pool_connections=32))
try: s3.create_bucket(Bucket=bucket)
except s3.exceptions.BucketAlreadyOwnedByYou: pass
if os.path.isdir(src):
    names = sorted(os.listdir(src))
    with ThreadPoolExecutor(32) as ex:
        list(ex.map(lambda n: s3.upload_file(os.path.join(src, n), bucket, prefix + n), names))
else:
    s3.upload_file(src, bucket, prefix + os.path.basename(src))
PY
}

drain() { # config file: ticks until incoming/ is empty; prints seconds
  local start end
  start=$(date +%s.%N)
  while :; do
    local r
    r=$(/usr/bin/time -f "  s3loader cpu: %U s user, %S s sys, %M KB max RSS" "$bin" --config "$1" tick --json)
    echo "$r" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("  tick: %d files in %d ms (list %d, load %d, move %d)" % (r["selected"], r["duration_ms"], r["list_ms"], r["load_ms"], r["move_ms"]))' >&2
    [ "$(echo "$r" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["backlog"]["files"] - r["loaded"] - r["failed"])')" -le 0 ] && break
  done
  end=$(date +%s.%N)
  echo "$end - $start" | bc -l
}

echo "== small files: $files x ~2 KB CSV, SeaweedFS -> PostgreSQL, with moves"
bucket="bench-small-$(date +%s)"
upload "$work/small" "$bucket" "incoming/"
export BENCH_PG; BENCH_PG=$(new_db ", note text")
pg_config "$bucket" "max_files = 1000
batch_max_files = 100
concurrency = 4
move_concurrency = 32" > "$work/small.toml"
secs=$(drain "$work/small.toml")
loaded=$(psql_ "$BENCH_PG" "SELECT count(*) FROM s3loader_ledger")
printf "small files: %d files in %.2f s = %.0f files/s (dlt: 120 files/s; target >= 360)\n" "$loaded" "$secs" "$(echo "$loaded / $secs" | bc -l)"

[ "$large_mb" = 0 ] && exit 0
echo "== large file: $(du -m "$work/large.csv" | cut -f1) MB CSV ($(du -m "$work/large.csv.gz" | cut -f1) MB gzip), SeaweedFS -> PostgreSQL"
bucket="bench-large-$(date +%s)"
upload "$work/large.csv.gz" "$bucket" "incoming/"
BENCH_PG=$(new_db ", note text")
pg_config "$bucket" "deadline_secs = 3000
lease_ttl_secs = 3600" > "$work/large.toml"
/usr/bin/time -v -o "$work/time.txt" "$bin" --config "$work/large.toml" tick --json > "$work/large.json"
wall=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["duration_ms"] / 1000)' "$work/large.json")
rss_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.txt")
mb=$(du -m "$work/large.csv" | cut -f1)
rows=$(psql_ "$BENCH_PG" "SELECT count(*) FROM orders")
BENCH_PG2=$(new_db ", note text")
start=$(date +%s.%N)
psql "$BENCH_PG2" -v ON_ERROR_STOP=1 -qc "\\copy orders FROM '$work/large.csv' WITH (FORMAT csv, HEADER true)"
psql_secs=$(echo "$(date +%s.%N) - $start" | bc -l)
printf "large file: %d rows, %.1f s = %.1f MB/s; psql \\\\copy from disk: %.1f s = %.1f MB/s; ratio %.2f (target >= 0.85)\n" \
  "$rows" "$wall" "$(echo "$mb / $wall" | bc -l)" "$psql_secs" "$(echo "$mb / $psql_secs" | bc -l)" "$(echo "$psql_secs / $wall" | bc -l)"
printf "large file: peak RSS %.1f MB (target < 64 MB)\n" "$(echo "$rss_kb / 1024" | bc -l)"
