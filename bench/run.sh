#!/usr/bin/env bash
# Every benchmark case, with its peers and floor in the same run and on the
# same data, into a fresh bench/RESULTS.md. Measures; asserts nothing (goals
# are the benchmark's, never a test's). Run it through the services script:
#
#   tests/services.sh bench/run.sh
#   BENCH_CASES="small large" tests/services.sh bench/run.sh   # some cases
#   BENCH_REPS=1 BENCH_FILES=500 BENCH_KEYS=20000 ... # a quick look
#   BENCH_KEEP=1 BENCH_CASES=... # append to RESULTS.md instead of rewriting it
#
# It builds release binaries, installs its peers into a virtualenv of its
# own (bench/peers.sh: PyPI dlt[postgres,filesystem,s3] and awscli),
# generates the data, runs each case BENCH_REPS (3) times and reports the
# median with the raw numbers. Cases (each also runs alone, e.g.
# `tests/services.sh bench/small.sh`, appending to RESULTS.md):
#   small      5,000 x 2 KB CSV: s3loader vs dlt, a shell loop, the S3 floor
#   lambda     the same through scheduler-lambda/loader-lambda under
#              `cargo lambda watch` vs in-process
#   large      10 x 200 MB CSV vs psql \copy, 1 and 4 streams
#   memory     a 1 GiB gzip CSV, and the hostile inputs: peak RSS
#   parquet    one Parquet file at two row-group sizes: peak RSS and rows/s
#   backlog    1,000,000 keys: listing vs aws s3api and raw requests, first
#              dispatch, drain
#   netcdf     Met Office samples into moto's DynamoDB vs BatchWriteItem only
#   coldstart  process start -> first runtime API request vs a hello
#              function; package sizes
#   cost       `s3loader cost` with the durations measured above
# About 75 minutes on 2 cores with a warm build cache (the backlog's
# 1,000,000 puts alone take ~12).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${S3LOADER_TEST_SEAWEEDFS:?run through tests/services.sh}"
cases=${BENCH_CASES:-small lambda large memory parquet backlog netcdf coldstart cost}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/s3loader-target}"
export BENCH_STATE; BENCH_STATE=$(mktemp -d)
trap 'rm -rf "$BENCH_STATE"' EXIT
peers=$(bench/peers.sh)
cargo build --release -q -p s3loader
# The profiles (bench/profile.sh) and the text written from them sit after
# this marker in RESULTS.md; a rewrite keeps them, after the new cases.
marker='<!-- profiles: bench/profile.sh appends below; bench/run.sh keeps this part -->'
awk -v m="$marker" 'kept || $0 == m {kept = 1; print}' bench/RESULTS.md > "$BENCH_STATE/profiles.md" 2>/dev/null || true
[ -s "$BENCH_STATE/profiles.md" ] || printf '%s\n\n# Profiles, and what they changed\n' "$marker" > "$BENCH_STATE/profiles.md"
# BENCH_KEEP=1 appends to RESULTS.md (e.g. the cases after one that failed).
[ -n "${BENCH_KEEP:-}" ] || cat > bench/RESULTS.md <<MD
# Benchmark results

Written by \`tests/services.sh bench/run.sh\` (README, "Benchmarks") on $(date -u '+%Y-%m-%d %H:%M UTC'): every case's peers and floor ran in the same run, on the same data, $(echo "${BENCH_REPS:-3}") repetitions, medians with the raw numbers. Goals are the benchmark's, never a test's.

The profiles behind the cases that miss their goals, and what they changed (before and after), are at the end of this file, under "Profiles" (\`bench/profile.sh\`, not this run; a rewrite keeps them).

Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -sr). Everything (SeaweedFS, PostgreSQL, moto, the loader, the peers) on this one machine.

Versions: s3loader $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!bench/RESULTS.md' || echo '+changes'), $(rustc --version | cut -d' ' -f1-2), PostgreSQL $(psql -qAt "$S3LOADER_TEST_PG" -c 'SHOW server_version' | cut -d' ' -f1), SeaweedFS $(weed version 2>/dev/null | head -n1 | awk '{print $3}'), moto $(python3 -c 'import moto; print(moto.__version__)' 2>/dev/null || echo '?'), dlt $("$peers/python" -c 'import dlt; print(dlt.__version__)'), $("$peers/aws" --version 2>&1 | cut -d' ' -f1), $(cargo lambda --version 2>/dev/null | head -n1).
MD
for c in $cases; do
  echo "== case: $c ($(date -u +%H:%M:%S))" >&2
  start=$(date +%s)
  # One failing case does not stop the others; it is named in RESULTS.md.
  bash "bench/$c.sh" || printf '\n## %s: FAILED (exit %s) in this run\n' "$c" "$?" >> bench/RESULTS.md
  echo "== case $c took $(( $(date +%s) - start )) s" >&2
done
# The profiles last (with BENCH_KEEP=1 they are already in the file, and
# the new sections went after them).
[ -n "${BENCH_KEEP:-}" ] || { echo; cat "$BENCH_STATE/profiles.md"; } >> bench/RESULTS.md
echo "bench/RESULTS.md written" >&2
