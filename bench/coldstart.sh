#!/usr/bin/env bash
# Cold start: process start -> first request to the runtime API (the
# function ready for its first event), under a local runtime API stand-in
# (bench/coldstart.py), release builds for this machine, BENCH_COLD_RUNS
# (30) starts each, the median; against a minimal lambda_runtime hello
# function built the same way (loader/examples/hello_lambda.rs). Then the
# Lambda packages as infra/package.sh builds them (arm64, zipped).
#
#   tests/services.sh bench/coldstart.sh     (bench/run.sh runs every case)
set -euo pipefail
source "$(dirname "$0")/common.sh"
runs=${BENCH_COLD_RUNS:-30}
# As infra/package.sh builds them: the scheduler without destinations.
cargo build --release -q -p s3loader --no-default-features --bin scheduler-lambda
cp "$CARGO_TARGET_DIR/release/scheduler-lambda" "$work/"
cargo build --release -q -p s3loader-loader --bin loader-lambda --example hello_lambda
cargo build --release -q -p s3loader  # back to the CLI's features for the cases after
export S3LOADER_CONFIG_TOML
S3LOADER_CONFIG_TOML=$(pg_config bench "")
export S3LOADER_LOADER_FUNCTION=loader-lambda BENCH_PG="$pg_admin"
# Interleaved passes, so drift on the machine hits all three alike.
out=""
for pass in 1 2 3; do
  out+=$(python3 bench/coldstart.py $((runs / 3)) \
    hello="$CARGO_TARGET_DIR/release/examples/hello_lambda" \
    scheduler-lambda="$work/scheduler-lambda" \
    loader-lambda="$CARGO_TARGET_DIR/release/loader-lambda")$'\n'
done
echo "$out" >&2
med() { grep "^$1 " <<<"$out" | sed 's/.*raw_ms=//' | tr ',' '\n' | median; }
all() { grep "^$1 " <<<"$out" | sed 's/.*raw_ms=//' | tr '\n' ',' | sed 's/,$//'; }
hello=$(med hello); sched=$(med scheduler-lambda); load=$(med loader-lambda)
pkg=$(infra/package.sh 2>&1 | grep 'bytes zipped')
size() { grep "$1/bootstrap.zip" <<<"$pkg" | awk '{print $3}'; }
zs=$(size scheduler-lambda); zl=$(size loader-lambda)
section <<MD
## Cold start: process start → first request to the runtime API ($(date -u +%Y-%m-%d), median of $runs starts each, release, x86_64 host)

| function | ms (median) | over hello, ms | zipped package (arm64, infra/package.sh) |
|---|---|---|---|
| minimal lambda_runtime hello | $(printf %.2f "$hello") | — | — |
| scheduler-lambda | $(printf %.2f "$sched") | $(printf %+.2f "$(echo "$sched - $hello" | bc -l)") | $(printf %.2f "$(div "$zs" 1048576)") MiB ($zs bytes) |
| loader-lambda | $(printf %.2f "$load") | $(printf %+.2f "$(echo "$load - $hello" | bc -l)") | $(printf %.2f "$(div "$zl" 1048576)") MiB ($zl bytes) |

Raw (ms): hello $(all hello); scheduler $(all scheduler-lambda); loader $(all loader-lambda).

Goals: within 5 ms of the hello function; packages < 6 MB (scheduler) and < 10 MB (loader), met only if under 6,000,000 and 10,000,000 bytes. Measured here, not on Lambda: Firecracker's own start and the download of the package come on top, the same for every function.
MD
