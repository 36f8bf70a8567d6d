#!/usr/bin/env bash
# netCDF indexing: BENCH_NC_COPIES (20) copies of the Met Office samples
# that have forecast times, SeaweedFS -> the forecast index on moto's
# DynamoDB, BENCH_REPS (3) repetitions, the median:
#   s3loader   `s3loader tick` (release) until drained: list, read, parse,
#              index, move (25 files to a batch, 4 batches at once);
#   floor      the same BatchWriteItem calls with no S3, no parsing and no
#              moves (loader/examples/ddb_floor.rs: the items are built
#              first, untimed), at 4 and 16 files at once, the best kept:
#              moto's own pace, the goal's reference.
# moto is a Python emulator, far slower than DynamoDB: on real DynamoDB
# the floor moves and this ratio with it.
#
#   tests/services.sh bench/netcdf.sh     (bench/run.sh runs every case)
set -euo pipefail
source "$(dirname "$0")/common.sh"
: "${S3LOADER_TEST_MOTO:?run through tests/services.sh}"
copies=${BENCH_NC_COPIES:-20}
cargo build --release -q -p s3loader-loader --example ddb_floor
export AWS_ENDPOINT_URL_DYNAMODB="$S3LOADER_TEST_MOTO"

nc_copies "$copies" "$work/nc"
nfiles=$(ls "$work/nc" | wc -l)

declare -A r
for rep in $(seq 1 "$reps"); do
  echo "== netCDF, repetition $rep of $reps" >&2
  bucket="bench-nc-$rep-$(date +%s)"; table="bench-forecasts-$rep-$(date +%s)"
  upload "$work/nc" "$bucket"; new_forecast_table "$table"
  nc_config "$bucket" "$table" > "$work/nc.toml"
  read -r secs ticks _ < <(drain "$work/nc.toml")
  log "s3loader: $nfiles files in $secs s ($ticks ticks)"
  r[s3l]+="$(div "$nfiles" "$secs")"$'\n'
  table="bench-floor-$rep-$(date +%s)"; new_forecast_table "$table"
  out=$("$CARGO_TARGET_DIR/release/examples/ddb_floor" "$table" "$copies" 4 16); echo "$out" >&2
  r[floor]+="$(awk '{split($3,f,"="); split($5,s,"="); v = f[2] / s[2]; if (v > best) best = v} END {print best}' <<<"$out")"$'\n'
  r[items]=$(awk '{split($4,i,"="); print i[2]}' <<<"$out" | head -n1)
done

m() { printf '%s' "${r[$1]}" | median; }
s3l=$(m s3l); floor=$(m floor)
section <<MD
## netCDF indexing: $nfiles Met Office files ($copies copies of the samples, ${r[items]} items), SeaweedFS → moto DynamoDB ($(date -u +%Y-%m-%d), median of $reps)

| | files/s (median) | raw (files/s, each repetition) |
|---|---|---|
| s3loader (list, read, parse, index, move) | $(printf %.1f "$s3l") | $(printf '%s' "${r[s3l]}" | raw %.1f) |
| moto's floor: the same BatchWriteItem calls, nothing else (best of 4/16 files at once) | $(printf %.1f "$floor") | $(printf '%s' "${r[floor]}" | raw %.1f) |

Ratio: s3loader / floor = $(printf %.2f "$(div "$s3l" "$floor")") (goal ≥ 0.8).
MD
