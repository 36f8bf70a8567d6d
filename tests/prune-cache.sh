#!/usr/bin/env bash
# Keeps the shared build cache ($CARGO_TARGET_DIR) from filling the disk.
# Every clone builds the workspace's own crates under new hashes (the path
# is part of them), about 5 GB of test binaries a clone; a full disk
# surfaces as SeaweedFS answering InternalError mid-test. With less than
# PRUNE_BELOW_GB (20) free, this removes the incremental caches and, for
# each of the workspace's crates, every build but the newest. Dependencies
# are untouched (they are what makes a warm build fast). Prints what it
# freed; does nothing with enough room.
set -euo pipefail
target="${CARGO_TARGET_DIR:-$HOME/.cache/s3loader-target}"
[ -d "$target" ] || exit 0
free_gb=$(df -P -BG "$target" | awk 'NR == 2 {sub("G", "", $4); print $4}')
if [ "$free_gb" -ge "${PRUNE_BELOW_GB:-20}" ]; then
  exit 0
fi
echo "prune: ${free_gb} GB free under $target; removing stale builds of the workspace's crates" >&2
python3 - "$target" <<'PY'
import collections, os, re, shutil, sys
target = sys.argv[1]
# The workspace's crates, binaries and test targets (cargo writes `-` as `_`).
ours = {"s3loader", "s3loader_loader", "s3loader_fanout", "s3loader_e2e", "loader", "scheduler",
        "fanout", "libloader", "libscheduler", "libfanout", "libs3loader_e2e", "loader_lambda",
        "scheduler_lambda", "events_lambda", "ddb_floor", "s3_floor", "cli", "safety", "pipeline",
        "faults", "lambda", "forecasts", "metrics", "events", "dest_conformance", "store_conformance"}
freed = 0
for profile in ("debug", "lambda-watch/debug"):
    inc = os.path.join(target, profile, "incremental")
    if os.path.isdir(inc):
        for d in os.listdir(inc):
            p = os.path.join(inc, d)
            freed += sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(p) for f in fs)
            shutil.rmtree(p, ignore_errors=True)
    deps = os.path.join(target, profile, "deps")
    if not os.path.isdir(deps):
        continue
    builds = collections.defaultdict(lambda: collections.defaultdict(list))
    for f in os.listdir(deps):
        m = re.match(r"^(.*)-([0-9a-f]{16})(\..*)?$", f)
        if m and m.group(1) in ours:
            builds[m.group(1)][m.group(2)].append(os.path.join(deps, f))
    for name, hashes in builds.items():
        newest = max(hashes, key=lambda h: max(os.path.getmtime(p) for p in hashes[h]))
        for h, paths in hashes.items():
            if h == newest:
                continue
            for p in paths:
                if os.path.isfile(p):
                    freed += os.path.getsize(p)
                    os.remove(p)
                else:
                    shutil.rmtree(p, ignore_errors=True)
print(f"prune: freed {freed >> 20} MB", file=sys.stderr)
PY
