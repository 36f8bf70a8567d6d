#!/usr/bin/env bash
# Small files through the Lambda path: BENCH_LAMBDA_FILES (5,000) CSV
# files of ~2 KB, SeaweedFS -> PostgreSQL, BENCH_REPS (3) repetitions, the
# median, of:
#   Lambda path  `scheduler-lambda` invoked (a scheduled event) until
#                drained; it invokes `loader-lambda` once per batch; both
#                served by `cargo lambda watch --release` (the local
#                runtime API; its build is not timed: a warm-up invoke waits
#                for it);
#   in-process   `s3loader tick` until drained, the same config: what
#                `s3loader run` does every interval, workers in-process.
# The difference over the loader invokes and over the files is the Lambda
# path's overhead per invoke and per file (invoke round trip, payload JSON,
# a client per sandbox), on this machine's local runtime API. The loader's
# timeout is given as 60 s (S3LOADER_LOADER_TIMEOUT_SECS), so the scheduler
# dispatches until 65 s before its own deadline.
#
#   tests/services.sh bench/lambda.sh     (bench/run.sh runs every case)
set -euo pipefail
source "$(dirname "$0")/common.sh"
files=${BENCH_LAMBDA_FILES:-5000}
port=$((20000 + RANDOM % 20000))
gen_csv "$files" 20 "$work/small"
# The warm-up's files: 4 batches, so all 4 loader sandboxes start before
# the timed drain (a cold sandbox under `cargo lambda watch` is a
# `cargo run`, not Lambda's cold start; bench/coldstart.sh measures that).
gen_csv 400 20 "$work/warm"
for f in "$work"/warm/*.csv; do mv "$f" "$work/warm/warm-${f##*/}"; done

config() { # bucket
  pg_config "$1" "$small_tick
deadline_secs = 100"
  printf '[metrics]\nsink = "cloudwatch"\nnamespace = "S3LoaderBench"\npipeline = "bench-lambda"\n'
}

invoke_until_drained() { # prints "seconds ticks loader_invokes"
  python3 - "http://127.0.0.1:$port" <<'PY'
import boto3, botocore.config, json, sys, time, uuid
lam = boto3.client("lambda", endpoint_url=sys.argv[1], region_name="us-east-1",
                   config=botocore.config.Config(read_timeout=300, retries={"max_attempts": 0}))
def tick():
    event = {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event",
             "source": "aws.scheduler", "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "detail": {}}
    out = lam.invoke(FunctionName="scheduler-lambda", Payload=json.dumps(event))
    body = out["Payload"].read()
    if "FunctionError" in out:
        sys.exit(f"scheduler-lambda: {out['FunctionError']}: {body[:500]!r}")
    return json.loads(body)
start, ticks, invokes = time.monotonic(), 0, 0
while True:
    r = tick()
    ticks += 1
    invokes += r["batches"]
    # Drained: this tick held the lease, listed everything, and left
    # nothing behind (a tick that found the lease held lists nothing).
    if (r["lease"]["status"] == "acquired" and r["backlog"]["complete"]
            and r["backlog"]["files"] - r["loaded"] - r["failed"] <= 0):
        break
print(f"{time.monotonic() - start:.3f} {ticks} {invokes}")
PY
}

warm_up() { # until the watch has built both functions and drained 400 files
  local i
  upload "$work/warm" "$1"
  for i in $(seq 1 180); do
    invoke_until_drained >/dev/null 2>&1 || true
    if [ "$(psql_ "$BENCH_PG" "SELECT count(*) FROM pg_tables WHERE tablename = 's3loader_ledger'")" = 1 ] &&
       [ "$(psql_ "$BENCH_PG" "SELECT count(*) FROM s3loader_ledger")" -ge 400 ]; then return 0; fi
    sleep 5
  done
  echo "cargo lambda watch never answered; see $watch_log" >&2; exit 1
}

declare -A r
for rep in $(seq 1 "$reps"); do
  echo "== Lambda path, repetition $rep of $reps" >&2
  b="lambda-$rep-$(date +%s)"
  python3 -c 'import boto3,botocore.config,os,sys; boto3.client("s3", endpoint_url=os.environ["S3LOADER_TEST_SEAWEEDFS"], region_name="us-east-1", config=botocore.config.Config(s3={"addressing_style":"path"})).create_bucket(Bucket=sys.argv[1])' "$b"
  export BENCH_PG; BENCH_PG=$(new_db ", note text")
  watch_log="$CARGO_TARGET_DIR/lambda-watch/bench-watch-$port.log"
  mkdir -p "$CARGO_TARGET_DIR/lambda-watch"
  CARGO_TARGET_DIR="$CARGO_TARGET_DIR/lambda-watch" \
    S3LOADER_CONFIG_TOML="$(config "$b")" S3LOADER_LOADER_FUNCTION=loader-lambda S3LOADER_LOADER_TIMEOUT_SECS=60 \
    AWS_ENDPOINT_URL_CLOUDWATCH="$S3LOADER_TEST_MOTO" AWS_ENDPOINT_URL_LAMBDA="http://127.0.0.1:$port" \
    setsid cargo lambda watch --release --ignore-changes --concurrency 4 --timeout 120 \
      -A 127.0.0.1 -P "$port" > "$watch_log" 2>&1 &
  watch_pid=$!
  warm_up "$b"
  warm=$(psql_ "$BENCH_PG" "SELECT count(*) FROM s3loader_ledger")
  upload "$work/small" "$b"
  read -r secs ticks invokes < <(invoke_until_drained)
  n=$(( $(psql_ "$BENCH_PG" "SELECT count(*) FROM s3loader_ledger") - warm ))
  log "Lambda path: $n files in $secs s, $ticks scheduler invokes, $invokes loader invokes"
  kill -- -"$watch_pid" 2>/dev/null || true; wait "$watch_pid" 2>/dev/null || true
  r[lambda]+="$secs"$'\n'; r[invokes]+="$invokes"$'\n'; r[ticks]+="$ticks"$'\n'
  drop_db "$BENCH_PG"

  b="inproc-$rep-$(date +%s)"; upload "$work/small" "$b"
  BENCH_PG=$(new_db ", note text")
  config "$b" | sed 's/sink = "cloudwatch"/sink = "log"/' > "$work/inproc.toml"
  read -r secs ticks _ < <(drain "$work/inproc.toml")
  log "in-process: $(psql_ "$BENCH_PG" "SELECT count(*) FROM s3loader_ledger") files in $secs s, $ticks ticks"
  r[inproc]+="$secs"$'\n'
  drop_db "$BENCH_PG"
done

m() { printf '%s' "${r[$1]}" | median; }
lam=$(m lambda); inproc=$(m inproc); inv=$(m invokes)
over=$(echo "$lam - $inproc" | bc -l)
section <<MD
## Small files through the Lambda path: $files CSV files of ~2 KB, SeaweedFS → PostgreSQL ($(date -u +%Y-%m-%d), median of $reps)

| | seconds (median) | files/s | raw (seconds, each repetition) |
|---|---|---|---|
| Lambda path: scheduler-lambda → loader-lambda under \`cargo lambda watch --release\` | $(printf %.2f "$lam") | $(printf %.0f "$(div "$files" "$lam")") | $(printf '%s' "${r[lambda]}" | raw %.2f) |
| in-process: \`s3loader tick\` until drained (what \`run\` does) | $(printf %.2f "$inproc") | $(printf %.0f "$(div "$files" "$inproc")") | $(printf '%s' "${r[inproc]}" | raw %.2f) |

Scheduler invokes: $(printf '%s' "${r[ticks]}" | raw %.0f); loader invokes: $(printf '%s' "${r[invokes]}" | raw %.0f) (batches of 100 files, 4 at once).

Overhead of the Lambda path: $(printf %.2f "$over") s in all = $(printf %.1f "$(echo "1000 * $over / $inv" | bc -l)") ms per loader invoke, $(printf %.2f "$(echo "1000 * $over / $files" | bc -l)") ms per file (the variation between repetitions is of the same order).
MD

# For the cost case: billed milliseconds, upper bounds (every loader slot
# busy for the whole drain; the scheduler invoke spans each tick).
state="${BENCH_STATE:-$CARGO_TARGET_DIR/bench-state}"; mkdir -p "$state"
cat > "$state/lambda.env" <<ENV
loader_ms_per_file=$(echo "1000 * $lam * 4 / $files" | bc -l)
scheduler_ms_per_tick=$(echo "1000 * $lam / $(m ticks)" | bc -l)
ENV
