#!/usr/bin/env bash
# Large files: BENCH_LARGE_FILES (10) CSV files of BENCH_LARGE_MB (200) MB
# on SeaweedFS into PostgreSQL, BENCH_REPS (3) repetitions, the median:
#   s3loader        one tick (release), every file its own batch
#                   (batch_max_bytes 256 MiB), 4 batches at once;
#   psql \copy x1   the same files from local disk, one after another;
#   psql \copy x4   the same files, 4 psql processes at once: PostgreSQL's
#                   ingest ceiling on this machine (the goal's reference).
# Each run loads into a fresh database, dropped after it (disk).
#
#   tests/services.sh bench/large.sh     (bench/run.sh runs every case)
set -euo pipefail
source "$(dirname "$0")/common.sh"
nfiles=${BENCH_LARGE_FILES:-10}
mb=${BENCH_LARGE_MB:-200}

# One file of $mb MB, copied: the rows repeat across files (no key here).
rows=$((mb * 1024 * 1024 / 92))
gen_csv 1 "$rows" "$work/one"
mkdir -p "$work/large"
for i in $(seq -f %02g 1 "$nfiles"); do cp "$work/one/000000.csv" "$work/large/part-$i.csv"; done
rm -rf "$work/one"
total_mb=$(du -cm "$work"/large/*.csv | tail -n1 | cut -f1)
log "data: $nfiles files, $total_mb MB"
bucket="large-$(date +%s)"
upload "$work/large" "$bucket"

declare -A r
for rep in $(seq 1 "$reps"); do
  echo "== large files, repetition $rep of $reps" >&2
  # s3loader: back to incoming/ first (untimed), then one tick.
  [ "$rep" -eq 1 ] || back_to_incoming "$bucket"
  export BENCH_PG; BENCH_PG=$(new_db ", note text")
  pg_config "$bucket" "batch_max_bytes = 268435456
concurrency = 4
deadline_secs = 3000
lease_ttl_secs = 3600" > "$work/large.toml"
  t0=$(now)
  /usr/bin/time -f "%M" -o "$work/rss" "$bin" --config "$work/large.toml" tick --json > "$work/large.json"
  secs=$(since "$t0")
  n=$(psql_ "$BENCH_PG" "SELECT count(*) FROM orders")
  log "s3loader: $n rows in $secs s, peak RSS $(cat "$work/rss") KB"
  r[s3l]+="$(div "$total_mb" "$secs")"$'\n'
  r[s3l_rss]+="$(div "$(cat "$work/rss")" 1024)"$'\n'
  drop_db "$BENCH_PG"

  for streams in 1 4; do
    db=$(new_db ", note text")
    t0=$(now)
    printf '%s\n' "$work"/large/*.csv | xargs -P "$streams" -I{} \
      psql "$db" -v ON_ERROR_STOP=1 -qc "\\copy orders FROM '{}' WITH (FORMAT csv, HEADER true)"
    secs=$(since "$t0")
    log "psql \\copy x$streams: $(psql_ "$db" "SELECT count(*) FROM orders") rows in $secs s"
    r[psql$streams]+="$(div "$total_mb" "$secs")"$'\n'
    drop_db "$db"
  done
done

m() { printf '%s' "${r[$1]}" | median; }
s3l=$(m s3l); p1=$(m psql1); p4=$(m psql4)
section <<MD
## Large files: $nfiles CSV files of $mb MB ($total_mb MB), SeaweedFS → PostgreSQL ($(date -u +%Y-%m-%d), median of $reps)

| | MB/s (median) | raw (MB/s, each repetition) |
|---|---|---|
| s3loader (one tick: list, load 4 files at once, move) | $(printf %.1f "$s3l") | $(printf '%s' "${r[s3l]}" | raw %.1f) |
| psql \\copy from local disk, 1 stream | $(printf %.1f "$p1") | $(printf '%s' "${r[psql1]}" | raw %.1f) |
| psql \\copy from local disk, 4 streams (the ceiling) | $(printf %.1f "$p4") | $(printf '%s' "${r[psql4]}" | raw %.1f) |

s3loader's peak RSS over the tick: $(printf '%s' "${r[s3l_rss]}" | raw %.0f) MB.

Ratios: s3loader / psql 4 streams = $(printf %.2f "$(div "$s3l" "$p4")") (goal ≥ 0.85); s3loader / psql 1 stream = $(printf %.2f "$(div "$s3l" "$p1")").
MD

# For the cost case: loader milliseconds per MB, an upper bound (4 files
# loading at once for the whole tick).
state="${BENCH_STATE:-$CARGO_TARGET_DIR/bench-state}"; mkdir -p "$state"
echo "loader_ms_per_mb=$(echo "1000 * 4 / $s3l" | bc -l)" > "$state/large.env"
