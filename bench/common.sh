# Sourced by every benchmark: the repository root, the services it needs,
# a release build of the CLI ($bin), a scratch directory ($work, removed on
# exit), and PostgreSQL helpers. Benchmarks measure; they assert nothing.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
: "${S3LOADER_TEST_SEAWEEDFS:?run through tests/services.sh}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/s3loader-target}"
cargo build --release -q -p s3loader
bin="$CARGO_TARGET_DIR/release/s3loader"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export AWS_ENDPOINT_URL_S3="$S3LOADER_TEST_SEAWEEDFS"
pg_admin="${S3LOADER_TEST_PG:-}"

psql_() { psql "$1" -v ON_ERROR_STOP=1 -qAt -c "$2"; }

# Prints a connection string to a fresh database with an orders table
# (plus any extra column definitions given, e.g. ", note text").
new_db() {
  local db="bench_$(date +%s%N)"
  psql_ "$pg_admin" "CREATE DATABASE $db" >/dev/null
  local url="${pg_admin/dbname=postgres/dbname=$db}"
  psql_ "$url" "CREATE TABLE orders (id bigint, customer text, amount numeric(12,2), ordered_at timestamptz${1:-})" >/dev/null
  echo "$url"
}

# A config that loads every key of bucket $1 into PostgreSQL (env:BENCH_PG)
# table orders, with the [tick] lines $2.
pg_config() {
  cat <<TOML
[source]
url = "s3://$1"
[tick]
$2
[destinations.pg]
kind = "postgres"
url = "env:BENCH_PG"
[[route]]
pattern = "**"
destination = "pg"
table = "orders"
TOML
}
