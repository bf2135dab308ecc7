#!/usr/bin/env bash
# tests/clients/chain.sh — a PKCS#12 with a certificate chain for a directory store: an
# RSA-2048 key whose certificate is issued by an intermediate CA, itself issued by a root
# (both P-256). run.sh's chain checks (CHAIN_LABEL, CHAIN_ROOT) use it.
#
# Usage: tests/clients/chain.sh STORE LABEL ROOT
#   STORE  the store directory: STORE/LABEL.p12 is written (empty PKCS#12 password)
#   LABEL  the entry's name, which becomes the key's and certificate's CKA_LABEL
#   ROOT   where the root certificate (PEM) is written, for the verifier's trust store
set -euo pipefail
STORE=$(cd "$1" && pwd) LABEL=$2 ROOT=$(realpath -m "$3")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/ext.cnf" <<'CNF'
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF
cd "$tmp"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout root.key \
    -subj "/CN=Chain Test Root" -days 30 -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign" -out root.pem 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout int.key \
    -subj "/CN=Chain Test Intermediate" -out int.csr 2>/dev/null
openssl x509 -req -in int.csr -CA root.pem -CAkey root.key -days 30 -extfile ext.cnf \
    -extensions ca -out int.pem 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout leaf.key -subj "/CN=chain.idp.example" \
    -out leaf.csr 2>/dev/null
openssl x509 -req -in leaf.csr -CA int.pem -CAkey int.key -days 30 -extfile ext.cnf \
    -extensions leaf -out leaf.pem 2>/dev/null
cat int.pem root.pem >cas.pem
openssl pkcs12 -export -inkey leaf.key -in leaf.pem -certfile cas.pem -passout pass: \
    -out "$STORE/$LABEL.p12"
cp root.pem "$ROOT"
