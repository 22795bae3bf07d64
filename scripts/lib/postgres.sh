# Sourced by scripts/test and scripts/reliability. `start_test_postgres` starts a throwaway
# PostgreSQL on 127.0.0.1 in a temporary folder (stopped and removed on exit), with TLS on and a
# certificate for 127.0.0.1, and exports DOORBUSTER_TEST_POSTGRES_URL and
# DOORBUSTER_TEST_POSTGRES_CA. It does nothing when DOORBUSTER_TEST_POSTGRES_URL is already set
# (a server of your own). Needs the PostgreSQL server binaries (Debian: apt-get install postgresql).

find_pg_bin() {
  if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
    dirname "$(command -v pg_ctl)"
    return
  fi
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [[ -n "$dir" && -x "$dir/pg_ctl" ]]; then
    echo "$dir"
    return
  fi
  echo "$0: PostgreSQL server binaries not found; install them (Debian: apt-get install postgresql) or set DOORBUSTER_TEST_POSTGRES_URL" >&2
  exit 1
}

start_test_postgres() {
  [[ -z "${DOORBUSTER_TEST_POSTGRES_URL:-}" ]] || return 0
  PG_BIN=$(find_pg_bin)
  PG_DIR=$(mktemp -d -t doorbuster-pg.XXXXXX)
  PG_PORT=${DOORBUSTER_TEST_PG_PORT:-$(( 20000 + RANDOM % 20000 ))}
  # PostgreSQL refuses to run as root: use the postgres account when we are root.
  run_pg() { "$@"; }
  if [[ $(id -u) -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir "$PG_DIR" postgres
    chown postgres "$PG_DIR"
    run_pg() { runuser -u postgres -- "$@"; }
  fi
  stop_pg() {
    run_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
  }
  trap stop_pg EXIT
  run_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres -A trust -E UTF8 >"$PG_DIR/initdb.log" 2>&1 \
    || { cat "$PG_DIR/initdb.log"; exit 1; }
  # TLS as on Azure Database for PostgreSQL, with a throwaway certificate for 127.0.0.1, so the
  # tests can prove that `sslmode=verify-full` connects.
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=127.0.0.1" \
    -addext "subjectAltName=IP:127.0.0.1" -addext "basicConstraints=critical,CA:FALSE" -keyout "$PG_DIR/data/server.key" \
    -out "$PG_DIR/data/server.crt" 2>/dev/null
  chmod 600 "$PG_DIR/data/server.key"
  [[ $(id -u) -ne 0 ]] || chown postgres "$PG_DIR/data/server.key" "$PG_DIR/data/server.crt"
  export DOORBUSTER_TEST_POSTGRES_CA="$PG_DIR/data/server.crt"
  # Test-only settings: no durability (fsync off) and room for many parallel test databases.
  run_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 30 \
    -o "-h 127.0.0.1 -p $PG_PORT -k $PG_DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 -c ssl=on" \
    start >/dev/null || { cat "$PG_DIR/server.log"; exit 1; }
  export DOORBUSTER_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
  echo "$0: PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT"
}
