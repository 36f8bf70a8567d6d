#!/usr/bin/env bash
# Validates and scans infra/template.yaml: cfn-lint (with the SAM
# transform), then checkov. Every checkov skip sits next to the resource it
# concerns, in the template's Metadata, with its reason. Then renders the
# config the template gives the functions (render-config.py) and runs
# `s3loader check` on it.
set -euo pipefail
cd "$(dirname "$0")"
checkov="${S3LOADER_TOOLS:-$HOME/.cache/s3loader-tools}/checkov/bin/checkov"
cfn-lint template.yaml
echo "check: cfn-lint passed"
# --skip-download: no calls to the Prisma Cloud API for guidelines.
"$checkov" -f template.yaml --framework cloudformation --compact --quiet --skip-download
echo "check: checkov passed"
# The config the template gives both functions, rendered as CloudFormation
# would for each kind of warehouse, must pass `s3loader check`.
cfg=$(mktemp -d)
trap 'rm -rf "$cfg"' EXIT
secret=arn:aws:secretsmanager:eu-west-2:123456789012:secret:s3loader
workgroup=arn:aws:redshift-serverless:eu-west-2:123456789012:workgroup/0b1c2d3e-aaaa-bbbb-cccc-0123456789ab
./render-config.py PostgresSecretArn=$secret RouteTable=public.orders >"$cfg/postgres.toml"
./render-config.py Warehouse=redshift RedshiftClusterId=analytics RedshiftSecretArn=$secret \
  RouteTable=public.orders >"$cfg/redshift-cluster.toml"
./render-config.py Warehouse=redshift RedshiftWorkgroupArn=$workgroup RouteTable=orders \
  MetricsSink=emf >"$cfg/redshift-serverless.toml"
for f in "$cfg"/*.toml; do
  cargo run -q -p s3loader -- --config "$f" check >"$cfg/out" 2>&1 \
    || { echo "check: the template's config for $(basename "$f" .toml) is refused:" >&2; cat "$cfg/out" >&2; exit 1; }
done
echo "check: the template's config passes s3loader check (postgres, redshift cluster, redshift serverless)"
