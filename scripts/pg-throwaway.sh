#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests: a fresh cluster in a
# temporary folder (data, socket and log inside it), listening on
# 127.0.0.1 only, on a free port, with trust authentication (nothing else
# can reach it) and no fsync (nothing in it needs to survive).
#
#   eval "$(scripts/pg-throwaway.sh start)"    # exports MTLBENCH_TEST_POSTGRES and MTLBENCH_PG_DIR
#   scripts/pg-throwaway.sh stop "$MTLBENCH_PG_DIR"
#
# `start --watch PID` also stops the server (and removes its folder) once
# process PID has exited: the tests use it when nobody started a server.
# initdb refuses to run as root: as root, the server runs as the `postgres`
# user of Debian's postgresql package. The binaries are taken from
# $PG_BIN, else the newest /usr/lib/postgresql/*/bin.
set -euo pipefail

pg_bin() {
  if [[ -n "${PG_BIN:-}" ]]; then echo "$PG_BIN"; return; fi
  local d
  d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  if [[ -z "$d" || ! -x "$d/initdb" ]]; then
    echo "pg-throwaway: no PostgreSQL binaries (install Debian's postgresql package or set PG_BIN)" >&2
    exit 2
  fi
  echo "$d"
}

# Runs a command as the server's user.
as_pg() {
  if [[ "$(id -u)" == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

stop() {
  local dir="$1"
  [[ -n "$dir" && -d "$dir/data" ]] || return 0
  as_pg "$(pg_bin)/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}

free_port() {
  local port
  for _ in $(seq 1 50); do
    port=$(( 20000 + RANDOM % 30000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
  done
  echo "pg-throwaway: no free port found" >&2
  exit 2
}

start() {
  local bin dir port
  bin="$(pg_bin)"
  dir="$(mktemp -d "${TMPDIR:-/tmp}/mtlbench-pg.XXXXXX")"
  chmod 755 "$dir"
  mkdir -p "$dir/sock"
  [[ "$(id -u)" == 0 ]] && chown -R postgres "$dir"
  as_pg "$bin/initdb" -D "$dir/data" -U postgres -A trust --no-sync -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; rm -rf "$dir"; exit 1; }
  for attempt in 1 2 3 4 5; do
    port="$(free_port)"
    if as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-h 127.0.0.1 -p $port -k $dir/sock -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
        start >/dev/null 2>&1; then
      echo "export MTLBENCH_TEST_POSTGRES=postgres://postgres@127.0.0.1:$port/postgres"
      echo "export MTLBENCH_PG_DIR=$dir"
      return 0
    fi
    echo "pg-throwaway: start on port $port failed (attempt $attempt)" >&2
  done
  cat "$dir/server.log" >&2 || true
  rm -rf "$dir"
  exit 1
}

case "${1:-}" in
  start)
    out="$(start)"
    echo "$out"
    if [[ "${2:-}" == "--watch" && -n "${3:-}" ]]; then
      dir="$(echo "$out" | sed -n 's/^export MTLBENCH_PG_DIR=//p')"
      watched="$3"
      # Detached: stops the server once the watched process is gone.
      nohup bash -c "while kill -0 $watched 2>/dev/null; do sleep 1; done; '$0' stop '$dir'" >/dev/null 2>&1 &
    fi
    ;;
  stop) stop "${2:?usage: $0 stop DIR}" ;;
  *) echo "usage: $0 start [--watch PID] | stop DIR" >&2; exit 2 ;;
esac
