# Sourced by every benchmark case: the repository root, the services it
# needs, a release build of the CLI ($bin), a scratch directory ($work,
# removed on exit), PostgreSQL helpers, and the helpers that turn
# repetitions into a RESULTS.md section. Benchmarks measure; they assert
# nothing, and their goals are the benchmark's, never a test's.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
: "${S3LOADER_TEST_SEAWEEDFS:?run through tests/services.sh}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/s3loader-target}"
cargo build --release -q -p s3loader
bin="$CARGO_TARGET_DIR/release/s3loader"
work=$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/s3loader-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
export AWS_ENDPOINT_URL_S3="$S3LOADER_TEST_SEAWEEDFS"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-x}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-x}"
export AWS_REGION="${AWS_REGION:-us-east-1}"
pg_admin="${S3LOADER_TEST_PG:-}"
reps=${BENCH_REPS:-3}
results_md=${BENCH_RESULTS:-bench/RESULTS.md}

psql_() { psql "$1" -v ON_ERROR_STOP=1 -qAt -c "$2"; }
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc -l; }
div() { echo "$1 / $2" | bc -l; }
# The median of the numbers on stdin, one per line.
median() { sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
# "raw" column: the numbers on stdin, formatted with $1 (e.g. %.0f).
raw() { xargs printf "$1 "; }
log() { echo "  $*" >&2; }

# Prints a connection string to a fresh database with an orders table
# (plus any extra column definitions given, e.g. ", note text").
new_db() {
  local db="bench_$(date +%s%N)"
  psql_ "$pg_admin" "CREATE DATABASE $db" >/dev/null
  local url="${pg_admin/dbname=postgres/dbname=$db}"
  psql_ "$url" "CREATE TABLE orders (id bigint, customer text, amount numeric(12,2), ordered_at timestamptz${1:-})" >/dev/null
  echo "$url"
}
# Drops a database new_db made (large cases would fill the disk).
drop_db() { psql_ "$pg_admin" "DROP DATABASE IF EXISTS ${1##*dbname=}" >/dev/null; }

# A config that loads every key of bucket $1 into PostgreSQL (env:BENCH_PG)
# table orders, with the [tick] lines $2.
pg_config() {
  cat <<TOML
[source]
url = "s3://$1"
[tick]
$2
[destinations.pg]
kind = "postgres"
url = "env:BENCH_PG"
[[route]]
pattern = "**"
destination = "pg"
table = "orders"
TOML
}

# The benchmark's CSV rows (id,customer,amount,ordered_at,note): $1 files
# of $2 rows each into directory $3, named 000000.csv ...
gen_csv() {
  python3 - "$@" <<'PY'
import os, sys
files, rows, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
os.makedirs(out, exist_ok=True)
header = "id,customer,amount,ordered_at,note\n"
def row(i):
    return f"{i},customer-{i % 977},{(i * 37) % 100000 / 100:.2f},2026-11-01T{i % 24:02d}:{i % 60:02d}:00Z,note for row {i} with some padding text\n"
for f in range(files):
    with open(f"{out}/{f:06d}.csv", "w") as o:
        o.write(header)
        for start in range(f * rows, (f + 1) * rows, 10000):
            o.write("".join(row(i) for i in range(start, min(start + 10000, (f + 1) * rows))))
PY
}

# Uploads every file of directory $1 to bucket $2 (made if new) under incoming/.
upload() {
  python3 - "$@" <<'PY'
import boto3, botocore.config, os, sys
from concurrent.futures import ThreadPoolExecutor
src, bucket = sys.argv[1:3]
s3 = boto3.client("s3", endpoint_url=os.environ["S3LOADER_TEST_SEAWEEDFS"], region_name="us-east-1",
                  config=botocore.config.Config(s3={"addressing_style": "path"}, max_pool_connections=32,
                                                request_checksum_calculation="when_required"))
try:
    s3.create_bucket(Bucket=bucket)
except s3.exceptions.BucketAlreadyOwnedByYou:
    pass
with ThreadPoolExecutor(32) as ex:
    list(ex.map(lambda n: s3.upload_file(os.path.join(src, n), bucket, "incoming/" + n), sorted(os.listdir(src))))
PY
}

# Moves every processed/ object of bucket $1 back to incoming/ (untimed,
# between repetitions).
back_to_incoming() {
  python3 - "$1" <<'PY2'
import boto3, botocore.config, os, sys
b = sys.argv[1]
s3 = boto3.client("s3", endpoint_url=os.environ["S3LOADER_TEST_SEAWEEDFS"], region_name="us-east-1",
                  config=botocore.config.Config(s3={"addressing_style": "path"}))
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=b, Prefix="processed/"):
    for o in page.get("Contents", []):
        s3.copy_object(Bucket=b, Key="incoming/" + o["Key"][len("processed/"):], CopySource={"Bucket": b, "Key": o["Key"]})
        s3.delete_object(Bucket=b, Key=o["Key"])
PY2
}

# Creates forecast index table $1 on moto's DynamoDB (as infra/template.yaml).
new_forecast_table() {
  python3 - "$1" <<'PY2'
import boto3, os, sys
ddb = boto3.client("dynamodb", endpoint_url=os.environ["S3LOADER_TEST_MOTO"], region_name="us-east-1")
ddb.create_table(
    TableName=sys.argv[1], BillingMode="PAY_PER_REQUEST",
    AttributeDefinitions=[{"AttributeName": "forecast_period", "AttributeType": "N"},
                          {"AttributeName": "forecast_time_key", "AttributeType": "S"},
                          {"AttributeName": "forecast_time", "AttributeType": "S"}],
    KeySchema=[{"AttributeName": "forecast_period", "KeyType": "HASH"},
               {"AttributeName": "forecast_time_key", "KeyType": "RANGE"}],
    GlobalSecondaryIndexes=[{"IndexName": "forecast_time-index",
        "KeySchema": [{"AttributeName": "forecast_time", "KeyType": "HASH"},
                      {"AttributeName": "forecast_period", "KeyType": "RANGE"}],
        "Projection": {"ProjectionType": "ALL"}}])
PY2
}

# Copies the Met Office samples that have forecast times $1 times into
# directory $2 (NNNN-<sample>.nc).
nc_copies() {
  mkdir -p "$2"
  local c f
  for c in $(seq -f %04g 0 $(($1 - 1))); do
    for f in tests/data/metoffice/*.nc; do
      case "$f" in *ukvx_landmask.nc) continue;; esac  # no forecast times
      cp "$f" "$2/$c-$(basename "$f")"
    done
  done
}

# A config that indexes every *.nc of bucket $1 into forecast table $2
# (25 files a batch, 4 batches at once).
nc_config() {
  cat <<TOML
[source]
url = "s3://$1"
[tick]
max_files = 1000
batch_max_files = 25
concurrency = 4
move_concurrency = 32
[destinations.index]
kind = "dynamodb"
[[route]]
pattern = "*.nc"
destination = "index"
table = "$2"
format = "netcdf"
TOML
}

# The [tick] lines of the small-files runs (small.sh, lambda.sh, profile.sh).
small_tick="max_files = 1000
batch_max_files = 100
concurrency = 4
move_concurrency = 32"

# Runs `s3loader tick` with config $1 until incoming/ is drained; prints
# "seconds ticks batches".
drain() {
  local t0 ticks=0 batches=0 left b
  t0=$(now)
  while :; do
    read -r left b < <("$bin" --config "$1" tick --json | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["backlog"]["files"] - r["loaded"] - r["failed"], r["batches"])')
    ticks=$((ticks + 1)); batches=$((batches + b))
    [ "$left" -le 0 ] && break
  done
  echo "$(since "$t0") $ticks $batches"
}

machine() {
  echo "$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
}

# Appends a section (stdin) to RESULTS.md and echoes it.
section() {
  local text
  text=$(cat)
  [ -s "$results_md" ] || printf '# Benchmark results\n\nWritten by `tests/services.sh bench/run.sh` (README, "Benchmarks"); each case'"'"'s peers and floor ran in the same run, on the same data.\n' > "$results_md"
  printf '\n%s\n' "$text" | tee -a "$results_md"
}
