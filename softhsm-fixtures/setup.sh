#!/usr/bin/env bash
# setup.sh DIR — a SoftHSM2 token "fixtures" (user PIN 1234, SO PIN 12345678) in DIR,
# holding the committed keys rsa2048, rsa3072 and p256: for each a private key, a public
# key and the certificate, all three with CKA_LABEL=<name> and CKA_ID = SHA-1 of the
# subjectPublicKey BIT STRING contents (= the certificate's subjectKeyIdentifier).
#
# Writes DIR/softhsm2.conf, DIR/tokens/ and DIR/env (source it to get SOFTHSM2_CONF).
# An existing DIR/tokens is wiped. Prints nothing but errors.
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
dir=$(cd "$1" && pwd)
module=${SOFTHSM2_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
label=fixtures
pin=1234
so_pin=12345678

rm -rf "$dir/tokens" "$dir/der"
mkdir -p "$dir/tokens" "$dir/der"
sed "s|@TOKENDIR@|$dir/tokens|" "$here/softhsm2.conf.in" >"$dir/softhsm2.conf"
printf 'export SOFTHSM2_CONF=%s/softhsm2.conf\n' "$dir" >"$dir/env"
export SOFTHSM2_CONF=$dir/softhsm2.conf

softhsm2-util --init-token --free --label "$label" --so-pin "$so_pin" --pin "$pin" >/dev/null

# SHA-1 over the contents of the subjectPublicKey BIT STRING (RFC 5280 4.2.1.2 method 1):
# the BIT STRING is the last element of the SPKI, so its contents are the DER's tail
# minus the leading "unused bits" byte.
key_id() { # spki.der -> lowercase hex
    local len
    len=$(openssl asn1parse -inform DER -in "$1" | tail -n1 | sed -n 's/.* l= *\([0-9]*\) prim: BIT STRING.*/\1/p')
    tail -c $((len - 1)) "$1" | openssl dgst -sha1 -r | cut -d' ' -f1
}

ski() { # cert.pem -> lowercase hex of its subjectKeyIdentifier
    openssl x509 -in "$1" -noout -ext subjectKeyIdentifier | tail -n1 | tr -d ' :\n' | tr 'A-F' 'a-f'
}

write() { # FILE TYPE ID LABEL [USAGE FLAGS...]
    local file=$1 type=$2 id=$3 name=$4
    shift 4
    pkcs11-tool --module "$module" --token-label "$label" --login --pin "$pin" \
        --write-object "$file" --type "$type" --id "$id" --label "$name" "$@" >/dev/null
}

import() { # NAME
    local name=$1 der=$dir/der/$1 id
    openssl pkey -in "$here/keys/$name.key.pem" -outform DER -out "$der.key.der"
    openssl pkey -in "$here/keys/$name.key.pem" -pubout -outform DER -out "$der.pub.der"
    openssl x509 -in "$here/keys/$name.crt.pem" -outform DER -out "$der.crt.der"
    id=$(key_id "$der.pub.der")
    [ "$id" = "$(ski "$here/keys/$name.crt.pem")" ] ||
        { echo "setup.sh: $name: key id $id differs from the certificate's SKI" >&2; exit 1; }
    # The usage flags become CKA_VERIFY/CKA_ENCRYPT on the public key. On the private key
    # pkcs11-tool 0.23 ignores them and SoftHSM2's defaults apply: CKA_SIGN, CKA_DECRYPT
    # and CKA_UNWRAP true (for the EC key too).
    write "$der.key.der" privkey "$id" "$name" --usage-sign --usage-decrypt
    write "$der.pub.der" pubkey "$id" "$name" --usage-sign --usage-decrypt
    write "$der.crt.der" cert "$id" "$name"
}

for name in rsa2048 rsa3072 p256; do
    import "$name"
done
rm -rf "$dir/der"
