#!/usr/bin/env bash
# The benchmark's peers, in a virtualenv of their own under the build cache
# (never the user's Python): dlt with its filesystem source, S3 and
# PostgreSQL extras (and pandas, which its CSV reader uses), and the AWS
# CLI. Idempotent; prints the venv's bin directory.
set -euo pipefail
venv="${BENCH_VENV:-$HOME/.cache/s3loader-bench-venv}"
if [ ! -x "$venv/bin/dlt" ] || [ ! -x "$venv/bin/aws" ]; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q --upgrade pip >&2
  "$venv/bin/pip" install -q "dlt[postgres,filesystem,s3]" pandas awscli >&2
fi
echo "$venv/bin"
