#!/usr/bin/env bash
# tests/postgres/server.sh — a throwaway PostgreSQL server for the certificate database
# tests, from Debian's postgresql package.
#
#   server.sh start DIR PORT   initdb a cluster in DIR (owned by the postgres user when run
#                              as root), start it on 127.0.0.1:PORT with TLS required
#                              (hostssl only; a test CA in DIR/ca.pem, the server's
#                              certificate names "localhost" only), create role
#                              "identify" (password "identify") and database "certs";
#                              prints the URL (sslmode=verify-full, sslrootcert=DIR/ca.pem)
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
    # A test CA and the server's certificate, for "localhost" only (so that connecting to
    # 127.0.0.1 with verify-full fails: tests/postgres_tls.rs).
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=identify-pkcs11 test PostgreSQL CA" -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -subj "/CN=localhost" -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -days 2 \
        -extfile <(printf 'subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n') \
        -out "$dir/server.pem" 2>/dev/null
    chmod 600 "$dir/server.key" "$dir/ca.key"
    chmod 644 "$dir/ca.pem"
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
    # TCP connections without TLS are refused: every test through this server uses TLS.
    printf 'local all postgres scram-sha-256\nhostssl all all 127.0.0.1/32 scram-sha-256\n' |
        as_pg tee "$dir/data/pg_hba.conf" >/dev/null
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
        -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c ssl=on -c ssl_cert_file=$dir/server.pem -c ssl_key_file=$dir/server.key" start >/dev/null ||
        { cat "$dir/server.log" >&2; exit 1; }
    PGPASSWORD=postgres "$bin/psql" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres \
        -c "CREATE ROLE identify LOGIN PASSWORD 'identify'" -c "CREATE DATABASE certs OWNER identify"
    echo "postgres://identify@localhost:$port/certs?sslmode=verify-full&sslrootcert=$dir/ca.pem"
    ;;
stop)
    as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    ;;
*)
    echo "usage: $0 start DIR PORT | stop DIR" >&2
    exit 2
    ;;
esac
