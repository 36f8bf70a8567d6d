#!/usr/bin/env bash
# Sums the `fault-tally` lines the fault scenarios write (one per seeded
# run; FAULT_TALLY_FILE) into a table per scenario and destination, and one
# closing `tests/faults:` line. Fails if any row was lost or doubled, or if
# there are no tallies at all.
#
#   tests/fault-table.sh TALLY_FILE
set -euo pipefail
file=${1:?usage: tests/fault-table.sh TALLY_FILE}
[ -s "$file" ] || { echo "tests/faults: no fault-tally lines in $file" >&2; exit 1; }
awk '
  /^fault-tally / {
    delete f
    for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    k = f["scenario"] " | " f["destination"]
    if (!(k in runs)) order[n++] = k
    runs[k]++; files[k] += f["files"]; rows[k] += f["rows"]
    lost[k] += f["lost"]; doubled[k] += f["doubled"]
    R++; F += f["files"]; W += f["rows"]; L += f["lost"]; D += f["doubled"]
  }
  END {
    print "| scenario | destination | runs | files | rows | lost | doubled |"
    print "|---|---|---|---|---|---|---|"
    # Sorted by scenario, then destination.
    for (i = 0; i < n; i++) for (j = i + 1; j < n; j++)
      if (order[j] < order[i]) { t = order[i]; order[i] = order[j]; order[j] = t }
    for (i = 0; i < n; i++) {
      k = order[i]
      printf "| %s | %d | %d | %d | %d | %d |\n", k, runs[k], files[k], rows[k], lost[k], doubled[k]
    }
    printf "tests/faults: %d runs, %d files, %d rows, %d lost, %d doubled\n", R, F, W, L, D
    exit (L + D > 0)
  }' "$file"
