#!/usr/bin/env bash
# tests/postgres/server.sh — a throwaway PostgreSQL server for the certificate database
# tests, from Debian's postgresql package.
#
#   server.sh start DIR PORT   initdb a cluster in DIR (owned by the postgres user when run
#                              as root), start it on 127.0.0.1:PORT, create role
#                              "identify" (password "identify") and database "certs";
#                              prints the URL
#   server.sh stop DIR         stop it
set -euo pipefail
cmd=$1 dir=$2
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
case $cmd in
start)
    port=$3
    mkdir -p "$dir"
    (umask 077 && echo postgres >"$dir/pwfile")
    if [ "$(id -u)" = 0 ]; then
        chown -R postgres: "$dir"
        # The postgres user must reach DIR through its parents (mktemp makes them 0700).
        runuser -u postgres -- test -x "$dir" || {
            echo "server.sh: the postgres user cannot reach $dir; use a directory under a world-searchable parent" >&2
            exit 1
        }
    fi
    as_pg "$bin/initdb" -D "$dir/data" -A scram-sha-256 --pwfile="$dir/pwfile" -U postgres >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; exit 1; }
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
        -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir" start >/dev/null ||
        { cat "$dir/server.log" >&2; exit 1; }
    PGPASSWORD=postgres "$bin/psql" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres \
        -c "CREATE ROLE identify LOGIN PASSWORD 'identify'" -c "CREATE DATABASE certs OWNER identify"
    echo "postgres://identify@127.0.0.1:$port/certs"
    ;;
stop)
    as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    ;;
*)
    echo "usage: $0 start DIR PORT | stop DIR" >&2
    exit 2
    ;;
esac
