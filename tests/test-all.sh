#!/usr/bin/env bash
# The test command (README, "Test"): installs what is missing, checks
# formatting and lints, validates and scans the SAM template, builds the
# three Lambda packages, starts the local services and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

# Reuse one build cache across clones: cold builds of the AWS SDK are slow.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/s3loader-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

tests/install-deps.sh
# The shared cache grows by a clone's worth of test binaries each run.
tests/prune-cache.sh
echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy -D warnings" >&2
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo clippy per feature (what each binary can be built with)" >&2
# --no-default-features is the scheduler Lambda's build (infra/package.sh);
# each feature alone must also build clean.
for features in "" postgres sqlite netcdf redshift; do
  cargo clippy -p s3loader -p s3loader-loader --no-default-features \
    ${features:+--features "$features"} -- -D warnings
done
echo "== cargo machete (unused dependencies)" >&2
cargo machete
echo "== infra/check.sh (cfn-lint, checkov)" >&2
infra/check.sh
echo "== infra/package.sh (the three Lambda functions, arm64)" >&2
infra/package.sh
echo "== cargo test (with SeaweedFS, moto and PostgreSQL)" >&2
log=$(mktemp)
# The fault scenarios (tests/faults.rs, and the Lambda path's in
# tests/lambda.rs) append one line per seeded run here: the quick profile
# (FAULT_SEEDS=2, FAULT_OUTAGE_SECS=3 unless set; README, "Faults").
export FAULT_TALLY_FILE
FAULT_TALLY_FILE=$(mktemp)
trap 'rm -f "$log" "$FAULT_TALLY_FILE"' EXIT
status=0
# --no-fail-fast: one failing test binary must not hide the others' results.
tests/services.sh cargo test --workspace --no-fail-fast 2>&1 | tee "$log" || status=$?
echo "== fault scenarios: runs, files and rows, lost or doubled" >&2
tests/fault-table.sh "$FAULT_TALLY_FILE" || status=1
echo "== the README's first command, as written there, twice" >&2
tests/readme-first-command.sh 2>&1 | tee -a "$log" || status=1
# One closing line for the whole run: cargo's own last line is that of the
# last test binary, often the (empty) doc tests.
awk '/^test result:/ { p += $4; f += $6 }
     /^readme first command:/ { p += $4; f += $6 }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit $status
