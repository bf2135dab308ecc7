#!/usr/bin/env bash
# tests/clients/key-vault.sh — the real clients of run.sh against a key-vault slot (in a module
# that serves a directory slot and a managed-hsm slot beside it) and a
# managed-hsm-like key-vault slot served by the emulator (tests/kv-emulator), seeded with
# the fixture keys. Also checks the request counts the architecture promises.
#
# Usage: tests/clients/key-vault.sh MODULE EMULATOR WORK
#   MODULE    the built libidentify_pkcs11.so
#   EMULATOR  the built kv-emulator binary
#   WORK      scratch directory (created)
# Needs the emulator's host names to resolve to 127.0.0.1 (added to /etc/hosts when
# writable). Ends with "N passed, N failed" like run.sh, twice: the clients, then the
# request counts (tests/clients/count_requests.py); exit status 1 if either failed.
set -uo pipefail
MODULE=$1 EMULATOR=$2 WORK=$3
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
# shellcheck source=tests/clients/emulator.sh
. "$HERE/emulator.sh"

secret=$WORK/client-secret
umask 077
# The default (officer) principal: the client checks generate and delete keys. The
# module's signing paths run as the least-privileged signer principal in tests/key_vault.rs
# and tests/clients/managed-hsm.sh.
field client_secret | tr -d '\n' >"$secret"
credential() { # the [slot.credential] table of every slot here
    cat <<CONF
[slot.credential]
type = "client-secret"
tenant_id = "$(field tenant_id)"
client_id = "$(field client_id)"
client_secret_file = "$secret"
authority_host = "$(field authority_host)"
CONF
}
cat >"$WORK/config.toml" <<CONF
[[slot]]
label = "vault"
kind = "key-vault"
vault = "$(field vault_url)"
ca_file = "$(field ca_file)"
certificates = "sqlite://$WORK/certificates.db"
allow_destroy = true
$(credential)
CONF
admin=$(field admin_url)
# The request counts below run on the vault slot alone (counts.toml); the clients run on
# one module serving every kind: a directory slot and a managed-hsm slot beside the vault.
sed 's/^kind = "key-vault"$/kind = "key-vault"\nrefresh_seconds = 3600/' "$WORK/config.toml" \
    >"$WORK/counts.toml"
grep -q '^refresh_seconds = 3600$' "$WORK/counts.toml" || { echo "counts.toml not written"; exit 1; }
mkdir -p "$WORK/dir-store"
cp "$ROOT"/softhsm-fixtures/keys/*.pem "$WORK/dir-store/"
cat >>"$WORK/config.toml" <<CONF

[[slot]]
label = "dir"
kind = "cert-store"
path = "$WORK/dir-store"

[[slot]]
label = "hsm"
kind = "managed-hsm"
hsm = "$(field hsm_url)"
ca_file = "$(field ca_file)"
certificates = "sqlite://$WORK/hsm-certificates.db"
$(credential)
CONF

export IDENTIFY_PKCS11_CONFIG=$WORK/config.toml IDENTIFY_PKCS11_LOG=${IDENTIFY_PKCS11_LOG:-error}
status=0
MODULE=$MODULE TOKEN_LABEL=vault PIN=1234 WORK=$WORK/clients PYTHON=${PYTHON:-python3} \
    bash "$HERE/run.sh" || status=1

# The request counts (count_requests.py), on the same vault alone with a refresh interval
# longer than the run, so that every request it sees was caused by the calls it makes.
python=$WORK/clients/venv/bin/python # made by run.sh's python-pkcs11 checks
echo "request counts (tests/clients/count_requests.py)"
if [ -x "$python" ]; then
    IDENTIFY_PKCS11_CONFIG=$WORK/counts.toml "$python" "$HERE/count_requests.py" "$MODULE" \
        vault 1234 rsa2048 p256 "$admin" || status=1
else
    echo "FAIL request counts: no python-pkcs11 venv at $python (run.sh did not make it)"
    status=1
fi
exit $status
