#!/usr/bin/env bash
# A huge backlog: BENCH_KEYS (200,000) small CSV files on SeaweedFS, drained
# into PostgreSQL by `s3loader tick`, release build. Measures; asserts
# nothing. Run it through the services script:
#
#   tests/services.sh bench/backlog.sh
#   BENCH_KEYS=20000 BENCH_TICKS=2 tests/services.sh bench/backlog.sh
#
# Prints, for BENCH_TICKS ticks with tick.list_max_secs = 10 (the default)
# and then 1: the time to first dispatch (the tick's listing time), the
# backlog it saw (a lower bound once listing is cut short), files loaded and
# files/s over the whole tick; then how long one full listing of the
# backlog takes (`s3loader status`), which every tick spent before listing
# was bounded.
set -euo pipefail
source "$(dirname "$0")/common.sh"
keys=${BENCH_KEYS:-200000}
ticks=${BENCH_TICKS:-3}
bucket="backlog-$(date +%s)"
export BENCH_PG; BENCH_PG=$(new_db)

echo "putting $keys objects into s3://$bucket/incoming/ ..." >&2
started=$(date +%s.%N)
python3 - "$S3LOADER_TEST_SEAWEEDFS" "$bucket" "$keys" <<'PY'
import sys, boto3, concurrent.futures as cf
from botocore.config import Config
endpoint, bucket, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  config=Config(s3={"addressing_style": "path"}, max_pool_connections=64,
                                request_checksum_calculation="when_required"))
s3.create_bucket(Bucket=bucket)
def put(i):
    body = f"id,customer,amount,ordered_at\n{i},c{i % 97},1.00,2026-11-01T00:00:00Z\n"
    s3.put_object(Bucket=bucket, Key=f"incoming/orders/{i // 1000:04d}/{i:07d}.csv", Body=body)
with cf.ThreadPoolExecutor(64) as pool:
    for _ in pool.map(put, range(n), chunksize=256):
        pass
PY
echo "put in $(echo "$(date +%s.%N) - $started" | bc) s" >&2


echo
echo "| list_max_secs | tick | time to first dispatch (list) | backlog seen | complete | loaded | tick duration | files/s |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
for budget in 10 1; do
  pg_config "$bucket" "max_files = 1000
list_max_secs = $budget" >"$work/c.toml"
  for t in $(seq 1 "$ticks"); do
    "$bin" --config "$work/c.toml" tick --json >"$work/r.json"
    python3 - "$work/r.json" "$t" "$budget" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); t = sys.argv[2]
d = r["duration_ms"] / 1000
print(f"| {sys.argv[3]} s | {t} | {r['list_ms'] / 1000:.2f} s | {r['backlog']['files']} | {r['backlog']['complete']} | "
      f"{r['loaded']} | {d:.2f} s | {r['loaded'] / d:.0f} |")
PY
  done
done
started=$(date +%s.%N)
"$bin" --config "$work/c.toml" status --json >"$work/s.json"
echo
echo "one full listing (s3loader status): $(python3 -c "import json;print(json.load(open('$work/s.json'))['backlog']['files'])") keys in $(echo "$(date +%s.%N) - $started" | bc) s"
