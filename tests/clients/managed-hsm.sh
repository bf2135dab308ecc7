#!/usr/bin/env bash
# tests/clients/managed-hsm.sh — a managed-hsm slot on the emulator with its certificate
# database, through real clients in separate processes:
#   1. before any certificate, keytool sees no PrivateKeyEntry (a key needs a certificate);
#   2. pkcs11-tool --write-object stores each fixture certificate (one process each);
#   3. another process (pkcs11-tool --list-objects) lists them, paired with the keys
#      (same CKA_ID), and keytool -list shows each key as a PrivateKeyEntry;
#   4. 16 processes write 16 more certificates at once: all 16 rows are there, once;
#   5. pkcs11-tool signs with the HSM key and OpenSSL verifies with the stored certificate.
#
# Usage: tests/clients/managed-hsm.sh MODULE EMULATOR WORK [DATABASE-URL]
#   DATABASE-URL  certificates = …: sqlite:… (default: a file in WORK) or postgres://…
#                 (its password from PGPASSWORD)
# Ends with "N passed, N failed".
set -uo pipefail
MODULE=$1 EMULATOR=$2 WORK=$3 DB=${4:-}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
rm -rf "$WORK"
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
DB=${DB:-sqlite://$WORK/certificates.db}
# shellcheck source=tests/clients/emulator.sh
. "$HERE/emulator.sh"
umask 077
field signer_client_secret | tr -d '\n' >"$WORK/client-secret"
cat >"$WORK/config.toml" <<CONF
[[slot]]
label = "hsm"
kind = "managed-hsm"
hsm = "$(field hsm_url)"
ca_file = "$(field ca_file)"
certificates = "$DB"
[slot.credential]
type = "client-secret"
tenant_id = "$(field tenant_id)"
client_id = "$(field signer_client_id)"
client_secret_file = "$WORK/client-secret"
authority_host = "$(field authority_host)"
CONF
export IDENTIFY_PKCS11_CONFIG=$WORK/config.toml IDENTIFY_PKCS11_LOG=${IDENTIFY_PKCS11_LOG:-error}
KEYS="rsa2048 rsa3072 p256"

p11() { pkcs11-tool --module "$MODULE" --token-label hsm --login --pin 1234 "$@"; }

keytool_entries() { # prints "LABEL, PrivateKeyEntry" lines; fails if keytool does
    printf 'name = HsmTest\nlibrary = %s\nslot = 0\n' "$MODULE" >"$WORK/java.cfg"
    keytool -list -storetype PKCS11 -providerClass sun.security.pkcs11.SunPKCS11 \
        -providerArg "$WORK/java.cfg" -storepass 1234 >"$WORK/keytool.out" || return 1
    grep PrivateKeyEntry "$WORK/keytool.out" || [ $? = 1 ] # 1: no entry; 2: an error
}

id_of() { # CLASS LABEL -> CKA_ID hex of that object
    p11 --list-objects --type "$1" | awk -v want="$2" '
        $1 == "label:" { label = substr($0, index($0, $2)) }
        $1 == "ID:" && label == want { print $2; exit }'
}

passed=0 failed=0
check() { # NAME FUNCTION: runs FUNCTION in its own bash with errexit, so that every
    # command decides (errexit is ignored in a function called inside an `if` condition).
    local name=$1 out
    shift
    # shellcheck disable=SC2016 # $@ and $WORK belong to the child bash
    if out=$(bash -euo pipefail -c 'cd "$WORK"; "$@"' check "$@" 2>&1); then
        passed=$((passed + 1))
        echo "ok   $name"
    else
        failed=$((failed + 1))
        echo "FAIL $name"
        echo "$out" | sed 's/^/    /'
    fi
}

no_entry_without_certificate() {
    local e
    e=$(keytool_entries)
    [ -z "$e" ] || { echo "keytool lists entries before any certificate: $e"; return 1; }
}

write_certificates() {
    local k
    for k in $KEYS; do
        openssl x509 -in "$ROOT/softhsm-fixtures/keys/$k.crt.pem" -outform DER -out "$k.der"
        p11 --write-object "$k.der" --type cert --label "$k" >/dev/null
    done
}

another_process_lists_them_paired() {
    local k cert key
    for k in $KEYS; do
        cert=$(id_of cert "$k")
        key=$(id_of privkey "$k")
        [ -n "$cert" ] || { echo "certificate $k not listed"; return 1; }
        [ "$cert" = "$key" ] || { echo "$k: certificate CKA_ID $cert, key $key"; return 1; }
    done
}

keytool_sees_keys_with_certificates() {
    local e k
    e=$(keytool_entries)
    for k in $KEYS; do
        echo "$e" | grep -q "^$k, PrivateKeyEntry" || { echo "no PrivateKeyEntry $k in: $e"; return 1; }
    done
}

concurrent_writers() {
    local i pids=()
    for i in $(seq 16); do
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout /dev/null \
            -subj "/CN=concurrent $i" -days 1 -outform DER -out "c$i.der" 2>/dev/null
    done
    for i in $(seq 16); do
        p11 --write-object "c$i.der" --type cert --label "concurrent-$i" >"w$i.log" 2>&1 &
        pids+=($!)
    done
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}" || { echo "writer $((i + 1)) failed:"; cat "w$((i + 1)).log"; return 1; }
    done
    local n
    n=$(p11 --list-objects --type cert | grep -c 'label:.*concurrent-')
    [ "$n" = 16 ] || { echo "$n of 16 concurrent certificates listed"; return 1; }
}

hsm_signature_verifies_with_stored_certificate() {
    local id
    id=$(id_of privkey rsa2048)
    head -c 1000 /dev/urandom >data
    p11 --sign --id "$id" -m SHA256-RSA-PKCS -i data -o sig >/dev/null
    p11 --read-object --type cert --label rsa2048 -o stored.der
    openssl x509 -inform DER -in stored.der -noout -pubkey >pub.pem
    openssl dgst -sha256 -verify pub.pem -signature sig data
}

export MODULE WORK ROOT KEYS
export -f p11 keytool_entries id_of no_entry_without_certificate write_certificates \
    another_process_lists_them_paired keytool_sees_keys_with_certificates concurrent_writers \
    hsm_signature_verifies_with_stored_certificate

echo "managed-hsm slot, certificates in ${DB%%://*}"
check keytool-no-entry-without-certificate no_entry_without_certificate
check pkcs11-tool-write-certificates write_certificates
check second-process-lists-paired another_process_lists_them_paired
check keytool-list-private-key-entries keytool_sees_keys_with_certificates
check sixteen-concurrent-writers concurrent_writers
check sign-verifies-with-stored-certificate hsm_signature_verifies_with_stored_certificate
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
