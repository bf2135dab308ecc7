#!/usr/bin/env bash
# tests/clients/run.sh — real PKCS#11 clients against one module.
#
# Every check drives a real client (pkcs11-tool, OpenSSL + libp11 engine, GnuTLS, Java
# SunPKCS11, python-pkcs11) and checks its result with openssl: signatures verify against
# the certificate read out of the token, decrypted data equals what openssl encrypted.
#
# Environment:
#   MODULE         PKCS#11 library under test (.so)                            required
#   TOKEN_LABEL    label of the token holding the keys                         required
#   PIN            user PIN                                                    required
#   WORK           scratch directory (created; one subdirectory per check)     required
#   RSA_LABEL      CKA_LABEL of an RSA key pair + certificate                  rsa2048
#   EC_LABEL       CKA_LABEL of a P-256 key pair + certificate                 p256
#   CHAIN_LABEL    CKA_LABEL of a key whose certificate chain (intermediate, root) is in
#                  the token, as tests/clients/chain.sh makes it; with CHAIN_ROOT (the
#                  root's PEM) it adds the chain checks                         (none)
#   PYTHON         interpreter for the python-pkcs11 venv ($WORK/venv, kept)   python3
#   CHECK_TIMEOUT  seconds before a hung check is killed (pkcs11-tool --test-threads  100
#                  may sleep 30 s twice when a thread outlives its main)
# Labels, token label and PIN go into PKCS#11 URIs unescaped: keep them to [A-Za-z0-9-_.].
# The script creates (and deletes again) key pairs labelled gen-rsa and gen-ec.
#
# Against SoftHSM2:
#   softhsm-fixtures/setup.sh /tmp/hsm && . /tmp/hsm/env
#   MODULE=/usr/lib/softhsm/libsofthsm2.so TOKEN_LABEL=fixtures PIN=1234 WORK=/tmp/clients \
#       tests/clients/run.sh
#
# Output: "ok NAME" or "FAIL NAME" plus the tail of the check's stderr, one per check, then
# "N passed, N failed". Exit status 1 if any check failed. Full output of a check is in
# $WORK/NAME/stdout and $WORK/NAME/stderr.
set -uo pipefail

: "${MODULE:?path to the PKCS#11 module}" "${TOKEN_LABEL:?token label}" "${PIN:?user PIN}"
: "${WORK:?scratch directory}"
RSA_LABEL=${RSA_LABEL:-rsa2048}
EC_LABEL=${EC_LABEL:-p256}
PYTHON=${PYTHON:-python3}
CHECK_TIMEOUT=${CHECK_TIMEOUT:-100}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
SHARED=$WORK/shared # inputs shared by checks: data, certificates read from the token
export MODULE TOKEN_LABEL PIN RSA_LABEL EC_LABEL PYTHON HERE WORK SHARED
export PKCS11_MODULE_PATH=$MODULE # libp11 engine: load this module, not p11-kit-proxy

# ---------------------------------------------------------------- helpers

p11() { # pkcs11-tool, logged in to the token
    pkcs11-tool --module "$MODULE" --token-label "$TOKEN_LABEL" --login --pin "$PIN" "$@"
}

id_of() { # LABEL -> hex CKA_ID of the private key with that label. pkcs11-tool 0.23
    # ignores --label when it picks the key for --sign/--decrypt (it takes the first
    # private key), so those need --id.
    p11 --list-objects --type privkey | awk -v want="$1" '
        $1 == "label:" { label = substr($0, index($0, $2)) }
        $1 == "ID:" && label == want { print $2; exit }' | grep .
}

uri() { # LABEL [TYPE] -> PKCS#11 URI with the PIN (libp11, GnuTLS)
    echo "pkcs11:token=$TOKEN_LABEL;object=$1;type=${2:-private};pin-value=$PIN"
}

# LABEL OUT.der: the public key object, DER SubjectPublicKeyInfo. pkcs11-tool 0.23 reads
# RSA keys. Its EC path has a use-after-free (src/tools/pkcs11-tool.c, read_object: the
# OSSL_PARAM array from OSSL_PARAM_merge still points into `new`, which is freed before
# EVP_PKEY_fromdata), so the "pub" it passes is whatever the allocator put there since:
# intact in a single-threaded process, zeroes now and then when the module has threads
# (key-vault slots), and then it fails with "cannot create EVP_PKEY". EC public keys are
# read through the libp11 engine, which reads CKA_EC_POINT/CKA_EC_PARAMS itself.
read_pubkey() {
    local type
    type=$(p11 --list-objects --type pubkey | awk -v want="$1" '
        /^Public Key Object/ { kind = $4 }
        $1 == "label:" && substr($0, index($0, $2)) == want { print kind; exit }')
    case $type in
    RSA) p11 --read-object --type pubkey --label "$1" -o "$2" ;;
    EC) openssl pkey -engine pkcs11 -inform engine -pubin -in "$(uri "$1" public)" \
        -pubout -outform DER -out "$2" ;;
    *) echo "no public key labelled $1 (type '$type')" >&2; return 1 ;;
    esac
}

pubkey() { # LABEL -> the public key PEM taken from the certificate read out of the token
    echo "$SHARED/$1.pub.pem"
}

verify() { # PUBKEY.pem SIGNATURE [openssl dgst options...]: SHA-256 signature over data
    local pub=$1 sig=$2
    shift 2
    openssl dgst -sha256 -verify "$pub" -signature "$sig" "$@" "$SHARED/data"
}

padding_opts() { # pkcs1 | oaep-HASH (label-less OAEP, MGF1 with HASH) -> pkeyutl options
    case $1 in
    pkcs1) echo -pkeyopt rsa_padding_mode:pkcs1 ;;
    oaep-*) echo -pkeyopt rsa_padding_mode:oaep -pkeyopt "rsa_oaep_md:${1#oaep-}" \
        -pkeyopt "rsa_mgf1_md:${1#oaep-}" ;;
    esac
}

encrypt() { # LABEL PADDING -> ciphertext file "ct" of $SHARED/secret under LABEL's public key
    # shellcheck disable=SC2046 # padding_opts words are meant to split
    openssl pkeyutl -encrypt -pubin -inkey "$(pubkey "$1")" $(padding_opts "$2") \
        -in "$SHARED/secret" -out ct
}

input_for() { # MECHANISM -> file to sign: raw ECDSA signs a SHA-256 digest, others the data
    case $1 in
    ECDSA) echo "$SHARED/data.sha256" ;;
    *) echo "$SHARED/data" ;;
    esac
}

self_signed_config() { # minimal openssl req config: CA:TRUE so "openssl verify" accepts it
    printf '[req]\ndistinguished_name = dn\nx509_extensions = ext\n[dn]\n[ext]\n%s\n%s\n' \
        'basicConstraints = critical, CA:TRUE' 'subjectKeyIdentifier = hash' >req.cnf
}

verify_self_signed() { # CERT.pem LABEL: self-signature verifies, key is LABEL's key
    openssl verify -check_ss_sig -CAfile "$1" "$1"
    openssl x509 -in "$1" -noout -pubkey | cmp - "$(pubkey "$2")"
}

java_opts() { # writes java.cfg for the token's slot; prints keytool/jarsigner options
    local slot
    slot=$(pkcs11-tool --module "$MODULE" --list-token-slots |
        awk -v t="$TOKEN_LABEL" '/^Slot [0-9]+ \(/ { s = $3; gsub(/[():]/, "", s) }
            $1 == "token" && $2 == "label" && $4 == t { print s; exit }')
    [ -n "$slot" ] || { echo "no slot with token $TOKEN_LABEL" >&2; return 1; }
    printf 'name = ClientTest\nlibrary = %s\nslot = %d\n' "$MODULE" "$((slot))" >java.cfg
    echo -storetype PKCS11 -providerClass sun.security.pkcs11.SunPKCS11 \
        -providerArg java.cfg -storepass "$PIN"
}

venv_python() { # prints the venv python, creating $WORK/venv with python-pkcs11 once
    local venv=$WORK/venv
    if ! "$venv/bin/python" -c 'import pkcs11' 2>/dev/null; then
        rm -rf "$venv"
        "$PYTHON" -m venv "$venv" >&2
        "$venv/bin/pip" install --quiet python-pkcs11 >&2
    fi
    echo "$venv/bin/python"
}

delete_generated() { # removes the objects the keypairgen/write-object checks made
    # A failure is not fatal here: a module may drop the public key with the private one.
    # p11_delete checks the result by listing.
    local object
    for object in gen-rsa:cert gen-rsa:privkey gen-rsa:pubkey gen-ec:privkey gen-ec:pubkey; do
        p11 --delete-object --label "${object%:*}" --type "${object#*:}" || true
    done
}

# ---------------------------------------------------------------- checks
# Each check runs in its own directory $WORK/NAME with errexit; the first failing
# command fails it.

# Reading the certificate works and it holds the same key as the public key object.
read_cert() { # LABEL
    p11 --read-object --type cert --label "$1" -o "$1.crt.der"
    read_pubkey "$1" "$1.pub.der"
    openssl x509 -inform DER -in "$1.crt.der" -out "$SHARED/$1.crt.pem"
    openssl x509 -in "$SHARED/$1.crt.pem" -noout -pubkey >"$(pubkey "$1")"
    openssl pkey -pubin -inform DER -in "$1.pub.der" | cmp - "$(pubkey "$1")"
}

# The module passes OpenSC's own self-test: sessions, random, digests, verification,
# decryption incl. OAEP with a label; signatures only if a sign mechanism has CKF_HW.
p11_test() {
    p11 --test
}

# C_Initialize(NULL), or with CKF_OS_LOCKING_OK followed by slot/token calls, in a second
# thread while the main thread lists the slots.
p11_test_threads() {
    pkcs11-tool --module "$MODULE" --test-threads IN -L
    pkcs11-tool --module "$MODULE" --test-threads ILGISLT0 -L
}

# A forked child gets a working C_Initialize of its own (not CKR_CRYPTOKI_ALREADY_INITIALIZED).
p11_test_fork() {
    pkcs11-tool --module "$MODULE" --test-fork -L
}

sign_with() { # LABEL MECHANISM -> file "sig", made by pkcs11-tool (ECDSA as DER)
    local id
    id=$(id_of "$1")
    p11 --sign --id "$id" -m "$2" --signature-format openssl -i "$(input_for "$2")" -o sig
}

# pkcs11-tool --sign with one mechanism; openssl verifies against the certificate's key.
p11_sign() { # LABEL MECHANISM [openssl dgst options...]
    local label=$1
    sign_with "$label" "$2"
    shift 2
    verify "$(pubkey "$label")" sig "$@"
}

# pkcs11-tool --decrypt of what openssl encrypted to the certificate's key.
p11_decrypt() { # LABEL PADDING pkcs11-tool-mechanism-options...
    local label=$1 padding=$2 id
    shift 2
    id=$(id_of "$label")
    encrypt "$label" "$padding"
    p11 --decrypt --id "$id" "$@" -i ct -o pt
    cmp pt "$SHARED/secret"
}

# C_GenerateKeyPair; the new key signs and the public key read back verifies it. (The key
# is found again by label: a module may derive CKA_ID itself instead of taking --id.)
p11_keypairgen() { # KEY-TYPE LABEL ID MECHANISM
    p11 --keypairgen --key-type "$1" --label "$2" --id "$3"
    read_pubkey "$2" pub.der
    openssl pkey -pubin -inform DER -in pub.der -out pub.pem
    sign_with "$2" "$4"
    verify pub.pem sig
}

# C_CreateObject of a certificate (made by the engine for gen-rsa) and C_GetAttributeValue
# of CKA_VALUE give back the same bytes.
p11_write_cert() {
    local id
    id=$(id_of gen-rsa)
    self_signed_config
    openssl req -new -x509 -config req.cnf -engine pkcs11 -keyform engine \
        -key "$(uri gen-rsa)" -subj /CN=gen-rsa -days 1 -outform DER -out cert.der
    p11 --write-object cert.der --type cert --label gen-rsa --id "$id"
    p11 --read-object --type cert --label gen-rsa -o back.der
    cmp cert.der back.der
}

# C_DestroyObject removes the generated objects.
p11_delete() {
    delete_generated
    p11 --list-objects >objects
    ! grep -E 'label: +gen-(rsa|ec)$' objects
}

# libp11 engine signs (RSA: CKM_RSA_PKCS with DigestInfo, EC: CKM_ECDSA on the digest).
engine_sign() { # LABEL
    openssl dgst -engine pkcs11 -keyform engine -sign "$(uri "$1")" -sha256 \
        -out sig "$SHARED/data"
    verify "$(pubkey "$1")" sig
}

# openssl req makes a self-signed certificate with the token key (what an operator does
# to get a CSR/certificate for a vault key).
engine_req() { # LABEL
    self_signed_config
    openssl req -new -x509 -config req.cnf -engine pkcs11 -keyform engine -key "$(uri "$1")" \
        -subj "/CN=engine $1" -days 1 -out cert.pem
    verify_self_signed cert.pem "$1"
}

# libp11 engine decrypts OAEP (SHA-256) through CKM_RSA_PKCS_OAEP; if the module refuses
# that it retries with CKM_RSA_X_509 and unpads itself.
engine_tls() { # LABEL TLS-VERSION: an s_server whose key is in the token completes a
    # handshake with s_client, which checks the certificate it presents (TLS 1.3 signs
    # with RSA-PSS or ECDSA through the module; TLS 1.2 with PKCS#1 or PSS).
    read_cert "$1" >/dev/null
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    openssl s_server -engine pkcs11 -keyform engine -key "$(uri "$1")" -cert "$SHARED/$1.crt.pem" \
        -accept "127.0.0.1:$port" -naccept 1 -www "$2" </dev/null >server.out 2>server.err &
    local server=$!
    # Wait for it to listen (it prints ACCEPT); a probe connection would use up -naccept.
    for _ in $(seq 100); do
        grep -q ACCEPT server.out 2>/dev/null && break
        sleep 0.1
    done
    grep -q ACCEPT server.out || { echo "s_server did not start:" >&2; cat server.err >&2; return 1; }
    # Both ends must succeed: the client verifies the certificate and completes the
    # handshake, the server (one connection) exits 0 after answering it.
    printf "GET / HTTP/1.0\r\n\r\n" | openssl s_client -connect "127.0.0.1:$port" "$2" -CAfile "$SHARED/$1.crt.pem" \
        -verify_return_error >client.out 2>client.err
    wait "$server"
    grep -q "Verify return code: 0 (ok)" client.out
    grep -q "^Protocol *: *TLSv1\.[23]\|New, TLSv1\.[23]" client.out
}

engine_decrypt() { # LABEL PADDING
    encrypt "$1" "$2"
    # shellcheck disable=SC2046
    openssl pkeyutl -engine pkcs11 -keyform engine -inkey "$(uri "$1")" -decrypt \
        $(padding_opts "$2") -in ct -out pt
    cmp pt "$SHARED/secret"
}

# GnuTLS enumerates the token and sees each key as private key, public key and certificate.
p11tool_list() {
    p11tool --provider "$MODULE" --login --set-pin="$PIN" --list-all \
        "pkcs11:token=$TOKEN_LABEL" >list
    local label type
    for label in "$RSA_LABEL" "$EC_LABEL"; do
        for type in private public cert; do
            grep -q "object=$label;type=$type\$" list ||
                { echo "p11tool does not list $label $type" >&2; return 1; }
        done
    done
}

# GnuTLS signs and verifies with the private key params and with the token's public key.
p11tool_test_sign() { # LABEL [p11tool options...]
    local label=$1
    shift
    p11tool --provider "$MODULE" --login --set-pin="$PIN" --test-sign "$@" \
        "pkcs11:token=$TOKEN_LABEL;object=$label"
}

# certtool makes a self-signed certificate from the private key alone (GnuTLS must find
# the public key through the module).
certtool_self_signed() { # LABEL
    printf 'cn = "certtool %s"\nexpiration_days = 1\nca\ncert_signing_key\n' "$1" >cert.tmpl
    GNUTLS_PIN=$PIN certtool --generate-self-signed --provider "$MODULE" \
        --load-privkey "pkcs11:token=$TOKEN_LABEL;object=$1;type=private" \
        --template cert.tmpl --outfile cert.pem
    verify_self_signed cert.pem "$1"
}

# Java pairs each private key with its certificate by CKA_ID.
keytool_list() {
    local opts label
    opts=$(java_opts)
    # shellcheck disable=SC2086
    keytool -list $opts >list
    for label in "$RSA_LABEL" "$EC_LABEL"; do
        grep -q "^$label, PrivateKeyEntry" list ||
            { echo "keytool shows no PrivateKeyEntry $label" >&2; return 1; }
    done
}

# jarsigner signs through SunPKCS11; jarsigner -verify (Java's own crypto) accepts it.
jarsigner_sign() { # LABEL SIGALG
    local opts
    opts=$(java_opts)
    echo "signed by $1" >content.txt
    jar cf in.jar content.txt
    # shellcheck disable=SC2086
    jarsigner -keystore NONE $opts -sigalg "$2" -signedjar out.jar in.jar "$1"
    jarsigner -verify out.jar >verify
    grep -q '^jar verified\.' verify
}

# Java builds the key's chain from the token (each issuer found by CKA_SUBJECT): keytool
# shows all three certificates in order.
keytool_chain() { # LABEL
    local opts
    opts=$(java_opts)
    # shellcheck disable=SC2086
    keytool -list -v $opts -alias "$1" >list
    grep -q '^Certificate chain length: 3$' list ||
        { echo "keytool does not show a chain of 3 for $1" >&2; return 1; }
    grep -E '^(Owner|Issuer):' list >names
    printf '%s\n' 'Owner: CN=chain.idp.example' 'Issuer: CN=Chain Test Intermediate' \
        'Owner: CN=Chain Test Intermediate' 'Issuer: CN=Chain Test Root' \
        'Owner: CN=Chain Test Root' 'Issuer: CN=Chain Test Root' | diff - names
}

# jarsigner puts the token's chain into the signature; jarsigner -verify, trusting only the
# root, prints the three certificates and accepts the chain.
jarsigner_chain() { # LABEL
    local opts
    opts=$(java_opts)
    echo "signed by $1" >content.txt
    jar cf in.jar content.txt
    # shellcheck disable=SC2086
    jarsigner -keystore NONE $opts -sigalg SHA256withRSA -signedjar out.jar in.jar "$1"
    keytool -importcert -noprompt -alias root -file "$CHAIN_ROOT" -keystore trust.p12 \
        -storetype PKCS12 -storepass changeit
    jarsigner -verify -verbose -certs -keystore trust.p12 -storepass changeit out.jar >verify
    grep -q '^jar verified\.' verify
    if grep -q 'Invalid certificate chain' verify; then
        echo "jarsigner rejects the chain" >&2
        return 1
    fi
    # The signer's block, once per signed entry: leaf, intermediate, root (the trusted one).
    grep -m 3 -E '^ +X\.509, ' verify | sed 's/^ *//' >chain
    printf '%s\n' 'X.509, CN=chain.idp.example' 'X.509, CN=Chain Test Intermediate' \
        'X.509, CN=Chain Test Root (root)' | diff - chain
}

# python-pkcs11 finds the key by label and signs (raw ECDSA over a SHA-256 digest).
python_sign() { # LABEL MECHANISM
    local python
    python=$(venv_python)
    "$python" "$HERE/python_sign.py" "$MODULE" "$TOKEN_LABEL" "$PIN" "$1" "$2" \
        "$(input_for "$2")" sig
    verify "$(pubkey "$1")" sig
}

# ---------------------------------------------------------------- runner

in_check() { # FUNCTION [ARGS...]: run with errexit; name the command that failed
    set -eE
    trap 'echo "failed with status $? in ${FUNCNAME[*]}: $BASH_COMMAND" >&2' ERR
    "$@"
}

# Checks run in a child bash under timeout, so they see the functions through the
# environment.
mapfile -t functions < <(compgen -A function)
export -f "${functions[@]}"

passed=0
failed=0

check() { # NAME FUNCTION [ARGS...]
    local name=$1 dir=$WORK/$1
    shift
    rm -rf "$dir"
    mkdir -p "$dir"
    # shellcheck disable=SC2016 # $@ belongs to the child bash
    if (cd "$dir" && timeout -k 5 "$CHECK_TIMEOUT" bash -c 'in_check "$@"' check "$@") \
        >"$dir/stdout" 2>"$dir/stderr"; then
        echo "ok $name"
        passed=$((passed + 1))
    else
        echo "FAIL $name"
        tail -n 6 "$dir/stderr" | sed 's/^/    /'
        failed=$((failed + 1))
    fi
}

rm -rf "$SHARED"
mkdir -p "$SHARED"
head -c 1000 /dev/urandom >"$SHARED/data"
openssl dgst -sha256 -binary "$SHARED/data" >"$SHARED/data.sha256"
printf 'identify-pkcs11 secret %s' "$RANDOM" >"$SHARED/secret"
delete_generated >/dev/null 2>&1 # leftovers of an interrupted run

# 1. pkcs11-tool self-tests (before the generated keys exist: --test uses every key)
check pkcs11-tool-test p11_test
check pkcs11-tool-test-threads p11_test_threads
check pkcs11-tool-test-fork p11_test_fork

# 2. pkcs11-tool operations
check pkcs11-tool-read-cert-rsa read_cert "$RSA_LABEL"
check pkcs11-tool-read-cert-ec read_cert "$EC_LABEL"
check pkcs11-tool-sign-sha256-rsa-pkcs p11_sign "$RSA_LABEL" SHA256-RSA-PKCS
check pkcs11-tool-sign-sha256-rsa-pss p11_sign "$RSA_LABEL" SHA256-RSA-PKCS-PSS \
    -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest -sigopt rsa_mgf1_md:sha256
check pkcs11-tool-sign-ecdsa-sha256 p11_sign "$EC_LABEL" ECDSA-SHA256
check pkcs11-tool-sign-ecdsa p11_sign "$EC_LABEL" ECDSA
check pkcs11-tool-decrypt-rsa-pkcs p11_decrypt "$RSA_LABEL" pkcs1 -m RSA-PKCS
check pkcs11-tool-decrypt-oaep-sha256 p11_decrypt "$RSA_LABEL" oaep-sha256 -m RSA-PKCS-OAEP
check pkcs11-tool-decrypt-oaep-sha1 p11_decrypt "$RSA_LABEL" oaep-sha1 -m RSA-PKCS-OAEP \
    --hash-algorithm SHA-1 --mgf MGF1-SHA1
# (the ids are the labels in hex)
check pkcs11-tool-keypairgen-rsa p11_keypairgen rsa:2048 gen-rsa 67656e2d727361 SHA256-RSA-PKCS
check pkcs11-tool-keypairgen-ec p11_keypairgen EC:prime256v1 gen-ec 67656e2d6563 ECDSA
check pkcs11-tool-write-cert p11_write_cert

# 3. OpenSSL 3 + libp11 engine
check engine-sign-rsa engine_sign "$RSA_LABEL"
check engine-sign-ec engine_sign "$EC_LABEL"
check engine-req-x509-rsa engine_req "$RSA_LABEL"
check engine-req-x509-ec engine_req "$EC_LABEL"
check engine-decrypt-oaep engine_decrypt "$RSA_LABEL" oaep-sha256
check engine-tls13-rsa engine_tls "$RSA_LABEL" -tls1_3
check engine-tls12-rsa engine_tls "$RSA_LABEL" -tls1_2
check engine-tls13-ec engine_tls "$EC_LABEL" -tls1_3

# 4. GnuTLS
check p11tool-list-all p11tool_list
check p11tool-test-sign-rsa p11tool_test_sign "$RSA_LABEL"
check p11tool-test-sign-rsa-pss p11tool_test_sign "$RSA_LABEL" --sign-params RSA-PSS
check p11tool-test-sign-ec p11tool_test_sign "$EC_LABEL"
check certtool-self-signed-rsa certtool_self_signed "$RSA_LABEL"
check certtool-self-signed-ec certtool_self_signed "$EC_LABEL"

# 5. Java 17 SunPKCS11
check keytool-list keytool_list
check jarsigner-rsa jarsigner_sign "$RSA_LABEL" SHA256withRSA
check jarsigner-ec jarsigner_sign "$EC_LABEL" SHA256withECDSA
if [ -n "${CHAIN_LABEL:-}" ]; then
    export CHAIN_ROOT=${CHAIN_ROOT:?the root certificate of CHAIN_LABEL}
    check keytool-list-chain keytool_chain "$CHAIN_LABEL"
    check jarsigner-chain jarsigner_chain "$CHAIN_LABEL"
fi

# 6. python-pkcs11
check python-pkcs11-sign-rsa python_sign "$RSA_LABEL" SHA256_RSA_PKCS
check python-pkcs11-sign-ecdsa python_sign "$EC_LABEL" ECDSA

# Last: C_DestroyObject of what keypairgen and write-cert created.
check pkcs11-tool-delete p11_delete

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
