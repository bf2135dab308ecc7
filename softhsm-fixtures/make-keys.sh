#!/usr/bin/env bash
# make-keys.sh — regenerate the committed test keys and certificates (OpenSSL 3).
#
# Not run by CI: the outputs are committed so every run sees the same keys. Running it
# again makes NEW keys (new CKA_IDs); commit the result together with anything that
# depends on the old values.
#
#   keys/<name>.key.pem   unencrypted PKCS#8 private key (rsa2048, rsa3072, p256)
#   keys/<name>.crt.pem   self-signed certificate, CN=identify-pkcs11 fixture <name>,
#                         20 years, SHA-256, subjectKeyIdentifier=hash
#   pkcs12/ca.crt.pem     small test CA (RSA-2048, CA:TRUE)
#   pkcs12/leaf.crt.pem   RSA-2048 leaf issued by that CA
#   pkcs12/chain.p12      leaf key + leaf cert + CA cert, OpenSSL 3 defaults
#                         (AES-256-CBC, PBKDF2, HMAC-SHA256 MAC)
#   pkcs12/chain.password its password, no trailing newline
#
# Usage: softhsm-fixtures/make-keys.sh      (writes next to itself)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
keys=$here/keys
p12=$here/pkcs12
days=7305 # 20 years
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$keys" "$p12"

# A private OpenSSL config, so the result does not depend on /etc/ssl/openssl.cnf.
cat >"$tmp/openssl.cnf" <<'EOF'
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
[ self_signed ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment, dataEncipherment
extendedKeyUsage = clientAuth, serverAuth, codeSigning
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ self_signed_ec ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth, serverAuth, codeSigning
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ ca ]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ leaf ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth, serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF

# SHA-1 over the contents of the subjectPublicKey BIT STRING (RFC 5280 4.2.1.2 method 1).
# The BIT STRING is the last element of the SPKI, so its contents are the file's tail
# minus the leading "unused bits" byte.
key_id() { # key.pem -> lowercase hex
    openssl pkey -in "$1" -pubout -outform DER -out "$tmp/spki.der"
    local len
    len=$(openssl asn1parse -inform DER -in "$tmp/spki.der" | tail -n1 | sed -n 's/.* l= *\([0-9]*\) prim: BIT STRING.*/\1/p')
    tail -c $((len - 1)) "$tmp/spki.der" | openssl dgst -sha1 -r | cut -d' ' -f1
}

ski() { # cert.pem -> lowercase hex of its subjectKeyIdentifier
    openssl x509 -in "$1" -noout -ext subjectKeyIdentifier | tail -n1 | tr -d ' :\n' | tr 'A-F' 'a-f'
}

# make_self_signed NAME GENPKEY-ARGS... : key + self-signed certificate, checked.
make_self_signed() {
    local name=$1 ext=self_signed
    shift
    case $name in p*) ext=self_signed_ec ;; esac
    openssl genpkey -quiet "$@" -out "$keys/$name.key.pem"
    openssl req -new -x509 -config "$tmp/openssl.cnf" -extensions "$ext" \
        -key "$keys/$name.key.pem" -subj "/CN=identify-pkcs11 fixture $name" \
        -sha256 -days "$days" -set_serial "0x$(openssl rand -hex 8)" -out "$keys/$name.crt.pem"
    [ "$(key_id "$keys/$name.key.pem")" = "$(ski "$keys/$name.crt.pem")" ] ||
        { echo "make-keys: SKI of $name is not SHA-1 of the key bits" >&2; exit 1; }
}

make_self_signed rsa2048 -algorithm RSA -pkeyopt rsa_keygen_bits:2048
make_self_signed rsa3072 -algorithm RSA -pkeyopt rsa_keygen_bits:3072
make_self_signed p256 -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -pkeyopt ec_param_enc:named_curve

# Test CA, leaf issued by it, and the PKCS#12 bundle (CA key and leaf key are not kept
# outside the bundle).
openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$tmp/ca.key.pem"
openssl req -new -x509 -config "$tmp/openssl.cnf" -extensions ca -key "$tmp/ca.key.pem" \
    -subj "/CN=identify-pkcs11 fixture test CA" -sha256 -days "$days" \
    -set_serial "0x$(openssl rand -hex 8)" -out "$p12/ca.crt.pem"
openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$tmp/leaf.key.pem"
openssl req -new -config "$tmp/openssl.cnf" -key "$tmp/leaf.key.pem" \
    -subj "/CN=identify-pkcs11 fixture leaf" -out "$tmp/leaf.csr"
openssl x509 -req -in "$tmp/leaf.csr" -CA "$p12/ca.crt.pem" -CAkey "$tmp/ca.key.pem" \
    -extfile "$tmp/openssl.cnf" -extensions leaf -sha256 -days "$days" \
    -set_serial "0x$(openssl rand -hex 8)" -out "$p12/leaf.crt.pem" 2>/dev/null
printf '%s' 'identify-fixtures' >"$p12/chain.password"
openssl pkcs12 -export -inkey "$tmp/leaf.key.pem" -in "$p12/leaf.crt.pem" \
    -certfile "$p12/ca.crt.pem" -name leaf -passout "file:$p12/chain.password" \
    -out "$p12/chain.p12"
openssl verify -CAfile "$p12/ca.crt.pem" "$p12/leaf.crt.pem" >/dev/null
