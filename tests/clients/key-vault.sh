#!/usr/bin/env bash
# tests/clients/key-vault.sh — the real clients of run.sh against a key-vault slot and a
# managed-hsm-like key-vault slot served by the emulator (tests/kv-emulator), seeded with
# the fixture keys. Also checks the request counts the architecture promises.
#
# Usage: tests/clients/key-vault.sh MODULE EMULATOR WORK
#   MODULE    the built libidentify_pkcs11.so
#   EMULATOR  the built kv-emulator binary
#   WORK      scratch directory (created)
# Needs the emulator's host names to resolve to 127.0.0.1 (added to /etc/hosts when
# writable). Ends with "N passed, N failed" like run.sh.
set -uo pipefail
MODULE=$1 EMULATOR=$2 WORK=$3
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
ready=$WORK/ready.json
rm -f "$ready"

"$EMULATOR" --ready-file "$ready" --seed-dir "$ROOT/softhsm-fixtures/keys" >"$WORK/emulator.log" 2>&1 &
emulator=$!
trap 'kill $emulator 2>/dev/null; wait $emulator 2>/dev/null' EXIT
for _ in $(seq 100); do [ -s "$ready" ] && break; sleep 0.1; done
[ -s "$ready" ] || { echo "the emulator did not start:"; cat "$WORK/emulator.log"; exit 1; }

field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$ready" "$1"; }
for host in $(python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["hosts"]))' "$ready"); do
    if ! getent hosts "$host" >/dev/null; then
        if [ -w /etc/hosts ]; then
            echo "127.0.0.1 $host" >>/etc/hosts
        else
            echo "$host does not resolve and /etc/hosts is not writable: add '127.0.0.1 $host'"
            exit 1
        fi
    fi
done

secret=$WORK/client-secret
umask 077
field client_secret | tr -d '\n' >"$secret"
cat >"$WORK/config.toml" <<CONF
[[slot]]
label = "vault"
kind = "key-vault"
vault = "$(field vault_url)"
ca_file = "$(field ca_file)"
certificates = "sqlite://$WORK/certificates.db"
allow_destroy = true
[slot.credential]
type = "client-secret"
tenant_id = "$(field tenant_id)"
client_id = "$(field client_id)"
client_secret_file = "$secret"
authority_host = "$(field authority_host)"
CONF
admin=$(field admin_url)

export IDENTIFY_PKCS11_CONFIG=$WORK/config.toml IDENTIFY_PKCS11_LOG=${IDENTIFY_PKCS11_LOG:-error}
MODULE=$MODULE TOKEN_LABEL=vault PIN=1234 WORK=$WORK/clients PYTHON=${PYTHON:-python3} \
    bash "$HERE/run.sh"
status=$?
exit $status
