#!/usr/bin/env bash
# The profiles behind the cases that miss their goals: one workload of the
# named case while `perf record -a -g` samples the whole machine
# (SeaweedFS, PostgreSQL, moto and s3loader share its two cores). Appends
# to bench/RESULTS.md's profiles part (bench/run.sh keeps it when it
# rewrites the cases): CPU by process, and s3loader's top frames (self and
# with children). Needs perf (Debian's
# linux-perf) and kernel.perf_event_paranoid <= 1 or root.
#
#   tests/services.sh bench/profile.sh [small|large|netcdf|listing]...
#
#   small    BENCH_FILES (5,000) files of 20 rows drained by `s3loader tick`
#   large    BENCH_LARGE_FILES (4) CSV files of 200 MB, one tick, 4 at once
#   netcdf   BENCH_NC_COPIES (10) copies of the Met Office samples into
#            moto's DynamoDB
#   listing  `s3loader status` over BENCH_KEYS (200,000) keys
# (not part of bench/run.sh)
set -euo pipefail
# (No `| head` after perf report: under pipefail its SIGPIPE fails the script.)
source "$(dirname "$0")/common.sh"
command -v perf >/dev/null || { echo "perf not found (apt-get install linux-perf)" >&2; exit 1; }

perf_start() {
  perf record -q -a -g -F 499 -o "$work/perf.data" &
  perf_pid=$!
  sleep 1
}
perf_stop() { kill -INT "$perf_pid"; wait "$perf_pid" || true; }

# Appends the profile's section: title $1, a line of what ran $2.
report() {
  local by_comm top children
  by_comm=$(perf report -q -i "$work/perf.data" --no-children --sort comm --stdio -g none 2>/dev/null | awk 'NF && $1 ~ /%/ && n++ < 12 {print "| " $2 " | " $1 " |"}')
  top=$(perf report -q -i "$work/perf.data" --comm s3loader,tokio-rt-worker --no-children --sort symbol --stdio -g none 2>/dev/null \
    | awk 'NF && $1 ~ /%/ && n++ < 25 {pct=$1; $1=""; sub(/^ +\[[^]]*\] +/, ""); print "| " pct " | `" substr($0, 1, 110) "` |"}')
  children=$(perf report -q -i "$work/perf.data" --comm s3loader,tokio-rt-worker --children --sort symbol --stdio -g none 2>/dev/null \
    | awk 'NF && $1 ~ /%/ && n++ < 25 {pct=$1; $1=""; $2=""; sub(/^ +\[[^]]*\] +/, ""); print "| " pct " | `" substr($0, 1, 110) "` |"}')
  section <<MD
## Profile: $1, \`perf record -a -g\` ($(date -u +%Y-%m-%d), s3loader $(git rev-parse --short HEAD))

$2

CPU samples by process (the machine's two cores, all processes):

| process | share |
|---|---|
$by_comm

s3loader's top frames (its threads: s3loader, tokio-rt-worker), self time (% of all samples):

| self | frame |
|---|---|
$top

s3loader's top frames with their children:

| with children | frame |
|---|---|
$children
MD
  rm -f "$work/perf.data"
}

profile_small() {
  local files=${BENCH_FILES:-5000} b secs ticks n
  gen_csv "$files" 20 "$work/small"
  b="profile-$(date +%s)"; upload "$work/small" "$b"
  export BENCH_PG; BENCH_PG=$(new_db ", note text")
  pg_config "$b" "$small_tick" > "$work/p.toml"
  perf_start
  read -r secs ticks _ < <(drain "$work/p.toml")
  perf_stop
  n=$(psql_ "$BENCH_PG" "SELECT count(*) FROM s3loader_ledger")
  drop_db "$BENCH_PG"
  report "small files, $files files" "$n files in $(printf %.1f "$secs") s ($(printf %.0f "$(div "$n" "$secs")") files/s, $ticks ticks) while sampled."
}

profile_large() {
  local nfiles=${BENCH_LARGE_FILES:-4} b secs mb
  gen_csv 1 $((200 * 1024 * 1024 / 92)) "$work/one"
  mkdir -p "$work/large"
  for i in $(seq -f %02g 1 "$nfiles"); do cp "$work/one/000000.csv" "$work/large/part-$i.csv"; done
  rm -rf "$work/one"
  mb=$(du -cm "$work"/large/*.csv | tail -n1 | cut -f1)
  b="profile-large-$(date +%s)"; upload "$work/large" "$b"
  export BENCH_PG; BENCH_PG=$(new_db ", note text")
  pg_config "$b" "batch_max_bytes = 268435456
concurrency = 4
deadline_secs = 3000
lease_ttl_secs = 3600" > "$work/p.toml"
  perf_start
  t0=$(now); "$bin" --config "$work/p.toml" tick --json > /dev/null; secs=$(since "$t0")
  perf_stop
  n=$(psql_ "$BENCH_PG" "SELECT count(*) FROM orders")
  drop_db "$BENCH_PG"
  rm -rf "$work/large"
  report "large files, $nfiles CSV files of 200 MB" "$n rows ($mb MB) in $(printf %.1f "$secs") s ($(printf %.1f "$(div "$mb" "$secs")") MB/s, one tick, 4 files at once) while sampled."
}

profile_netcdf() {
  : "${S3LOADER_TEST_MOTO:?run through tests/services.sh}"
  export AWS_ENDPOINT_URL_DYNAMODB="$S3LOADER_TEST_MOTO"
  local copies=${BENCH_NC_COPIES:-10} b table secs ticks nfiles
  nc_copies "$copies" "$work/nc"
  nfiles=$(ls "$work/nc" | wc -l)
  b="profile-nc-$(date +%s)"; table="profile-forecasts-$(date +%s)"
  upload "$work/nc" "$b"; new_forecast_table "$table"
  nc_config "$b" "$table" > "$work/nc.toml"
  perf_start
  read -r secs ticks _ < <(drain "$work/nc.toml")
  perf_stop
  report "netCDF indexing, $nfiles Met Office files into moto's DynamoDB" "$nfiles files in $(printf %.1f "$secs") s ($(printf %.1f "$(div "$nfiles" "$secs")") files/s, $ticks ticks) while sampled."
}

profile_listing() {
  local keys=${BENCH_KEYS:-200000} b secs n
  cargo build --release -q -p s3loader-loader --example s3_backlog
  b="profile-backlog-$(date +%s)"
  log "$("$CARGO_TARGET_DIR/release/examples/s3_backlog" "$b" "$keys" 128)"
  export BENCH_PG; BENCH_PG=$(new_db ", note text")
  pg_config "$b" "" > "$work/p.toml"
  perf_start
  t0=$(now); n=$("$bin" --config "$work/p.toml" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["backlog"]["files"])'); secs=$(since "$t0")
  perf_stop
  drop_db "$BENCH_PG"
  report "backlog listing, \`s3loader status\` over $keys keys" "$n keys in $(printf %.2f "$secs") s ($(printf %.0f "$(div "$n" "$secs")") keys/s) while sampled."
}

for c in "${@:-small}"; do
  case "$c" in
    small|large|netcdf|listing) "profile_$c" ;;
    *) echo "unknown profile: $c (small, large, netcdf, listing)" >&2; exit 2 ;;
  esac
done
