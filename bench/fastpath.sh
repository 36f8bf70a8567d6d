#!/usr/bin/env bash
# The fast path's latency: from a file landing in incoming/ to its rows
# committed in PostgreSQL, through S3 notifications on moto's SQS and
# `s3loader listen` (release) polling the queue, as the events function
# does under its event source mapping. Measures; asserts nothing. Run it
# through the services script:
#
#   tests/services.sh bench/fastpath.sh
#   BENCH_FILES=10 BENCH_REPS=1 tests/services.sh bench/fastpath.sh
#
# BENCH_FILES (30) files of 20 rows, one at a time, BENCH_GAP (0.5) s apart:
# each is PUT to SeaweedFS, then its notification (as S3 sends it, the
# eventTime taken when the PUT returned) is sent to the queue. Two numbers
# per file:
#   metric     EndToEndLatencyMs as s3loader reports it: eventTime to the
#              commit of the file's rows (the report's latency.max_ms);
#   observed   from the PUT returning until a psql poll (every 20 ms) sees
#              the file's rows: what a user would see.
# The tick path for comparison is arithmetic, not measured: a file waits
# for the next minute's tick, 30 s on average, plus the tick.
# Appends a section to bench/RESULTS.md and prints it.
set -euo pipefail
source "$(dirname "$0")/common.sh"
: "${S3LOADER_TEST_MOTO:?run through tests/services.sh}"
files=${BENCH_FILES:-30}
gap=${BENCH_GAP:-0.5}
export AWS_ENDPOINT_URL_SQS="$S3LOADER_TEST_MOTO"

declare -A results
for rep in $(seq 1 "$reps"); do
  echo "== repetition $rep of $reps" >&2
  b="fast-$rep-$(date +%s)"
  export BENCH_PG; BENCH_PG=$(new_db)
  pg_config "$b" "" > "$work/fast.toml"
  queue=$(python3 - "$b" <<'PY'
import boto3, botocore.config, os, sys
s3 = boto3.client("s3", endpoint_url=os.environ["S3LOADER_TEST_SEAWEEDFS"], region_name="us-east-1",
                  config=botocore.config.Config(s3={"addressing_style": "path"}))
s3.create_bucket(Bucket=sys.argv[1])
sqs = boto3.client("sqs", endpoint_url=os.environ["S3LOADER_TEST_MOTO"], region_name="us-east-1")
print(sqs.create_queue(QueueName=sys.argv[1])["QueueUrl"])
PY
)
  "$bin" --config "$work/fast.toml" listen --queue-url "$queue" --json > "$work/listen-$rep.jsonl" 2>"$work/listen-$rep.err" &
  listener=$!
  sleep 1
  python3 - "$b" "$queue" "$files" "$gap" "$BENCH_PG" > "$work/observed-$rep.txt" <<'PY'
import boto3, botocore.config, datetime, json, os, subprocess, sys, time
bucket, queue, files, gap, pg = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
s3 = boto3.client("s3", endpoint_url=os.environ["S3LOADER_TEST_SEAWEEDFS"], region_name="us-east-1",
                  config=botocore.config.Config(s3={"addressing_style": "path"}, request_checksum_calculation="when_required"))
sqs = boto3.client("sqs", endpoint_url=os.environ["S3LOADER_TEST_MOTO"], region_name="us-east-1")
def rows(i):
    out = subprocess.run(["psql", pg, "-qAt", "-c", f"SELECT count(*) FROM orders WHERE id BETWEEN {i * 20} AND {i * 20 + 19}"],
                         capture_output=True, text=True)
    return int(out.stdout.strip() or 0)
for i in range(files):
    key = f"incoming/{i:06d}.csv"
    body = "id,customer,amount,ordered_at\n" + "".join(f"{r},c{r},1.00,2026-11-24T00:00:00Z\n" for r in range(i * 20, i * 20 + 20))
    s3.put_object(Bucket=bucket, Key=key, Body=body.encode())
    landed = time.time()
    at = datetime.datetime.fromtimestamp(landed, datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    event = {"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "eventTime": at,
                          "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": len(body)}}}]}
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(event))
    while rows(i) < 20:
        if time.time() - landed > 30:
            sys.exit(f"file {i} not loaded in 30 s")
        time.sleep(0.02)
    print(f"{(time.time() - landed) * 1000:.1f}")
    time.sleep(gap)
PY
  kill -INT "$listener"; wait "$listener" || true
  python3 -c '
import json, sys
for line in open(sys.argv[1]):
    line = line.strip()
    if line.startswith("{"):
        r = json.loads(line)
        if r.get("latency"):
            print(r["latency"]["max_ms"])
' "$work/listen-$rep.jsonl" > "$work/metric-$rep.txt"
  results[metric_p50_$rep]=$(median < "$work/metric-$rep.txt")
  results[metric_max_$rep]=$(sort -g "$work/metric-$rep.txt" | tail -1)
  results[observed_p50_$rep]=$(median < "$work/observed-$rep.txt")
  results[observed_max_$rep]=$(sort -g "$work/observed-$rep.txt" | tail -1)
  log "rep $rep: metric p50 ${results[metric_p50_$rep]} ms (max ${results[metric_max_$rep]}), observed p50 ${results[observed_p50_$rep]} ms (max ${results[observed_max_$rep]}), $(wc -l < "$work/metric-$rep.txt") runs"
  drop_db "$BENCH_PG"
done

col() { for rep in $(seq 1 "$reps"); do echo "${results[$1_$rep]}"; done; }
{
  echo
  echo "## Fast path latency ($(date -u '+%Y-%m-%d %H:%M UTC'))"
  echo
  echo "\`bench/fastpath.sh\`: $files files of 20 rows, one at a time ${gap} s apart, each PUT to SeaweedFS and notified through moto's SQS; \`s3loader listen\` (release, long polling) loads them into PostgreSQL. $reps repetition(s), medians of the per-file medians; raw per repetition. $(machine)"
  echo
  echo "| measure | p50 (ms) | max (ms) | raw p50s |"
  echo "|---|---|---|---|"
  echo "| EndToEndLatencyMs (eventTime → rows committed) | $(col metric_p50 | median) | $(col metric_max | sort -g | tail -1) | $(col metric_p50 | raw %.0f)|"
  echo "| observed (PUT returned → rows visible to psql, 20 ms polls) | $(col observed_p50 | median) | $(col observed_max | sort -g | tail -1) | $(col observed_p50 | raw %.0f)|"
  echo "| the tick path (arithmetic: half the 60 s interval, plus a tick) | ~30,000 + tick | ~60,000 + tick | — |"
} | tee -a "$results_md"
