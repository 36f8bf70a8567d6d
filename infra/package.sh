#!/usr/bin/env bash
# Builds the three Lambda functions for provided.al2023 on arm64 (Graviton)
# and zips them where infra/template.yaml expects them:
#   infra/build/scheduler-lambda/bootstrap.zip
#   infra/build/loader-lambda/bootstrap.zip
#   infra/build/events-lambda/bootstrap.zip   (the fast path)
# cargo-lambda cross-compiles with zig (PyPI ziglang); tests/install-deps.sh
# installs both. Prints each package's size.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# A target dir of its own: a cross build shares nothing with the host one.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/s3loader-target}/lambda-release"
rustup target list --installed 2>/dev/null | grep -q '^aarch64-unknown-linux-gnu$' \
  || rustup target add aarch64-unknown-linux-gnu
start=$(date +%s)
# The scheduler only lists, dispatches and moves: built with no destination
# features, it links neither libnetcdf nor a database client. The loader
# and the events function (which loads in-process) take every destination.
cargo lambda build --release --arm64 --output-format zip --lambda-dir infra/build \
  -p s3loader --no-default-features --bin scheduler-lambda
cargo lambda build --release --arm64 --output-format zip --lambda-dir infra/build \
  -p s3loader-loader --bin loader-lambda
cargo lambda build --release --arm64 --output-format zip --lambda-dir infra/build \
  -p s3loader --bin events-lambda
echo "package: built in $(( $(date +%s) - start )) s (target dir $CARGO_TARGET_DIR)"
for fn in scheduler-lambda loader-lambda events-lambda; do
  zip="infra/build/$fn/bootstrap.zip"
  [ -s "$zip" ] || { echo "package: $zip is missing" >&2; exit 1; }
  bin_bytes=$(python3 -c 'import sys, zipfile; print(sum(i.file_size for i in zipfile.ZipFile(sys.argv[1]).infolist()))' "$zip")
  echo "package: $zip $(stat -c %s "$zip") bytes zipped, $bin_bytes bytes unzipped"
done
