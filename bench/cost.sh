#!/usr/bin/env bash
# Cost: `s3loader cost` (scheduler/src/cost.rs) for three workloads, with
# the Lambda durations bench/lambda.sh measured in this run when it ran
# first (else the command's defaults), beside Snowpipe's and Firehose's
# published fees. Every price with its source and date is in the output.
#
#   tests/services.sh bench/cost.sh     (bench/run.sh runs every case)
set -euo pipefail
source "$(dirname "$0")/common.sh"
state="${BENCH_STATE:-$CARGO_TARGET_DIR/bench-state}"
args=(); measured="the command's defaults (no Lambda case in this run)"
if [ -s "$state/lambda.env" ]; then
  source "$state/lambda.env"
  args=(--loader-ms-per-file "$loader_ms_per_file" --scheduler-ms-per-tick "$scheduler_ms_per_tick")
  measured="measured by the Lambda case above: $(printf %.1f "$loader_ms_per_file") ms per file, $(printf %.0f "$scheduler_ms_per_tick") ms per tick (upper bounds)"
fi
{
  echo "## Cost: this design on AWS per month and per million files ($(date -u +%Y-%m-%d))"
  echo
  echo "Model: scheduler/src/cost.rs; Lambda durations $measured. us-east-1 list prices, no free tier."
  for w in "33333 2048 1,000,000 files a month of 2 KB" "1000000 2048 1,000,000 files a day of 2 KB" "1000 209715200 1,000 files a day of 200 MB"; do
    read -r n s label <<<"$w"
    echo; echo "### $label"; echo
    extra=("${args[@]}")
    if [ "$s" -gt 1000000 ] && [ -s "$state/large.env" ]; then  # large files: the large case's pace
      source "$state/large.env"
      extra=(--loader-ms-per-file "$(echo "$loader_ms_per_mb * $s / 1048576" | bc -l)" --batch-files 1 "${args[@]:2}")
      echo "(Loader time from the large-files case: $(printf %.0f "$loader_ms_per_mb") ms per MB, one file per invoke.)"; echo
    fi
    "$bin" cost --files-per-day "$n" --avg-bytes "$s" "${extra[@]}" | sed '/^Prices assumed/,$d'
  done
  echo
  "$bin" cost --files-per-day 1 --avg-bytes 1 | sed -n '/^Prices assumed/,$p'
} | section
