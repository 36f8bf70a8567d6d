#!/usr/bin/env bash
# The Met Office forecast index: files per second indexed (release build).
# Measures; asserts nothing. Run it through the services script:
#
#   tests/services.sh bench/netcdf.sh
#   BENCH_NC_COPIES=50 tests/services.sh bench/netcdf.sh
#
# BENCH_NC_COPIES copies (default 20) of the 15 sample files that have
# forecast times go to SeaweedFS under incoming/metoffice/; ticks index them
# into a forecast table on moto's DynamoDB until drained. moto is a Python
# emulator, far slower than DynamoDB: the tick report's load_ms and the
# netCDF-only pass below separate our time from its.
set -euo pipefail
source "$(dirname "$0")/common.sh"
: "${S3LOADER_TEST_MOTO:?run through tests/services.sh}"
copies=${BENCH_NC_COPIES:-20}
bucket="bench-nc-$(date +%s)"
table="bench-forecasts-$(date +%s)"

python3 - "$work" "$bucket" "$table" "$copies" <<'PY'
import boto3, botocore.config, os, sys
from concurrent.futures import ThreadPoolExecutor
work, bucket, table, copies = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
src = "tests/data/metoffice"
names = [n for n in sorted(os.listdir(src)) if n.endswith(".nc") and n != "ukvx_landmask.nc"]
s3 = boto3.client("s3", endpoint_url=os.environ["S3LOADER_TEST_SEAWEEDFS"], region_name="us-east-1",
                  config=botocore.config.Config(s3={"addressing_style": "path"}, max_pool_connections=32))
s3.create_bucket(Bucket=bucket)
jobs = [(os.path.join(src, n), f"incoming/metoffice/{c:04d}/{n}") for c in range(copies) for n in names]
with ThreadPoolExecutor(32) as ex:
    list(ex.map(lambda j: s3.upload_file(j[0], bucket, j[1]), jobs))
ddb = boto3.client("dynamodb", endpoint_url=os.environ["S3LOADER_TEST_MOTO"], region_name="us-east-1")
ddb.create_table(
    TableName=table, BillingMode="PAY_PER_REQUEST",
    AttributeDefinitions=[{"AttributeName": "forecast_period", "AttributeType": "N"},
                          {"AttributeName": "forecast_time_key", "AttributeType": "S"},
                          {"AttributeName": "forecast_time", "AttributeType": "S"}],
    KeySchema=[{"AttributeName": "forecast_period", "KeyType": "HASH"},
               {"AttributeName": "forecast_time_key", "KeyType": "RANGE"}],
    GlobalSecondaryIndexes=[{"IndexName": "forecast_time-index",
        "KeySchema": [{"AttributeName": "forecast_time", "KeyType": "HASH"},
                      {"AttributeName": "forecast_period", "KeyType": "RANGE"}],
        "Projection": {"ProjectionType": "ALL"}}])
print(f"uploaded {len(jobs)} files; table {table}")
PY

cat > "$work/nc.toml" <<TOML
[source]
url = "s3://$bucket"
[tick]
max_files = 1000
batch_max_files = 25
concurrency = 4
move_concurrency = 32
[destinations.index]
kind = "dynamodb"
[[route]]
pattern = "metoffice/**/*.nc"
destination = "index"
table = "$table"
format = "netcdf"
TOML

export AWS_ENDPOINT_URL_S3="$S3LOADER_TEST_SEAWEEDFS" AWS_ENDPOINT_URL_DYNAMODB="$S3LOADER_TEST_MOTO"
total=0
start=$(date +%s.%N)
while :; do
  r=$(/usr/bin/time -f "  s3loader cpu: %U s user, %S s sys, %M KB max RSS" "$bin" --config "$work/nc.toml" tick --json)
  read -r sel loaded failed left ms load_ms rows < <(echo "$r" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["selected"], r["loaded"], r["failed"], r["backlog"]["files"]-r["loaded"]-r["failed"], r["duration_ms"], r["load_ms"], r["rows"])')
  echo "  tick: $loaded indexed ($rows items), $failed failed in $ms ms (load $load_ms)"
  total=$((total + loaded))
  [ "$left" -le 0 ] && break
done
secs=$(echo "$(date +%s.%N) - $start" | bc -l)
printf "netcdf index: %d files in %.2f s = %.1f files/s (SeaweedFS -> moto DynamoDB, list + read + index + move)\n" \
  "$total" "$secs" "$(echo "$total / $secs" | bc -l)"
