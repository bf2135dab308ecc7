#!/usr/bin/env bash
# tests/windows/run.sh — the Windows build and the Windows store tests, on Linux:
#   1. clippy -D warnings for x86_64-pc-windows-gnu (mingw-w64), the DLL and the tests built;
#   2. the DLL exports C_GetFunctionList, C_GetInterfaceList and C_GetInterface;
#   3. under Wine 8 (a fresh prefix, with the ProcessPrng shim Rust programs need), the
#      unit tests and cli/tests/windows_store.rs: PFX import into CurrentUser\MY, listing
#      through the C ABI, CryptoAPI sign and decrypt;
#   4. OpenSSL on Linux checks the signatures and plaintexts the Windows key produced;
#   5. the Windows zip (packaging/windows/build.sh) from the same release build, and its
#      install.cmd run under Wine: files in place, an existing configuration kept, the
#      installed tool's doctor reading the installed example, a misplaced script refused.
# The tests run on the release build, which the zip ships (one build, not two).
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
# --release: the build scripts' outputs (the vendored OpenSSL, built from source for this
# target) are shared with the release build below, not built twice.
cargo clippy --release --locked --target $TARGET --all-targets -- -D warnings

echo "--- build the DLL, the tool and the tests for $TARGET (release: what the zip ships)"
# The integration test's build makes the DLL (the cdylib) and the tool it runs.
cargo test --release --locked --target $TARGET --no-run --lib --test windows_store

dll=target/$TARGET/release/deps/identify_pkcs11.dll
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
cargo test --release --locked --target $TARGET --lib -- --test-threads 1

echo "--- cli/tests/windows_store.rs under Wine"
out="$WORK/out"
rm -rf "$out"
IDENTIFY_UNDER_WINE=1 IDENTIFY_WINDOWS_OUT="Z:${out//\//\\}" cargo test --release --locked --target $TARGET --test windows_store

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
echo "--- the Windows zip and its install.cmd under Wine"
zip=$(bash packaging/windows/build.sh "$WORK/zip" | tail -n1)
ls -l "$zip"
python3 -m zipfile -l "$zip"
unpacked="$WORK/unpacked"
rm -rf "$unpacked"
python3 -m zipfile -e "$zip" "$unpacked"
pkg=$(echo "$unpacked"/identify-pkcs11-*-windows-x86_64)
for f in identify_pkcs11.dll identify-pkcs11.exe config.example.toml install.cmd README.txt LICENSE.txt; do
    [ -f "$pkg/$f" ] || { echo "the zip has no $f"; exit 1; }
done
exports=$(x86_64-w64-mingw32-objdump -p "$pkg/identify_pkcs11.dll")
grep -qE "\] C_GetFunctionList\$" <<<"$exports" || { echo "the zip's DLL does not export C_GetFunctionList"; exit 1; }
run_install() { (cd "$pkg" && wine cmd /c install.cmd 2>&1 | tr -d '\r'); }
installed="$WINEPREFIX/drive_c/Program Files/identify-pkcs11"
conf="$WINEPREFIX/drive_c/ProgramData/identify-pkcs11/config.toml"
first=$(run_install)
echo "$first"
grep -q "wrote .*config.toml from the example" <<<"$first" || { echo "install.cmd wrote no configuration"; exit 1; }
cmp "$pkg/identify_pkcs11.dll" "$installed/identify_pkcs11.dll"
cmp "$pkg/identify-pkcs11.exe" "$installed/identify-pkcs11.exe"
cmp "$pkg/config.example.toml" "$conf"
echo "# the operator's edit" >>"$conf"
second=$(run_install)
grep -q "kept the existing" <<<"$second" || { echo "a second install.cmd did not keep the configuration: $second"; exit 1; }
grep -q "the operator's edit" "$conf" || { echo "a second install.cmd replaced the configuration"; exit 1; }
# The installed tool reads the installed configuration (%ProgramData%, no --config).
doctor=$(wine "C:\\Program Files\\identify-pkcs11\\identify-pkcs11.exe" doctor 2>&1 | tr -d '\r') && code=0 || code=$?
echo "$doctor"
[ "$code" -le 1 ] || { echo "the installed tool's doctor exited $code"; exit 1; }
grep -q 'slot "signing"' <<<"$doctor" || { echo "doctor did not read the installed example's slot"; exit 1; }
# Run from a folder without the files, it refuses and says why.
mkdir -p "$WORK/empty"
cp "$pkg/install.cmd" "$WORK/empty/"
refused=$(cd "$WORK/empty" && wine cmd /c install.cmd 2>&1 | tr -d '\r') && code=0 || code=$?
[ "$code" = 1 ] && grep -q "is not beside this script" <<<"$refused" ||
    { echo "install.cmd without its files: exit $code: $refused"; exit 1; }
echo "zip: $(basename "$zip"), install.cmd checked"
echo "windows: all checks passed"
