#!/usr/bin/env bash
# Small files with every peer in the same run, on the same data (issue 12,
# first case). Measures; asserts nothing. Run it through the services script:
#
#   tests/services.sh bench/small.sh      (bench/run.sh runs every case)
#   BENCH_FILES=500 BENCH_REPS=1 tests/services.sh bench/small.sh
#
# BENCH_FILES (5,000) CSV files of ~2 KB on SeaweedFS, BENCH_REPS (3)
# repetitions of each, the median reported:
#   s3loader   `s3loader tick` (release) until drained: list, load into
#              PostgreSQL, move to processed/;
#   S3 floor   the same per-file requests (GET, CopyObject, DeleteObject) by
#              a bare async client, no loading (loader/examples/s3_floor.rs),
#              at concurrency 8, 32 and 64, the best kept;
#   dlt        dlt's filesystem source -> postgres, csv (COPY) loader files
#              (bench/dlt_small.py; dlt moves nothing);
#   shell loop `aws s3 cp - | psql \copy` + `aws s3 mv` per file, on the
#              first BENCH_LOOP_FILES (30) files (a process per request).
# Appends a section to bench/RESULTS.md and prints it.
set -euo pipefail
source "$(dirname "$0")/common.sh"
files=${BENCH_FILES:-5000}
loop_files=${BENCH_LOOP_FILES:-30}
peers=$(bench/peers.sh)
cargo build --release -q -p s3loader-loader --example s3_floor
floor_bin="$CARGO_TARGET_DIR/release/examples/s3_floor"

gen_csv "$files" 20 "$work/small"
loop_dir="$work/loop"; mkdir -p "$loop_dir"
names=("$work"/small/*.csv)  # (not `ls | head`: SIGPIPE under pipefail)
cp "${names[@]:0:$loop_files}" "$loop_dir/"

declare -A results
for rep in $(seq 1 "$reps"); do
  echo "== repetition $rep of $reps" >&2
  # s3loader
  b="small-s3l-$rep-$(date +%s)"; upload "$work/small" "$b"
  export BENCH_PG; BENCH_PG=$(new_db ", note text")
  pg_config "$b" "$small_tick" > "$work/s3l.toml"
  read -r secs _ < <(drain "$work/s3l.toml")
  n=$(psql_ "$BENCH_PG" "SELECT count(*) FROM s3loader_ledger")
  echo "  s3loader: $n files in $secs s" >&2
  results[s3loader]+="$(div "$n" "$secs")"$'\n'

  # S3 floor
  b="small-floor-$rep-$(date +%s)"; upload "$work/small" "$b"
  # (Not `tee /dev/stderr`: with stderr a file, tee reopens and truncates it.)
  out=$("$floor_bin" "$b" 8 32 64); echo "$out" >&2
  best=$(awk '{split($3,f,"="); split($4,s,"="); r = f[2] / s[2]; if (r > best) best = r} END {print best}' <<<"$out")
  results[floor]+="$best"$'\n'

  # dlt
  b="small-dlt-$rep-$(date +%s)"; upload "$work/small" "$b"
  db=$(new_db ", note text"); pg_url="postgresql://postgres:trust@127.0.0.1:$(sed 's/.*port=\([0-9]*\).*/\1/' <<<"$db")/$(sed 's/.*dbname=\([a-z0-9_]*\).*/\1/' <<<"$db")"
  line=$("$peers/python" bench/dlt_small.py "$b" "$pg_url" | tail -n1)
  echo "  $line; rows in its table: $(psql_ "$db" "SELECT count(*) FROM dlt_bench.orders")" >&2
  results[dlt]+="$(awk '{split($2,f,"="); split($4,s,"="); print f[2] / s[2]}' <<<"$line")"$'\n'

  # shell loop
  b="small-loop-$rep-$(date +%s)"; upload "$loop_dir" "$b"
  db=$(new_db ", note text")
  t0=$(now)
  for f in $(ls "$loop_dir"); do
    "$peers/aws" --endpoint-url "$S3LOADER_TEST_SEAWEEDFS" s3 cp "s3://$b/incoming/$f" - --quiet \
      | psql "$db" -v ON_ERROR_STOP=1 -qc "\\copy orders FROM STDIN WITH (FORMAT csv, HEADER true)"
    "$peers/aws" --endpoint-url "$S3LOADER_TEST_SEAWEEDFS" s3 mv "s3://$b/incoming/$f" "s3://$b/processed/$f" --quiet
  done
  secs=$(since "$t0")
  echo "  shell loop: $loop_files files in $secs s" >&2
  results[loop]+="$(div "$loop_files" "$secs")"$'\n'
done

m() { printf '%s' "${results[$1]}" | median; }
s3l=$(m s3loader); floor=$(m floor); dlt=$(m dlt); loop=$(m loop)
section <<MD
## Small files: $files CSV files of ~2 KB, SeaweedFS → PostgreSQL ($(date -u +%Y-%m-%d), median of $reps)

| | files/s (median) | raw (files/s, each repetition) |
|---|---|---|
| s3loader (list, load, move) | $(printf %.0f "$s3l") | $(printf '%s' "${results[s3loader]}" | raw %.0f) |
| S3 floor (GET + CopyObject + DeleteObject, best of c=8/32/64) | $(printf %.0f "$floor") | $(printf '%s' "${results[floor]}" | raw %.0f) |
| dlt filesystem → postgres (csv/COPY; no moves) | $(printf %.1f "$dlt") | $(printf '%s' "${results[dlt]}" | raw %.1f) |
| shell loop: aws s3 cp \| psql \\copy + aws s3 mv ($loop_files files) | $(printf %.1f "$loop") | $(printf '%s' "${results[loop]}" | raw %.1f) |

Versions: s3loader $(git rev-parse --short HEAD), dlt $("$peers/python" -c 'import dlt; print(dlt.__version__)'), $("$peers/aws" --version | cut -d' ' -f1), PostgreSQL $(psql_ "$pg_admin" "SHOW server_version"), SeaweedFS $(weed version 2>/dev/null | head -n1 | awk '{print $3}').

Ratios: s3loader / dlt = $(printf %.1f "$(div "$s3l" "$dlt")")× (goal ≥ 10×); s3loader / S3 floor = $(printf %.2f "$(div "$s3l" "$floor")") (goal ≥ 0.5); s3loader / shell loop = $(printf %.0f "$(div "$s3l" "$loop")")×.
MD
