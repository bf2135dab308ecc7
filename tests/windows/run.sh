#!/usr/bin/env bash
# tests/windows/run.sh — the Windows build and the Windows store tests, on Linux:
#   1. clippy -D warnings for x86_64-pc-windows-gnu (mingw-w64), the DLL and the tests built;
#   2. the DLL exports C_GetFunctionList, C_GetInterfaceList and C_GetInterface;
#   3. under Wine 8 (a fresh prefix, with the ProcessPrng shim Rust programs need), the
#      unit tests and tests/windows_store.rs: PFX import into CurrentUser\MY, listing
#      through the C ABI, CryptoAPI sign and decrypt;
#   4. OpenSSL on Linux checks the signatures and plaintexts the Windows key produced.
# The CNG path cannot run under Wine 8 (no persisted CNG keys, no NCryptDecrypt): it is
# built and linted here, and runs only on Windows.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
TARGET=x86_64-pc-windows-gnu
WORK=${WORK:-$(mktemp -d)}
export WINEPREFIX="$WORK/wineprefix" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine
# No debug info for this target's debug builds: with it the DLL and test executables are
# over 200 MB each and mingw's linker spends minutes on them (tests still print panics).
export CARGO_PROFILE_DEV_DEBUG=0

echo "--- clippy for $TARGET"
cargo clippy --locked --target $TARGET --all-targets -- -D warnings

echo "--- build the DLL, the tool and the tests for $TARGET"
# The integration test's build makes the DLL (the cdylib) and the tool it runs.
cargo test --locked --target $TARGET --no-run --lib --test windows_store

dll=target/$TARGET/debug/deps/identify_pkcs11.dll
echo "--- exports of $dll"
exports=$(x86_64-w64-mingw32-objdump -p "$dll")
for f in C_GetFunctionList C_GetInterfaceList C_GetInterface; do
    grep -qE "\] $f\$" <<<"$exports" || { echo "$dll does not export $f"; exit 1; }
    echo "exports $f"
done

echo "--- Wine prefix $WINEPREFIX"
wineboot --init >"$WORK/wineboot.log" 2>&1 || { echo "wineboot --init failed:"; cat "$WORK/wineboot.log"; exit 1; }
# Wine 8 lacks bcryptprimitives.dll!ProcessPrng, which Rust >= 1.78 programs import.
x86_64-w64-mingw32-gcc -O2 -shared -o "$WORK/bcryptprimitives.dll" \
    tests/windows/process_prng.c tests/windows/process_prng.def -lbcrypt
cp "$WORK/bcryptprimitives.dll" "$WINEPREFIX/drive_c/windows/system32/"

echo "--- unit tests under Wine"
cargo test --locked --target $TARGET --lib -- --test-threads 1

echo "--- tests/windows_store.rs under Wine"
out="$WORK/out"
rm -rf "$out"
IDENTIFY_UNDER_WINE=1 IDENTIFY_WINDOWS_OUT="Z:${out//\//\\}" cargo test --locked --target $TARGET --test windows_store

echo "--- OpenSSL on Linux checks what the Windows key produced"
openssl x509 -in "$out/cert.pem" -noout -pubkey >"$out/pub.pem"
for h in sha1 sha256 sha384 sha512; do
    openssl dgst -"$h" -verify "$out/pub.pem" -signature "$out/sig-$h.bin" "$out/data.bin"
done
openssl pkeyutl -decrypt -inkey "$out/key.pem" -in "$out/ct-pkcs1.bin" -out "$out/linux-pkcs1.bin"
cmp "$out/linux-pkcs1.bin" "$out/pt-pkcs1.bin"
echo "PKCS#1 v1.5 plaintext: the same"
openssl pkeyutl -decrypt -inkey "$out/key.pem" -pkeyopt rsa_padding_mode:oaep \
    -pkeyopt rsa_oaep_md:sha1 -in "$out/ct-oaep.bin" -out "$out/linux-oaep.bin"
cmp "$out/linux-oaep.bin" "$out/pt-oaep.bin"
echo "OAEP SHA-1 plaintext: the same"
echo "windows: all checks passed"
