#!/usr/bin/env bash
# Parquet: peak RSS (GNU time, the whole `s3loader tick`, release) and
# rows/s of one Parquet file, SeaweedFS -> PostgreSQL, at two row-group
# sizes (memory must not follow the file; at most the row group):
#   - BENCH_PARQUET_ROWS (4,000,000) orders rows, snappy, in row groups of
#     100,000 rows, then of 1,000,000 rows; BENCH_REPS (3) each;
#   - the same rows as one gzip CSV, for the rate beside it;
#   - a row group over limits.max_row_group_bytes (a 1,000-row file
#     against a 1 KiB limit): refused, by the size its metadata declares,
#     before any decoding.
#
#   tests/services.sh bench/parquet.sh     (bench/run.sh runs every case)
set -euo pipefail
source "$(dirname "$0")/common.sh"
n=${BENCH_PARQUET_ROWS:-4000000}

python3 - "$work" "$n" <<'PY'
import os, sys
import pyarrow as pa, pyarrow.parquet as pq
out, n = sys.argv[1], int(sys.argv[2])
ids = pa.array(range(n), pa.int64())
table = pa.table({
    "id": ids,
    "customer": pa.array([f"customer-{i % 977}" for i in range(n)]),
    "amount": pa.array([(i * 37) % 100000 / 100 for i in range(n)], pa.float64()),
    "ordered_at": pa.array([1_793_000_000_000 + i * 1000 for i in range(n)], pa.timestamp("ms", tz="UTC")),
    "note": pa.array([f"note for row {i} with some padding text" for i in range(n)]),
})
for group in (100_000, 1_000_000):
    d = f"{out}/g{group}"
    os.makedirs(d)
    pq.write_table(table, f"{d}/orders.parquet", row_group_size=group, compression="snappy")
os.makedirs(f"{out}/csv")
import csv, gzip
with gzip.open(f"{out}/csv/orders.csv.gz", "wt", compresslevel=1, newline="") as f:
    w = csv.writer(f)
    w.writerow(table.column_names)
    for b in table.to_batches(100_000):
        for row in zip(*(c.to_pylist() for c in b.columns)):
            w.writerow([v.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if hasattr(v, "strftime") else v for v in row])
os.makedirs(f"{out}/lie")
pq.write_table(table.slice(0, 1000), f"{out}/lie/big.parquet", row_group_size=1000)
PY
mb() { du -m "$1" | cut -f1; }
rows_md=""
for case in g100000 g1000000 csv; do
  bucket="pq-$case-$(date +%s)"; upload "$work/$case" "$bucket"
  size=$(mb "$work/$case"/*)
  declare -a rss=() secs=()
  for rep in $(seq 1 "$reps"); do
    [ "$rep" -eq 1 ] || back_to_incoming "$bucket"
    export BENCH_PG; BENCH_PG=$(new_db ", note text")
    { pg_config "$bucket" "deadline_secs = 3000
lease_ttl_secs = 3600"
      [ "$case" = csv ] || printf 'format = "parquet"\n'; } > "$work/pq.toml"
    t0=$(now)
    /usr/bin/time -f "%M" -o "$work/rss" "$bin" --config "$work/pq.toml" tick --json > "$work/pq.json"
    secs+=("$(since "$t0")")
    rss+=("$(div "$(cat "$work/rss")" 1024)")
    got=$(psql_ "$BENCH_PG" "SELECT count(*) FROM orders")
    log "$case: $got rows in ${secs[-1]} s, peak RSS ${rss[-1]} MB"
    [ "$got" = "$n" ] || { log "expected $n rows"; exit 1; }
    drop_db "$BENCH_PG"
  done
  med_s=$(printf '%s\n' "${secs[@]}" | median)
  what=$([ "$case" = csv ] && echo "gzip CSV (the same rows)" || echo "Parquet, snappy, row groups of ${case#g} rows")
  rows_md+="| $what, $size MB | $(printf %.1f "$(printf '%s\n' "${rss[@]}" | median)") (raw: $(printf '%s\n' "${rss[@]}" | raw %.1f)) | $(printf %.1f "$med_s") | $(printf %.0f "$(div "$n" "$med_s")") |"$'\n'
done

# The limit: the 1,000-row file against max_row_group_bytes = 1 KiB stands
# for a row group larger than the limit (the check reads the size the
# metadata declares, before decoding).
bucket="pq-big-$(date +%s)"; upload "$work/lie" "$bucket"
export BENCH_PG; BENCH_PG=$(new_db ", note text")
{ pg_config "$bucket" ""; printf 'format = "parquet"\n[limits]\nmax_row_group_bytes = 1024\n'; } > "$work/lie.toml"
/usr/bin/time -f "%M" -o "$work/rss" "$bin" --config "$work/lie.toml" tick --json > "$work/lie.json" || true
reason=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); f=r["files"][0]; print(f["result"] + ": " + (f.get("reason") or ""))' "$work/lie.json")
log "row group over the limit: $reason; $(cat "$work/rss") KB"
drop_db "$BENCH_PG"

section <<MD
## Parquet: peak RSS at two row-group sizes ($(date -u +%Y-%m-%d))

$n orders rows (5 columns), one file, SeaweedFS → PostgreSQL, one \`s3loader tick\` (release), median of $reps; $(machine).

| input | peak RSS, MB | seconds | rows/s |
|---|---|---|---|
${rows_md%$'\n'}

A row group over \`limits.max_row_group_bytes\` (1 KiB here): $(printf %.0f "$(div "$(cat "$work/rss")" 1024)") MB peak, \`${reason//|/\\|}\`.
MD
