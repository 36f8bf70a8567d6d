#!/usr/bin/env bash
# The profile behind the small-files case (the case furthest from its
# goal): BENCH_FILES (5,000) files drained by `s3loader tick` while
# `perf record -a -g` samples the whole machine (SeaweedFS, PostgreSQL and
# s3loader share its cores). Appends to RESULTS.md: CPU by process, and
# s3loader's top frames (self and with children). Needs perf (Debian's
# linux-perf) and kernel.perf_event_paranoid <= 1 or root.
#
#   tests/services.sh bench/profile.sh     (not part of bench/run.sh)
set -euo pipefail
# (No `| head` after perf report: under pipefail its SIGPIPE fails the script.)
source "$(dirname "$0")/common.sh"
files=${BENCH_FILES:-5000}
command -v perf >/dev/null || { echo "perf not found (apt-get install linux-perf)" >&2; exit 1; }
gen_csv "$files" 20 "$work/small"
b="profile-$(date +%s)"; upload "$work/small" "$b"
export BENCH_PG; BENCH_PG=$(new_db ", note text")
pg_config "$b" "$small_tick" > "$work/p.toml"
perf record -q -a -g -F 499 -o "$work/perf.data" &
perf_pid=$!
sleep 1
read -r secs ticks _ < <(drain "$work/p.toml")
kill -INT "$perf_pid"; wait "$perf_pid" || true
n=$(psql_ "$BENCH_PG" "SELECT count(*) FROM s3loader_ledger")
drop_db "$BENCH_PG"
by_comm=$(perf report -q -i "$work/perf.data" --no-children --sort comm --stdio -g none 2>/dev/null | awk 'NF && $1 ~ /%/ && n++ < 12 {print "| " $2 " | " $1 " |"}')
top=$(perf report -q -i "$work/perf.data" --comm s3loader,tokio-rt-worker --no-children --sort symbol --stdio -g none 2>/dev/null \
  | awk 'NF && $1 ~ /%/ && n++ < 25 {pct=$1; $1=""; sub(/^ +\[[^]]*\] +/, ""); print "| " pct " | `" substr($0, 1, 110) "` |"}')
children=$(perf report -q -i "$work/perf.data" --comm s3loader,tokio-rt-worker --children --sort symbol --stdio -g none 2>/dev/null \
  | awk 'NF && $1 ~ /%/ && n++ < 25 {pct=$1; $1=""; $2=""; sub(/^ +\[[^]]*\] +/, ""); print "| " pct " | `" substr($0, 1, 110) "` |"}')
section <<MD
## Profile: small files, $files files, \`perf record -a -g\` ($(date -u +%Y-%m-%d), s3loader $(git rev-parse --short HEAD))

$n files in $(printf %.1f "$secs") s ($(printf %.0f "$(div "$n" "$secs")") files/s, $ticks ticks) while sampled.

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
